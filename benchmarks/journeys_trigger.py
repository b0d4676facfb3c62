"""Journey triggers over a generated shop of 1M customers (DuckDB): how long evaluating a
trigger takes, from the stored warehouse to the candidates in memory; medians of 3 after one
warm-up.

The warehouse is built once and cached in ``benchmarks/data/journeys_<customers>``: the seeded
generator (1,000,000 customers x 90 days, region GB), ``jingzhun ingest``, an
``identity_map`` made from the generator's answer key (a stand-in for the identity stage, as
``benchmarks/profiles.py`` does) and ``build_profiles`` as of the last day.

Timed:

- ``event_day``: ``added_to_cart`` in the last day (an incremental run of the abandoned-cart
  trigger): events attributed to customers through the identity map, first per customer;
- ``event_all``: the same trigger over all 90 days (a first run with a long lookback);
- ``birthday_day``: birthdays of the day over every profile;
- ``enroll_day``: ``JourneyRunner.enroll`` for the day (trigger, re-entry rules, enrolments
  and history written to a fresh SQLite store).

Goal (issue 8): a trigger over 1M customers evaluated in <= 60 s. ``--customers N`` runs a
smaller shop (its own cache folder).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from jingzhun.datagen import generate, source_specs
from jingzhun.journeys import JourneyRunner, Window, parse_journey, trigger_candidates
from jingzhun.profile import ProfileSettings, build_profiles
from jingzhun.store import OperationalStore
from jingzhun.workspace import Workspace

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results"
DAYS = 90
SEED = 2024
START = dt.date(2024, 1, 1)
AS_OF = START + dt.timedelta(days=DAYS - 1)
NOW = dt.datetime.combine(AS_OF, dt.time(20, 0), tzinfo=dt.UTC)
REPEATS = 3

CART = {
    "name": "cart",
    "trigger": {"event": "added_to_cart", "lookback": "1d"},
    "steps": [
        {"id": "bought", "wait_for": {"event": "order", "within": "1h"}, "on_event": "end"},
        {"id": "tag", "tag": {"name": "cart"}},
    ],
}
BIRTHDAY = {
    "name": "bday",
    "trigger": {"birthday": True},
    "steps": [{"id": "hi", "tag": {"name": "bday"}}],
}


def _identity_from_truth(con: duckdb.DuckDBPyConnection, truth: Path) -> None:
    """identity_map from the generator's answer key (as in benchmarks/profiles.py)."""
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
        f"DEFAULT TIMESTAMPTZ '{AS_OF + dt.timedelta(days=1)} 00:00:00+00'"
    )
    con.execute(f"ALTER TABLE identity_map ADD COLUMN as_of DATE DEFAULT DATE '{AS_OF}'")


def _project(customers: int) -> Path:
    root = DATA / f"journeys_{customers}"
    marker = root / "ready.json"
    if marker.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    data = root / "data"
    started = time.perf_counter()
    print(f"generating {customers:,} customers x {DAYS} days ...", flush=True)
    report = generate(data, customers=customers, days=DAYS, seed=SEED, start=START, region="GB")
    (root / "sources").mkdir(parents=True)
    for stem, text in source_specs("data").items():
        (root / "sources" / f"gen_{stem}.yml").write_text(text)
    (root / "jingzhun.yml").write_text(
        "name: bench\ntimezone: Europe/London\ncurrency: GBP\nregion: GB\n"
    )
    with Workspace.open(root) as ws:
        load = ws.ingest.run()
        assert load.ok, load.to_dict()
    con = duckdb.connect(str(root / "warehouse" / "warehouse.duckdb"))
    _identity_from_truth(con, data / "identity_truth.parquet")
    con.close()
    with Workspace.open(root) as ws:
        built = build_profiles(
            ws.engine, as_of=AS_OF, settings=ProfileSettings(include_late_loads=True)
        )
        tables = ws.tables()
    marker.write_text(
        json.dumps(
            {
                "generated": report.to_dict()["rows"],
                "tables": tables,
                "profiles": built.customers,
                "seconds_to_build": round(time.perf_counter() - started, 1),
            }
        )
    )
    print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
    return root


def _median(run: Callable[[], int]) -> tuple[float, list[float], int]:
    result = run()  # warm-up
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        assert run() == result
        times.append(round(time.perf_counter() - started, 3))
    return statistics.median(times), times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()
    root = _project(args.customers)
    RESULTS.mkdir(parents=True, exist_ok=True)
    cart, problems = parse_journey(CART, file=Path("cart.yml"))
    birthday, more = parse_journey(BIRTHDAY, file=Path("bday.yml"))
    assert cart is not None and birthday is not None, problems + more
    day = Window(NOW - dt.timedelta(days=1), NOW)
    whole = Window(dt.datetime.combine(START, dt.time(), tzinfo=dt.UTC), NOW)
    runs: dict[str, dict[str, object]] = {}
    with Workspace.open(root) as ws:
        engine = ws.engine

        def count(spec, window) -> Callable[[], int]:  # type: ignore[no-untyped-def]
            def go() -> int:
                return trigger_candidates(engine, spec, window, timezone="Europe/London").num_rows

            return go

        def enroll() -> int:
            folder = root / "state" / "bench_store"
            shutil.rmtree(folder, ignore_errors=True)
            with OperationalStore.open(f"sqlite:///{folder}/journeys.db", root) as store:
                store.migrate()
                runner = JourneyRunner(engine, store, {"cart": cart}, timezone="Europe/London")
                return runner.enroll(NOW).total("enrolled")

        for name, job in {
            "event_day": count(cart, day),
            "event_all": count(cart, whole),
            "birthday_day": count(birthday, day),
            "enroll_day": enroll,
        }.items():
            median, times, rows = _median(job)
            runs[name] = {"median_seconds": round(median, 3), "seconds": times, "customers": rows}
            print(json.dumps({name: runs[name]}), flush=True)
    figures = {
        "benchmark": "journeys_trigger",
        "customers_generated": args.customers,
        "days": DAYS,
        "now": NOW.isoformat(),
        "warehouse": json.loads((root / "ready.json").read_text()),
        "repeats": REPEATS,
        "runs": runs,
        "goal": "a trigger over 1M customers evaluated in <= 60 s (issue 8)",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    name = (
        "journeys_trigger.json"
        if args.customers == 1_000_000
        else (f"journeys_trigger_{args.customers}.json")
    )
    out = RESULTS / name
    out.write_text(json.dumps(figures, indent=2))
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
