"""What encryption at rest costs: ingest and build of a generated shop with personal columns
sealed (the default) beside the same with ``encrypt_at_rest: false``; medians of ``REPEATS``.

Each run starts from the same generated files in a fresh project folder (so the warehouse,
the store and the keys are new), then times ``ws.ingest.run()`` and ``ws.build()`` (identity,
profiles, segments) and counts, through a connection without the key, how the personal
values are stored: sealed (``jz1:``) or in clear. (Searching the file's bytes for e-mails
proves little at this size: DuckDB compresses strings, so even clear values rarely appear
verbatim.) ``JZ_BENCH_CUSTOMERS`` sets the size (default 100,000 customers x 90 days).
Figures go to ``benchmarks/results/encryption_at_rest.json``.

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

from jingzhun.core import EngineSettings
from jingzhun.datagen import generate, source_specs
from jingzhun.engine import PREFIX, connect, personal_columns
from jingzhun.workspace import Workspace

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results"
CUSTOMERS = int(os.environ.get("JZ_BENCH_CUSTOMERS", "100000"))
DAYS = 90
SEED = 2024
START = dt.date(2024, 1, 1)
REPEATS = 3


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


def _stored(root: Path) -> dict[str, int]:
    """Personal values stored sealed and in clear, over every table (no key: as stored)."""
    counts = {"sealed": 0, "clear": 0}
    with connect(EngineSettings(), root) as engine:
        for name in engine.tables():
            table = engine.read(name)
            for column in personal_columns(name, table.columns):
                if not table[column].type().is_string():
                    continue
                value = table[column]
                sealed = value.startswith(PREFIX)
                found = engine.execute(
                    table.aggregate(sealed=sealed.sum(), clear=(value.notnull() & ~sealed).sum())
                ).to_pylist()[0]
                counts["sealed"] += int(found["sealed"] or 0)
                counts["clear"] += int(found["clear"] or 0)
    return counts


def main() -> None:
    generated = _generated()
    runs: dict[str, dict[str, list[float]]] = {}
    stored: dict[str, dict[str, int]] = {}
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
            stored[mode] = _stored(root)
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
        "personal_values_stored": stored,
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "encryption_at_rest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median_seconds"]), json.dumps(result["ratio_encrypted_to_clear"]))


if __name__ == "__main__":
    main()
