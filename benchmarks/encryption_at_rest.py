"""What encryption at rest costs: ingest and build of a generated shop with personal columns
sealed (the default) beside the same with ``encrypt_at_rest: false``; medians of ``REPEATS``.

Each run starts from the same generated files in a fresh project folder (so the warehouse,
the store and the keys are new), then times ``ws.ingest.run()`` and ``ws.build()`` (identity,
profiles, segments) and checks what the warehouse file holds: how many of the generator's
e-mails appear in clear. ``JZ_BENCH_CUSTOMERS`` sets the size (default 100,000 customers x
90 days). Figures go to ``benchmarks/results/encryption_at_rest.json``.

    python -m benchmarks.encryption_at_rest
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

import pyarrow.parquet as pq

from jingzhun.datagen import generate, source_specs
from jingzhun.workspace import Workspace

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results"
CUSTOMERS = int(os.environ.get("JZ_BENCH_CUSTOMERS", "100000"))
DAYS = 90
SEED = 2024
START = dt.date(2024, 1, 1)
REPEATS = 3
SAMPLE = 2000  # e-mails searched for in the warehouse file


def _generated() -> Path:
    folder = DATA / f"encryption_{CUSTOMERS}" / "generated"
    if not (folder / "ready").exists():
        shutil.rmtree(folder, ignore_errors=True)
        print(f"generating {CUSTOMERS:,} customers x {DAYS} days ...", flush=True)
        generate(folder, customers=CUSTOMERS, days=DAYS, seed=SEED, start=START)
        (folder / "ready").write_text("ok")
    return folder


def _project(generated: Path, *, encrypted: bool, run: int) -> Path:
    root = generated.parent / f"{'sealed' if encrypted else 'clear'}_{run}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "sources").mkdir(parents=True)
    (root / "data").symlink_to(generated, target_is_directory=True)
    for stem, text in source_specs("data").items():
        (root / "sources" / f"gen_{stem}.yml").write_text(text)
    (root / "jingzhun.yml").write_text("name: bench\ncurrency: CNY\nregion: CN\n")
    if not encrypted:
        (root / "privacy.yml").write_text("encrypt_at_rest: false\n")
    return root


def _clear_emails(root: Path, emails: list[str]) -> int:
    data = b"".join(p.read_bytes() for p in (root / "warehouse").iterdir() if p.is_file())
    return sum(e.encode() in data for e in emails)


def main() -> None:
    generated = _generated()
    customers = pq.read_table(generated / "customers.parquet", columns=["email"])
    emails = [e for e in customers.column("email").to_pylist() if e][:SAMPLE]
    runs: dict[str, dict[str, list[float]]] = {}
    clear: dict[str, int] = {}
    for run in range(REPEATS):
        for encrypted in (True, False):
            mode = "encrypted" if encrypted else "clear"
            root = _project(generated, encrypted=encrypted, run=run)
            with Workspace.open(root) as ws:
                started = time.perf_counter()
                assert ws.ingest.run().ok
                ingested = time.perf_counter()
                ws.build()
                built = time.perf_counter()
            times = runs.setdefault(mode, {"ingest_s": [], "build_s": []})
            times["ingest_s"].append(ingested - started)
            times["build_s"].append(built - ingested)
            clear[mode] = _clear_emails(root, emails)
            print(
                f"run {run} {mode}: ingest {ingested - started:.1f} s, "
                f"build {built - ingested:.1f} s",
                flush=True,
            )
            shutil.rmtree(root)
    medians = {
        mode: {name: round(statistics.median(values), 2) for name, values in times.items()}
        for mode, times in runs.items()
    }
    result = {
        "benchmark": "encryption_at_rest",
        "what": "ingest + build with personal columns sealed (AES-GCM at the engine seam, "
        "AES-SIV in the store) beside encrypt_at_rest: false; medians",
        "customers": CUSTOMERS,
        "days": DAYS,
        "repeats": REPEATS,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_after": list(os.getloadavg()),
        },
        "median_seconds": medians,
        "ratio_encrypted_to_clear": {
            name: round(medians["encrypted"][name] / medians["clear"][name], 2)
            for name in ("ingest_s", "build_s")
        },
        "emails_in_clear_in_warehouse_file": {"searched": len(emails), **clear},
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "encryption_at_rest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median_seconds"]), json.dumps(result["ratio_encrypted_to_clear"]))


if __name__ == "__main__":
    main()
