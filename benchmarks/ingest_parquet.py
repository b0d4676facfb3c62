"""Ingest 10M generated order lines from Parquet, beside a bare DuckDB CTAS, medians of 3."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from jingzhun.datagen import generate, source_specs
from jingzhun.workspace import Workspace

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results"
LINES = 10_000_000
REPEATS = 3


def _input_file() -> Path:
    """10M order lines from the seeded generator (cached)."""
    target = DATA / f"order_lines_{LINES}.parquet"
    if target.exists():
        return target
    generated = DATA / "generated"
    customers = 1_000_000
    while True:
        print(f"generating {customers:,} customers x 365 days ...", flush=True)
        shutil.rmtree(generated, ignore_errors=True)
        generate(generated, customers=customers, days=365, seed=2024)
        lines = pq.ParquetFile(generated / "order_lines.parquet").metadata.num_rows
        if lines >= LINES:
            break
        customers = int(customers * LINES / lines * 1.05) + 1
    table = pq.read_table(generated / "order_lines.parquet").slice(0, LINES)
    pq.write_table(table, target, row_group_size=1_000_000)
    print(f"wrote {target.name}: {table.num_rows:,} rows", flush=True)
    return target


def _spec_text(data_file: Path) -> str:
    text = source_specs("data")["order_lines"]
    return text.replace("data/order_lines.parquet", data_file.as_posix())


def run_jingzhun(data_file: Path, workdir: Path) -> float:
    """Seconds for `jingzhun ingest` of the file into a fresh project."""
    project = workdir / "project"
    (project / "sources").mkdir(parents=True)
    (project / "jingzhun.yml").write_text("name: bench\ncurrency: USD\n")
    (project / "sources" / "order_lines.yml").write_text(_spec_text(data_file))
    started = time.perf_counter()
    with Workspace.open(project) as ws:
        report = ws.ingest.run()
    seconds = time.perf_counter() - started
    assert report.ok, report.to_dict()
    assert report.files[0].rows_loaded == LINES, report.to_dict()
    return seconds


def run_duckdb_ctas(data_file: Path, workdir: Path) -> float:
    """Seconds for a bare CREATE TABLE AS SELECT * FROM read_parquet into a fresh file."""
    started = time.perf_counter()
    con = duckdb.connect(str(workdir / "bare.duckdb"))
    con.execute("CREATE TABLE order_lines AS SELECT * FROM read_parquet(?)", [str(data_file)])
    rows = con.execute("SELECT count(*) FROM order_lines").fetchone()
    con.close()
    seconds = time.perf_counter() - started
    assert rows is not None and rows[0] == LINES
    return seconds


def main() -> None:
    data_file = _input_file()
    timings: dict[str, list[float]] = {"jingzhun_ingest": [], "duckdb_ctas": []}
    for repeat in range(REPEATS):
        # Alternate the order so neither side always runs on a warm page cache.
        order = [("jingzhun_ingest", run_jingzhun), ("duckdb_ctas", run_duckdb_ctas)]
        if repeat % 2:
            order.reverse()
        for name, func in order:
            with tempfile.TemporaryDirectory(dir=DATA) as tmp:
                seconds = func(data_file, Path(tmp))
            timings[name].append(round(seconds, 3))
            print(f"run {repeat + 1}: {name} {seconds:.2f} s", flush=True)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    result = {
        "benchmark": "ingest_parquet",
        "rows": LINES,
        "repeats": REPEATS,
        "seconds": timings,
        "median_seconds": medians,
        "ratio_jingzhun_to_duckdb_ctas": round(
            medians["jingzhun_ingest"] / medians["duckdb_ctas"], 2
        ),
        "rows_per_second_jingzhun": round(LINES / medians["jingzhun_ingest"]),
        "baseline": "DuckDB CREATE TABLE AS SELECT * FROM read_parquet(...) into a fresh file",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
        },
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "ingest_parquet.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median_seconds"]), f"ratio {result['ratio_jingzhun_to_duckdb_ctas']}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
