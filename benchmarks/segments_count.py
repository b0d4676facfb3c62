"""Segment counts on 1M and 10M profiles (DuckDB): jingzhun's compiled rule beside the same
count as hand-written DuckDB SQL; medians of 15 runs after one warm-up.

The ``profiles`` table is synthetic (seeded: numpy draws written once with DuckDB's
``range``), with the columns the rules read. Timed, from a stored table to a number:

- ``jingzhun_count``: ``compile_segment`` (parse → Ibis → SQL) and ``count_members`` — what
  ``jingzhun segment count`` does after opening the project.
- ``duckdb_sql_count``: the same predicate as a hand-written ``SELECT count(*) ... WHERE``.

Targets (issue 4): median <= 50 ms on 1M, <= 300 ms on 10M. ``JZ_BENCH_SIZES`` picks sizes
(e.g. ``1000000``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from jingzhun.core import EngineKind, EngineSettings
from jingzhun.engine import connect
from jingzhun.segments import Catalog, compile_segment, count_members, parse_segment

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results"
SIZES = [int(s) for s in os.environ.get("JZ_BENCH_SIZES", "1000000,10000000").split(",")]
REPEATS = 15
AS_OF = dt.date(2024, 6, 30)

RULES = {
    "simple": (
        "frequency >= 2 AND city != 'Shanghai' AND has_valid_phone",
        "frequency >= 2 AND city <> 'Shanghai' AND has_valid_phone",
    ),
    "nested": (
        "(rfm_segment IN ('Champions', 'Loyal') OR monetary > 500) AND NOT "
        "lifecycle_stage = 'churned' AND age BETWEEN 25 AND 54 AND sms_consent = true",
        "(rfm_segment IN ('Champions', 'Loyal') OR monetary > 500) AND NOT "
        "coalesce(lifecycle_stage = 'churned', false) AND age BETWEEN 25 AND 54 "
        "AND sms_consent = true",
    ),
}

SETUP = """
CREATE TABLE profiles AS
SELECT
  'ck_' || lpad(i::VARCHAR, 9, '0') AS customer_key,
  DATE '2024-06-30' AS as_of,
  (hash(i, 1) % 12)::BIGINT AS frequency,
  ((hash(i, 2) % 200000) / 100.0)::DECIMAL(18, 4) AS monetary,
  (hash(i, 3) % 400)::BIGINT AS recency_days,
  (['Champions', 'Loyal', 'At risk', 'Lost', 'New', 'Promising'])[1 + (hash(i, 4) % 6)::BIGINT]
    AS rfm_segment,
  (['active', 'new', 'at risk', 'dormant', 'churned'])[1 + (hash(i, 5) % 5)::BIGINT]
    AS lifecycle_stage,
  CASE WHEN hash(i, 6) % 10 = 0 THEN NULL
       ELSE (['Shanghai', 'Beijing', 'Shenzhen', 'Hangzhou'])[1 + (hash(i, 7) % 4)::BIGINT]
  END AS city,
  hash(i, 8) % 4 <> 0 AS has_valid_phone,
  hash(i, 9) % 2 = 0 AS sms_consent,
  (18 + hash(i, 10) % 60)::BIGINT AS age
FROM range({n}) t(i)
"""


def _warehouse(n: int) -> Path:
    root = DATA / f"segments_{n}"
    if (root / "ready").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "warehouse").mkdir(parents=True)
    print(f"writing {n:,} synthetic profiles ...", flush=True)
    with connect(EngineSettings(kind=EngineKind.DUCKDB), root) as engine:
        engine.ibis.raw_sql(SETUP.format(n=n))  # type: ignore[attr-defined]
    (root / "ready").write_text("ok")
    return root


def _median_ms(run: Callable[[], int]) -> tuple[float, int]:
    result = run()  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        assert run() == result
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    figures: dict[str, object] = {
        "benchmark": "segments_count",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "repeats": REPEATS,
        "runs": [],
    }
    for n in SIZES:
        root = _warehouse(n)
        with connect(EngineSettings(kind=EngineKind.DUCKDB), root) as engine:
            catalog = Catalog.from_engine(engine)
            con = engine.ibis.con  # type: ignore[attr-defined]
            for name, (rule, sql) in RULES.items():
                spec, problems = parse_segment({"name": name, "rule": rule}, file=Path(name))
                assert spec is not None and not problems, problems

                def ours(spec=spec, catalog=catalog) -> int:  # type: ignore[no-untyped-def]
                    compiled = compile_segment(engine, spec, as_of=AS_OF, catalog=catalog)
                    return count_members(engine, compiled)

                def bare(sql=sql, con=con) -> int:  # type: ignore[no-untyped-def]
                    return int(
                        con.execute(f"SELECT count(*) FROM profiles WHERE {sql}").fetchone()[0]
                    )

                ours_ms, ours_n = _median_ms(ours)
                bare_ms, bare_n = _median_ms(bare)
                assert ours_n == bare_n, (name, ours_n, bare_n)
                run = {
                    "profiles": n,
                    "rule": name,
                    "members": ours_n,
                    "jingzhun_count_ms": round(ours_ms, 2),
                    "duckdb_sql_count_ms": round(bare_ms, 2),
                    "ratio": round(ours_ms / bare_ms, 2),
                    "target_ms": 50 if n <= 1_000_000 else 300,
                }
                print(json.dumps(run), flush=True)
                figures["runs"].append(run)  # type: ignore[attr-defined]
    out = RESULTS / "segments_count.json"
    out.write_text(json.dumps(figures, indent=2))
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
