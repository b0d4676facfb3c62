"""Ordered funnels and cohort retention: small cases by hand, the warehouse version on every
engine, and on the demo warehouse the pandas and engine funnels agreeing to the customer."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from jingzhun.core import CONTRACTS, LINEAGE_FIELDS, IngestError, SpecError, Target
from jingzhun.demo import run_demo
from jingzhun.engine import Engine, arrow_schema
from jingzhun.measure import (
    cohort_retention_matrix,
    funnel,
    funnel_from_engine,
)
from jingzhun.profile import AsOf, customer_events, identity_snapshot
from jingzhun.workspace import Workspace

STEPS = ["view", "cart", "order"]
# a: views on Jan 1 and Jan 10, cart Jan 11, order Jan 12 (only the second view leads on
#    within 3 days); b: view, cart, but the order came before the cart;
# c: all three at the same moment (ties count as in order); d: a cart without a view;
# e: a browse event with no customer, which is not a step and is ignored.
EVENTS = pd.DataFrame(
    [
        ("a", "2024-01-01 00:00:00", "view"),
        ("a", "2024-01-10 00:00:00", "view"),
        ("a", "2024-01-11 00:00:00", "cart"),
        ("a", "2024-01-12 00:00:00", "order"),
        ("b", "2024-01-01 00:00:00", "view"),
        ("b", "2024-01-02 00:00:00", "cart"),
        ("b", "2024-01-01 12:00:00", "order"),
        ("c", "2024-01-01 09:00:00", "order"),
        ("c", "2024-01-01 09:00:00", "cart"),
        ("c", "2024-01-01 09:00:00", "view"),
        ("d", "2024-01-05 00:00:00", "cart"),
        (None, "2024-01-05 00:00:00", "browse"),
    ],
    columns=["who", "at", "step"],
)
# (window, customers at each step)
CASES = [
    (None, [3, 3, 2]),  # a, b, c view; all three reach cart; a and c order
    (dt.timedelta(days=3), [3, 3, 2]),  # a gets there from its second view
    (dt.timedelta(hours=12), [3, 1, 1]),  # only c is fast enough
    (dt.timedelta(seconds=1), [3, 1, 1]),
]


@pytest.mark.parametrize(("within", "counts"), CASES)
def test_funnel_by_hand(within: dt.timedelta | None, counts: list[int]) -> None:
    result = funnel(EVENTS, "who", "at", "step", STEPS, within)
    assert result.counts == counts
    assert result.steps[0].conversion_from_previous is None
    assert result.steps[1].conversion_from_previous == counts[1] / counts[0]
    assert result.steps[2].conversion_from_previous == counts[2] / counts[1]
    assert result.steps[2].conversion_from_start == counts[2] / counts[0]
    payload = result.to_dict()
    assert payload["within_seconds"] == (None if within is None else within.total_seconds())
    assert [s["step"] for s in payload["steps"]] == STEPS


def test_funnel_without_the_second_start_would_miss_a() -> None:
    only_first_views = EVENTS.drop(index=1)  # a's Jan 10 view
    assert funnel(only_first_views, "who", "at", "step", STEPS, dt.timedelta(days=3)).counts == [
        3,
        2,
        1,
    ]


def test_funnel_steps_nobody_reached() -> None:
    result = funnel(EVENTS, "who", "at", "step", ["view", "refund", "order"])
    assert result.counts == [3, 0, 0]
    assert result.steps[1].conversion_from_previous == 0.0
    assert result.steps[2].conversion_from_previous is None  # nothing to divide by
    assert result.steps[2].conversion_from_start == 0.0
    assert funnel(EVENTS, "who", "at", "step", ["cart"]).counts == [4]
    reversed_order = funnel(EVENTS, "who", "at", "step", ["order", "view"])
    assert reversed_order.counts == [3, 1]  # only c views at (not after) its order


def test_funnel_errors_name_row_and_column() -> None:
    with pytest.raises(IngestError) as missing:
        funnel(EVENTS, "customer", "at", "step", STEPS, source="events.csv")
    assert missing.value.column == "customer" and "events.csv" in str(missing.value)
    no_customer = EVENTS.copy()
    no_customer.loc[3, "who"] = None
    with pytest.raises(IngestError, match="customer is empty") as empty:
        funnel(no_customer, "who", "at", "step", STEPS)
    assert (empty.value.row, empty.value.column) == (5, "who")  # CSV line: header is 1
    bad_time = EVENTS.copy()
    bad_time.loc[2, "at"] = "soon"
    with pytest.raises(IngestError, match="'soon' is not a date") as when:
        funnel(bad_time, "who", "at", "step", STEPS, row_offset=1)
    assert when.value.row == 3
    with pytest.raises(SpecError, match="appear twice"):
        funnel(EVENTS, "who", "at", "step", ["view", "view"])
    with pytest.raises(SpecError, match="not a positive window"):
        funnel(EVENTS, "who", "at", "step", STEPS, dt.timedelta(0))
    with pytest.raises(SpecError, match="at least one"):
        funnel(EVENTS, "who", "at", "step", [])


def test_cohort_retention_matrix_by_hand() -> None:
    events = pd.DataFrame(
        {
            "who": ["a", "a", "a", "b", "b", "c", "d"],
            "at": [
                "2024-01-05",
                "2024-01-20",  # the same month again counts once
                "2024-03-01",
                "2024-01-31 23:30:00-02:00",  # 1 February in UTC
                "2024-02-10",
                "2024-02-10",
                "2024-03-31",
            ],
        }
    )
    result = cohort_retention_matrix(events, "who", "at")
    assert result.counts.index.tolist() == ["2024-01", "2024-02", "2024-03"]
    assert result.cohort_sizes == {"2024-01": 1, "2024-02": 2, "2024-03": 1}
    assert result.counts.loc["2024-01"].tolist() == [1, 0, 1]
    assert result.shares.loc["2024-02", 1] == 0.0
    payload = result.to_dict()
    assert payload["periods"] == [0, 1, 2]
    assert payload["counts"] == [[1, 0, 1], [2, 0, None], [1, None, None]]
    assert payload["shares"][0] == [1.0, 0.0, 1.0]
    weeks = cohort_retention_matrix(events, "who", "at", "week")
    assert weeks.counts.index[0] == "2024-01-01"  # weeks start on Monday

    with pytest.raises(SpecError, match="'fortnight' is not one of"):
        cohort_retention_matrix(events, "who", "at", "fortnight")
    bad = events.copy()
    bad.loc[4, "at"] = "later"
    with pytest.raises(IngestError) as when:
        cohort_retention_matrix(bad, "who", "at", source="events.csv")
    assert (when.value.row, when.value.column) == (6, "at")
    with pytest.raises(IngestError, match="no rows"):
        cohort_retention_matrix(events.iloc[0:0], "who", "at")


def _load(engine: Engine, target: Target, records: list[dict]) -> None:
    """Write rows of a raw table of source 'web', loaded in 2020; other fields are null."""
    contract = CONTRACTS[target]
    schema = arrow_schema(contract, LINEAGE_FIELDS)
    full = []
    for row, values in enumerate(records, start=1):
        record = {f.name: None for f in contract.fields}
        record.update(values)
        record.update(
            _source="web",
            _file="web.csv",
            _row=row,
            _batch_id="b1",
            _loaded_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
            _row_hash=f"h{row}" if contract.versioned else None,
        )
        full.append(record)
    engine.create(contract.raw_table, schema)
    engine.write(contract.raw_table, pa.Table.from_pylist(full, schema=schema))


def _load_events(engine: Engine, frame: pd.DataFrame) -> None:
    """(who, at, step) rows as raw_events, and each customer as a raw_customers record (the
    identity fallback knows customers from raw_customers and raw_orders)."""
    customers = sorted(frame["who"].dropna().unique())
    _load(engine, Target.CUSTOMERS, [{"customer_id": who} for who in customers])
    events = [
        {
            "event_id": f"e{i}",
            "event_type": step,
            "occurred_at": pd.Timestamp(at, tz="UTC").to_pydatetime(),
            "customer_id": None if pd.isna(who) else who,
        }
        for i, (who, at, step) in enumerate(frame.itertuples(index=False))
    ]
    _load(engine, Target.EVENTS, events)


@pytest.mark.parametrize(("within", "counts"), CASES)
def test_funnel_on_the_warehouse_by_hand(
    engine: Engine, within: dt.timedelta | None, counts: list[int]
) -> None:
    _load_events(engine, EVENTS)
    result = funnel_from_engine(engine, STEPS, within, as_of=dt.date(2024, 2, 1))
    assert result.counts == counts
    assert result.as_of == dt.date(2024, 2, 1)
    # as of Jan 10, a's cart and order are still to come: a only views
    early = funnel_from_engine(engine, STEPS, dt.timedelta(days=3), as_of=dt.date(2024, 1, 10))
    assert early.counts == [3, 2, 1]


def test_funnel_on_an_empty_warehouse(engine: Engine) -> None:
    assert funnel_from_engine(engine, STEPS).counts == [0, 0, 0]


# The demo's generated web and app sessions: a product view, add to cart, checkout and
# order_completed at the order's own time (src/jingzhun/datagen/_events.py).
DEMO_STEPS = ["product_viewed", "added_to_cart", "order_completed"]


@pytest.fixture(scope="module")
def demo_events(tmp_path_factory: pytest.TempPathFactory):
    result = run_demo(tmp_path_factory.mktemp("demo") / "demo", customers=300, seed=7)
    assert result.ok
    with Workspace.open(result.project) as ws:
        yield ws.engine


def _events_frame(engine: Engine, as_of: dt.date, late: bool = False) -> pd.DataFrame:
    events = customer_events(engine, AsOf(as_of, late), identity_snapshot(engine, as_of))
    assert events is not None
    return engine.execute(events).to_pandas()


@pytest.mark.parametrize(
    ("within", "counts"),
    [
        (None, [264, 168, 118]),
        (dt.timedelta(seconds=30), [264, 81, 0]),
        (dt.timedelta(minutes=2), [264, 157, 58]),
        (dt.timedelta(minutes=15), [264, 168, 115]),
    ],
)
def test_demo_funnel_pandas_and_engine_agree(
    demo_events: Engine, within: dt.timedelta | None, counts: list[int]
) -> None:
    engine = demo_events
    on_engine = funnel_from_engine(engine, DEMO_STEPS, within)
    frame = _events_frame(engine, on_engine.as_of)
    in_pandas = funnel(frame, "customer_key", "occurred_at", "event_type", DEMO_STEPS, within)
    assert on_engine.counts == in_pandas.counts == counts
    assert on_engine.to_dict()["steps"] == in_pandas.to_dict()["steps"]


def test_demo_funnel_as_of_a_past_date(demo_events: Engine) -> None:
    engine = demo_events
    day = dt.date(2011, 6, 30)
    # the demo was loaded today: a past date sees its events only with late loads counted
    assert funnel_from_engine(engine, DEMO_STEPS, as_of=day).counts == [0, 0, 0]
    past = funnel_from_engine(engine, DEMO_STEPS, as_of=day, include_late_loads=True)
    frame = _events_frame(engine, day, late=True)
    assert frame["occurred_at"].max() < pd.Timestamp("2011-07-01", tz="UTC")
    in_pandas = funnel(frame, "customer_key", "occurred_at", "event_type", DEMO_STEPS)
    assert past.counts == in_pandas.counts == [179, 110, 83]


def test_demo_cohort_retention(demo_events: Engine, tmp_path: Path) -> None:
    frame = _events_frame(demo_events, dt.datetime.now(dt.UTC).date())
    result = cohort_retention_matrix(frame, "customer_key", "occurred_at")
    assert sum(result.cohort_sizes.values()) == frame["customer_key"].nunique()
    # one cell by hand: customers first seen in January 2011 and active in March 2011
    month = frame["occurred_at"].dt.tz_convert("UTC").dt.strftime("%Y-%m")
    first = month.groupby(frame["customer_key"]).transform("min")
    january = set(frame.loc[first == "2011-01", "customer_key"])
    march = set(frame.loc[month == "2011-03", "customer_key"])
    assert result.counts.loc["2011-01", 2] == len(january & march)
    assert result.shares.loc["2011-01", 0] == 1.0
    assert np.isnan(result.counts.iloc[-1, 1])  # the last cohort has no later month yet
