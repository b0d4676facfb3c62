"""Recommendations for every customer of a 1M-customer generated shop: ``jingzhun recommend
fit`` end to end (read the purchases, fit, top 10 for every customer under the business rules,
similar items, write both tables), beside the same pipeline with popularity, the baseline.

The warehouse is the one ``benchmarks/profiles.py`` builds and caches (1,000,000 customers x
180 days: 4.9M order lines, 20,000 SKUs, identity from the generator's answer key), copied to
``benchmarks/data/recommend_<N>/`` so that writing the recommendation tables leaves the
profiles benchmark's file as it was. ``JZ_BENCH_CUSTOMERS`` runs a smaller size,
``JZ_BENCH_REPEATS`` another number of repeats (default 3; medians reported).

Timed, each from the stored warehouse to stored ``recommendations`` and ``similar_items``:

- ``blend``: the default method (Replenishment reminders + co-occurrence, ALS and content
  discoveries), what ``jingzhun recommend fit`` runs.
- ``cooccurrence``: item-item co-occurrence alone.
- ``popularity``: the baseline — the same lists, rules, top-up and writes with the most
  bought items; what is left is reading, ranking and writing 10M rows.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import implicit
import lightgbm

from benchmarks.profiles import AS_OF, CUSTOMERS
from benchmarks.profiles import _project as profiles_project
from jingzhun.recommend import RecommendSettings, fit_recommendations
from jingzhun.workspace import Workspace

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results"
REPEATS = int(os.environ.get("JZ_BENCH_REPEATS", "3"))
METHODS = ("blend", "cooccurrence", "popularity")
SETTINGS = RecommendSettings(include_late_loads=True)  # generated history, loaded today


def _project() -> Path:
    """A copy of the profiles benchmark's warehouse (built by it when missing)."""
    root = DATA / f"recommend_{CUSTOMERS}"
    marker = root / "ready.json"
    if marker.exists():
        return root
    source = profiles_project()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    shutil.copyfile(source / "jingzhun.yml", root / "jingzhun.yml")
    shutil.copytree(source / "sources", root / "sources")
    shutil.copytree(source / "warehouse", root / "warehouse")
    shutil.copyfile(source / "ready.json", marker)
    return root


def run(root: Path, method: str) -> dict[str, Any]:
    with Workspace.open(root) as ws:
        report = fit_recommendations(ws.engine, as_of=AS_OF, settings=SETTINGS, method=method)
        tables = {name: ws.engine.count(name) for name in ("recommendations", "similar_items")}
    return {**report.to_dict(), "tables": tables}


def main() -> None:
    root = _project()
    ready = json.loads((root / "ready.json").read_text())
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in METHODS}
    for repeat in range(REPEATS):
        # Alternate the order so no method always runs on a warm cache.
        order = list(METHODS) if repeat % 2 == 0 else list(reversed(METHODS))
        for method in order:
            result = run(root, method)
            runs[method].append(result)
            print(
                f"run {repeat + 1}: {method} {result['seconds']:.1f} s "
                f"{json.dumps(result['stages'])} rows {result['rows']:,}",
                flush=True,
            )
    medians = {
        name: statistics.median(r["seconds"] for r in results) for name, results in runs.items()
    }
    last = {name: results[-1] for name, results in runs.items()}
    result = {
        "benchmark": "recommend",
        "customers_generated": CUSTOMERS,
        "as_of": AS_OF.isoformat(),
        "warehouse": ready,
        "repeats": REPEATS,
        "seconds": {name: [r["seconds"] for r in results] for name, results in runs.items()},
        "median_seconds": medians,
        "median_minutes": {name: round(v / 60, 2) for name, v in medians.items()},
        "stages_last_run": {name: r["stages"] for name, r in last.items()},
        "customers_with_lists": {name: r["customers"] for name, r in last.items()},
        "customers_with_purchases": last["blend"]["buyers"],
        "rows": {name: r["rows"] for name, r in last.items()},
        "rows_by_method": {name: r["rows_by_method"] for name, r in last.items()},
        "items_recommended": {name: r["items_recommended"] for name, r in last.items()},
        "similar_rows": {name: r["similar_rows"] for name, r in last.items()},
        "ratio_blend_to_popularity": round(medians["blend"] / medians["popularity"], 2),
        "ratio_cooccurrence_to_popularity": round(
            medians["cooccurrence"] / medians["popularity"], 2
        ),
        "baseline": "popularity through the same pipeline (read, rank, rules, top-up, write)",
        "goal": "top 10 for every customer of a 1M-customer shop in minutes (issue 6)",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "implicit": implicit.__version__,
            "lightgbm": lightgbm.__version__,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if CUSTOMERS == 1_000_000 else f"_{CUSTOMERS}"
    out = RESULTS / f"recommend{suffix}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result["median_seconds"]))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
