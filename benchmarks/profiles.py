"""Profiles for 1M generated customers (~10M events): jingzhun's RFM beside the same RFM as
bare DuckDB SQL and as pandas, and the whole ``build_profiles``; medians of 3.

The warehouse is built once and cached in ``benchmarks/data/``: the seeded generator
(1,000,000 customers x 180 days: 1.03M customer records, 4.9M order lines, 10.7M events),
``jingzhun ingest``, and an ``identity_map`` made from the generator's answer key (every
source's customer id to its person, every device to the person first seen with it) as a
stand-in for the identity stage. ``JZ_BENCH_CUSTOMERS`` runs a smaller size.

Timed, each from the stored warehouse to a stored result:

- ``jingzhun_rfm``: ``rfm_table(...)`` written into a new table through the engine.
- ``duckdb_sql_rfm``: the same definitions as one hand-written ``CREATE TABLE AS SELECT``.
- ``pandas_rfm``: the needed columns fetched into pandas, then merges, group-bys and ranks.
- ``jingzhun_build_profiles``: every profile column, written to ``profiles`` and
  ``tag_history`` (a first build: no earlier history).
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

import duckdb
import numpy as np
import pandas as pd

from jingzhun.datagen import generate, source_specs
from jingzhun.profile import ProfileSettings, build_profiles, rfm_table
from jingzhun.workspace import Workspace

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results"
CUSTOMERS = int(os.environ.get("JZ_BENCH_CUSTOMERS", "1000000"))
DAYS = 180
SEED = 2024
START = dt.date(2024, 1, 1)
AS_OF = START + dt.timedelta(days=DAYS - 1)
REPEATS = 3
SETTINGS = ProfileSettings(include_late_loads=True)  # generated history, loaded today


def _project() -> Path:
    """The benchmark project with its warehouse loaded (cached)."""
    root = DATA / f"profiles_{CUSTOMERS}"
    marker = root / "ready.json"
    if marker.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    data = root / "data"
    print(f"generating {CUSTOMERS:,} customers x {DAYS} days ...", flush=True)
    report = generate(data, customers=CUSTOMERS, days=DAYS, seed=SEED, start=START)
    (root / "sources").mkdir(parents=True)
    for stem, text in source_specs("data").items():
        (root / "sources" / f"gen_{stem}.yml").write_text(text)
    (root / "jingzhun.yml").write_text("name: bench\ncurrency: CNY\nregion: CN\n")
    started = time.perf_counter()
    with Workspace.open(root) as ws:
        load = ws.ingest.run()
        assert load.ok, load.to_dict()
        tables = ws.tables()
    print(f"ingested in {time.perf_counter() - started:.0f} s: {tables}", flush=True)
    con = duckdb.connect(str(root / "warehouse" / "warehouse.duckdb"))
    _identity_from_truth(con, data / "identity_truth.parquet")
    (nodes,) = con.execute("SELECT count(*) FROM identity_map").fetchone() or (0,)
    con.close()
    marker.write_text(
        json.dumps(
            {"generated": report.to_dict()["rows"], "tables": tables, "identity_nodes": nodes}
        )
    )
    return root


def _identity_from_truth(con: duckdb.DuckDBPyConnection, truth: Path) -> None:
    """identity_map from the generator's answer key: the identity stage's stand-in."""
    con.execute(
        """
        CREATE OR REPLACE TABLE identity_map AS
        WITH truth AS (SELECT customer_id, person_id FROM read_parquet(?)),
        ids AS (
            SELECT DISTINCT _source, customer_id FROM raw_customers
            UNION SELECT DISTINCT _source, customer_id FROM raw_orders
            WHERE customer_id IS NOT NULL
            UNION SELECT DISTINCT _source, customer_id FROM raw_events
            WHERE customer_id IS NOT NULL
        ),
        devices AS (
            SELECT _source, anonymous_id, arg_min(customer_id, occurred_at) AS customer_id
            FROM raw_events
            WHERE customer_id IS NOT NULL AND anonymous_id IS NOT NULL
            GROUP BY _source, anonymous_id
        )
        SELECT ids._source AS node_source, ids.customer_id AS node_id,
               'customer' AS node_kind, 'p' || truth.person_id AS customer_key
        FROM ids JOIN truth USING (customer_id)
        UNION ALL
        SELECT devices._source, devices.anonymous_id, 'anonymous', 'p' || truth.person_id
        FROM devices JOIN truth USING (customer_id)
        """,
        [str(truth)],
    )
    con.execute(
        "ALTER TABLE identity_map ADD COLUMN built_at TIMESTAMPTZ "
        "DEFAULT TIMESTAMPTZ '2024-06-29 00:00:00+00'"
    )
    con.execute("ALTER TABLE identity_map ADD COLUMN as_of DATE DEFAULT DATE '2024-06-28'")


# The same definitions as jingzhun.profile._facts / _rfm, written out by hand.
RFM_SQL = """
CREATE OR REPLACE TABLE rfm_sql AS
WITH nodes AS (
    SELECT node_source, node_id, customer_key FROM identity_map WHERE node_kind = 'customer'
),
unambiguous AS (
    SELECT node_id, min(customer_key) AS customer_key FROM nodes
    GROUP BY node_id HAVING count(DISTINCT customer_key) = 1
),
orders AS (
    SELECT _source, order_id, ordered_at, coalesce(is_return, false) AS is_return,
           total_amount, customer_id
    FROM raw_orders WHERE ordered_at < TIMESTAMP '{end}'
),
keyed AS (
    SELECT o.*, coalesce(n.customer_key, u.customer_key) AS customer_key
    FROM orders o
    LEFT JOIN nodes n ON n.node_source = o._source AND n.node_id = o.customer_id
    LEFT JOIN unambiguous u ON u.node_id = o.customer_id
),
lines AS (
    SELECT _source, order_id,
           sum(amount) FILTER (WHERE NOT line_return) AS sales,
           sum(abs(amount)) FILTER (WHERE line_return) AS returned,
           count(*) AS n
    FROM (
        SELECT _source, order_id,
               coalesce(coalesce(amount, CAST(quantity * unit_price AS DECIMAL(18, 4))), 0)
                   AS amount,
               coalesce(is_return, false) OR quantity < 0 AS line_return
        FROM raw_order_items
    )
    GROUP BY _source, order_id
),
valued AS (
    SELECT k.customer_key, k.ordered_at, k.is_return,
           CASE WHEN l.n IS NOT NULL THEN coalesce(l.sales, 0)
                ELSE coalesce(k.total_amount, 0) END AS sales,
           coalesce(l.returned, 0) AS returned_lines, l.n IS NOT NULL AS has_lines
    FROM keyed k LEFT JOIN lines l ON l._source = k._source AND l.order_id = k.order_id
    WHERE k.customer_key IS NOT NULL
),
per_customer AS (
    SELECT customer_key,
           count(*) FILTER (WHERE NOT is_return) AS frequency,
           min(DATE '{as_of}' - CAST(ordered_at AS DATE)) FILTER (WHERE NOT is_return)
               AS recency_days,
           CAST(sum(CASE WHEN is_return THEN 0 ELSE sales END)
                - sum(CASE WHEN is_return THEN abs(sales) + returned_lines
                           WHEN has_lines THEN returned_lines ELSE 0 END)
                AS DECIMAL(18, 4)) AS monetary
    FROM valued GROUP BY customer_key
),
scored AS (
    SELECT *,
        CASE WHEN frequency > 0 THEN ntile(5) OVER (PARTITION BY frequency > 0
            ORDER BY recency_days DESC, customer_key) END AS r_score,
        CASE WHEN frequency > 0 THEN ntile(5) OVER (PARTITION BY frequency > 0
            ORDER BY frequency, customer_key) END AS f_score,
        CASE WHEN frequency > 0 THEN ntile(5) OVER (PARTITION BY frequency > 0
            ORDER BY monetary, customer_key) END AS m_score
    FROM per_customer
)
SELECT customer_key, recency_days, frequency, monetary, r_score, f_score, m_score,
       (f_score + m_score) / 2.0 AS fm_score,
       CASE {segments} END AS rfm_segment
FROM scored
"""


def _segments_sql() -> str:
    return " ".join(
        f"WHEN r_score BETWEEN {s.r[0]} AND {s.r[1]} "
        f"AND (f_score + m_score) / 2.0 BETWEEN {s.fm[0]} AND {s.fm[1]} "
        f"THEN '{s.name.replace(chr(39), chr(39) * 2)}'"
        for s in SETTINGS.rfm_segments
    )


def run_jingzhun_rfm(root: Path) -> float:
    with Workspace.open(root) as ws:
        engine = ws.engine
        engine.drop("rfm_jingzhun")
        started = time.perf_counter()
        expr = rfm_table(engine, as_of=AS_OF, settings=SETTINGS)
        engine.create("rfm_jingzhun", expr.schema().to_pyarrow())
        engine.write("rfm_jingzhun", expr)
        return time.perf_counter() - started


def run_duckdb_sql_rfm(root: Path) -> float:
    con = duckdb.connect(str(root / "warehouse" / "warehouse.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    end = (AS_OF + dt.timedelta(days=1)).isoformat()
    sql = RFM_SQL.format(end=end, as_of=AS_OF.isoformat(), segments=_segments_sql())
    started = time.perf_counter()
    con.execute(sql)
    seconds = time.perf_counter() - started
    con.close()
    return seconds


def _ntile(n: int, buckets: int = 5) -> np.ndarray:
    size, extra = divmod(n, buckets)
    sizes = [size + (1 if b < extra else 0) for b in range(buckets)]
    return np.repeat(np.arange(1, buckets + 1), sizes)


def _fetch(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    return con.execute(sql).fetch_arrow_table().to_pandas()


def run_pandas_rfm(root: Path) -> float:
    con = duckdb.connect(str(root / "warehouse" / "warehouse.duckdb"), read_only=True)
    started = time.perf_counter()
    nodes = _fetch(
        con,
        "SELECT node_source, node_id, customer_key FROM identity_map WHERE node_kind = 'customer'",
    )
    orders = _fetch(
        con,
        "SELECT _source, order_id, customer_id, ordered_at, is_return, total_amount "
        "FROM raw_orders",
    )
    items = _fetch(
        con,
        "SELECT _source, order_id, quantity, unit_price, amount, is_return FROM raw_order_items",
    )
    con.close()
    end = pd.Timestamp(AS_OF + dt.timedelta(days=1), tz="UTC")
    orders = orders[orders["ordered_at"] < end]
    orders["is_return"] = orders["is_return"].fillna(False).astype(bool)
    per_id = nodes.groupby("node_id")["customer_key"].agg(["nunique", "min"])
    unambiguous = per_id.loc[per_id["nunique"] == 1, "min"].rename("uid_key")
    keyed = orders.merge(
        nodes,
        how="left",
        left_on=["_source", "customer_id"],
        right_on=["node_source", "node_id"],
    ).merge(unambiguous, how="left", left_on="customer_id", right_index=True)
    keyed["customer_key"] = keyed["customer_key"].fillna(keyed["uid_key"])
    keyed = keyed[keyed["customer_key"].notna()]
    amount = items["amount"].fillna(items["quantity"] * items["unit_price"]).fillna(0)
    items = items.assign(
        amount=amount.astype(float),
        line_return=items["is_return"].fillna(False).astype(bool) | (items["quantity"] < 0),
    )
    items["sales"] = items["amount"].where(~items["line_return"], 0.0)
    items["returned"] = items["amount"].abs().where(items["line_return"], 0.0)
    lines = items.groupby(["_source", "order_id"]).agg(
        sales=("sales", "sum"), returned=("returned", "sum"), n=("amount", "size")
    )
    valued = keyed.merge(lines, how="left", left_on=["_source", "order_id"], right_index=True)
    has_lines = valued["n"].notna()
    sales = valued["sales"].where(has_lines, valued["total_amount"].astype(float)).fillna(0.0)
    returned_lines = valued["returned"].fillna(0.0)
    is_return = valued["is_return"]
    valued["gross"] = sales.where(~is_return, 0.0)
    valued["out"] = np.where(
        is_return, sales.abs() + returned_lines, np.where(has_lines, returned_lines, 0.0)
    )
    valued["day"] = valued["ordered_at"].dt.tz_convert("UTC").dt.normalize()
    sales_only = valued[~is_return]
    per = pd.DataFrame(
        {
            "frequency": sales_only.groupby("customer_key").size(),
            "last_day": sales_only.groupby("customer_key")["day"].max(),
        }
    )
    money = valued.groupby("customer_key")[["gross", "out"]].sum()
    per = money.join(per, how="left")
    per["monetary"] = per["gross"] - per["out"]
    per["frequency"] = per["frequency"].fillna(0).astype(int)
    as_of = pd.Timestamp(AS_OF, tz="UTC")
    per["recency_days"] = (as_of - per["last_day"]).dt.days
    per = per.reset_index()
    buyers = per[per["frequency"] > 0].copy()
    n = len(buyers)
    for score, columns, ascending in (
        ("r_score", ["recency_days", "customer_key"], [False, True]),
        ("f_score", ["frequency", "customer_key"], [True, True]),
        ("m_score", ["monetary", "customer_key"], [True, True]),
    ):
        ordered = buyers.sort_values(columns, ascending=ascending)
        buyers.loc[ordered.index, score] = _ntile(n)
    fm = (buyers["f_score"] + buyers["m_score"]) / 2
    segment = pd.Series(None, index=buyers.index, dtype=object)
    for s in reversed(SETTINGS.rfm_segments):  # first match wins: assign the last first
        hit = buyers["r_score"].between(*s.r) & fm.between(*s.fm)
        segment[hit] = s.name
    buyers["rfm_segment"] = segment
    result = per.merge(
        buyers[["customer_key", "r_score", "f_score", "m_score", "rfm_segment"]],
        how="left",
        on="customer_key",
    )
    result.to_parquet(root / "rfm_pandas.parquet")
    return time.perf_counter() - started


def run_build_profiles(root: Path) -> float:
    with Workspace.open(root) as ws:
        engine = ws.engine
        engine.drop("profiles")
        engine.drop("tag_history")
        started = time.perf_counter()
        report = build_profiles(engine, as_of=AS_OF, settings=SETTINGS)
        seconds = time.perf_counter() - started
    print(f"  profiles: {report.customers:,}; segments {report.segments}", flush=True)
    return seconds


def _check_same(root: Path) -> dict[str, object]:
    """The three RFM results agree (jingzhun and SQL exactly, pandas on money to a cent)."""
    con = duckdb.connect(str(root / "warehouse" / "warehouse.duckdb"), read_only=True)
    columns = "customer_key, recency_days, frequency, monetary, r_score, f_score, m_score"
    differ = con.execute(
        f"SELECT count(*) FROM ((SELECT {columns}, rfm_segment FROM rfm_jingzhun "
        f"EXCEPT SELECT {columns}, rfm_segment FROM rfm_sql) UNION ALL "
        f"(SELECT {columns}, rfm_segment FROM rfm_sql "
        f"EXCEPT SELECT {columns}, rfm_segment FROM rfm_jingzhun))"
    ).fetchone()
    pandas_differ = con.execute(
        "SELECT count(*) FROM rfm_sql s FULL JOIN read_parquet(?) p USING (customer_key) "
        "WHERE s.customer_key IS NULL OR p.customer_key IS NULL "
        "OR s.frequency <> p.frequency OR s.r_score IS DISTINCT FROM p.r_score "
        "OR s.f_score IS DISTINCT FROM p.f_score OR s.m_score IS DISTINCT FROM p.m_score "
        "OR s.rfm_segment IS DISTINCT FROM p.rfm_segment "
        "OR abs(s.monetary - p.monetary) > 0.01",
        [str(root / "rfm_pandas.parquet")],
    ).fetchone()
    rows = con.execute("SELECT count(*), count(r_score) FROM rfm_sql").fetchone()
    con.close()
    assert differ is not None and pandas_differ is not None and rows is not None
    return {
        "customers_with_orders": rows[0],
        "buyers_scored": rows[1],
        "rows_differing_jingzhun_vs_sql": differ[0],
        "rows_differing_pandas_vs_sql": pandas_differ[0],
    }


def main() -> None:
    root = _project()
    ready = json.loads((root / "ready.json").read_text())
    runs: dict[str, Callable[[Path], float]] = {
        "jingzhun_rfm": run_jingzhun_rfm,
        "duckdb_sql_rfm": run_duckdb_sql_rfm,
        "pandas_rfm": run_pandas_rfm,
        "jingzhun_build_profiles": run_build_profiles,
    }
    timings: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(REPEATS):
        # Alternate the order so no side always runs on a warm cache.
        order = list(runs.items())
        if repeat % 2:
            order.reverse()
        for name, func in order:
            seconds = func(root)
            timings[name].append(round(seconds, 3))
            print(f"run {repeat + 1}: {name} {seconds:.2f} s", flush=True)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    base = medians["duckdb_sql_rfm"]
    result = {
        "benchmark": "profiles",
        "customers_generated": CUSTOMERS,
        "days": DAYS,
        "as_of": AS_OF.isoformat(),
        "warehouse": ready,
        "repeats": REPEATS,
        "seconds": timings,
        "median_seconds": medians,
        "ratio_jingzhun_rfm_to_duckdb_sql": round(medians["jingzhun_rfm"] / base, 2),
        "ratio_pandas_rfm_to_duckdb_sql": round(medians["pandas_rfm"] / base, 2),
        "ratio_build_profiles_to_duckdb_sql_rfm": round(
            medians["jingzhun_build_profiles"] / base, 2
        ),
        "agreement": _check_same(root),
        "baseline": "the same RFM as one hand-written DuckDB CREATE TABLE AS SELECT",
        "goal": "jingzhun RFM <= 1.3 x bare DuckDB SQL (issue 3)",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if CUSTOMERS == 1_000_000 else f"_{CUSTOMERS}"
    out = RESULTS / f"profiles{suffix}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result["median_seconds"]), json.dumps(result["agreement"]))
    print(
        f"ratio jingzhun/sql {result['ratio_jingzhun_rfm_to_duckdb_sql']}, "
        f"pandas/sql {result['ratio_pandas_rfm_to_duckdb_sql']}"
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
