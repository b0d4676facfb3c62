"""The overview figures on hand-made raw tables (each expected figure worked out by hand in the
comments), on DuckDB and Spark, and the HTML report built from them."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from plotly.offline import get_plotlyjs

from helpers import shared_file
from jingzhun.core import CONTRACTS, LINEAGE_FIELDS, EngineKind, EngineSettings, Target
from jingzhun.engine import Engine, arrow_schema, connect
from jingzhun.measure import (
    CountFigure,
    MonthFigures,
    Overview,
    RankedBy,
    RankedFigure,
    overview,
    write_overview_report,
)

UTC = dt.UTC
LOADED_FIRST = dt.datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
LOADED_LATER = dt.datetime(2024, 5, 2, 9, 0, tzinfo=UTC)
SCRIPT_NAME = "<script>alert(1)</script>"


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def load(engine: Engine, target: Target, rows: list[dict[str, Any]]) -> None:
    """Create a raw table and write rows; lineage defaults to one batch loaded LOADED_FIRST."""
    contract = CONTRACTS[target]
    schema = arrow_schema(contract, LINEAGE_FIELDS)
    full = []
    for number, row in enumerate(rows, start=1):
        lineage = {
            "_source": "test",
            "_file": f"{contract.name}.csv",
            "_row": number,
            "_batch_id": "batch-1",
            "_loaded_at": LOADED_FIRST,
            "_row_hash": f"hash-{number}",
        }
        full.append({name: None for name in schema.names} | lineage | row)
    engine.create(contract.raw_table, schema)
    engine.write(contract.raw_table, pa.Table.from_pylist(full, schema=schema))


def item(order_id: str, line: int, sku: str, quantity: int, price: str, **more: Any) -> dict:
    amount = Decimal(price) * quantity
    return {
        "order_id": order_id,
        "line_number": line,
        "sku": sku,
        "quantity": quantity,
        "unit_price": Decimal(price),
        "amount": amount,
    } | more


def load_shop(engine: Engine) -> None:
    """A small shop: three customers, six orders, a return, an orphan line, a month boundary."""
    load(
        engine,
        Target.CUSTOMERS,
        [
            {"customer_id": "c1", "country": "DE"},
            # c1 moved: the later version wins (FR), so order o1 without a country goes to FR.
            {"customer_id": "c1", "country": "FR", "_loaded_at": LOADED_LATER},
            {"customer_id": "c2", "country": None},
            {"customer_id": "c3", "country": "US"},
        ],
    )
    load(
        engine,
        Target.PRODUCTS,
        [
            # The later version of A wins although it sits on an earlier row of the file.
            {"sku": "A", "name": "Kite", "category": "Games", "_loaded_at": LOADED_LATER},
            {"sku": "A", "name": "Kite", "category": "Toys"},
            {"sku": "B", "name": "Book", "category": SCRIPT_NAME},
            {"sku": "C", "name": "Cord", "category": None},
        ],
    )
    load(
        engine,
        Target.ORDERS,
        [
            # 23:30 UTC on 31 January is January, though it is February in Berlin.
            {"order_id": "o1", "customer_id": "c1", "ordered_at": ts("2024-01-31T23:30:00")},
            # The same order loaded twice counts once.
            {"order_id": "o1", "customer_id": "c1", "ordered_at": ts("2024-01-31T23:30:00")},
            {"order_id": "o2", "customer_id": "c1", "ordered_at": ts("2024-02-01T00:10:00"),
             "country": "DE"},
            {"order_id": "o3", "customer_id": None, "ordered_at": ts("2024-02-15T10:00:00"),
             "country": "DE"},
            {"order_id": "o4", "customer_id": "c2", "ordered_at": ts("2024-03-05T12:00:00")},
            {"order_id": "r1", "customer_id": "c1", "ordered_at": ts("2024-02-20T08:00:00"),
             "is_return": True, "country": "DE"},
            {"order_id": "o5", "customer_id": "c3", "ordered_at": ts("2024-04-02T09:00:00"),
             "country": "US"},
        ],
    )  # fmt: skip
    load(
        engine,
        Target.ORDER_ITEMS,
        [
            item("o1", 1, "A", 2, "10.00"),  # 20.00
            item("o1", 2, "B", 1, "5.50"),  # 5.50
            item("o2", 1, "C", 3, "2.00"),  # 6.00
            item("o2", 2, "B", -1, "5.50"),  # -5.50: a return line by its sign
            item("o3", 1, "A", 1, "10.00"),  # 10.00
            item("o4", 1, "B", 2, "5.50"),  # 11.00
            item("o4", 2, "A", 1, "10.00", amount=None),  # amount missing: 1 x 10.00
            item("r1", 1, "A", -1, "10.00", is_return=True),  # -10.00 returned
            item("o5", 1, "C", 1, "2.00"),  # 2.00
            item("o99", 1, "A", 1, "10.00"),  # no such order: unmatched
        ],
    )
    load(
        engine,
        Target.EVENTS,
        [
            {"event_id": "e1", "event_type": "page", "occurred_at": ts("2024-02-01T10:00:00")},
            {"event_id": "e2", "event_type": "page", "occurred_at": ts("2024-02-02T10:00:00")},
            {"event_id": "e3", "event_type": "page", "occurred_at": ts("2024-04-01T00:30:00")},
            {"event_id": "e4", "event_type": "purchase", "occurred_at": ts("2024-02-01T11:00:00")},
            {"event_id": "e5", "event_type": "purchase", "occurred_at": ts("2024-02-15T11:00:00")},
            {"event_id": "e6", "event_type": "add_to_cart",
             "occurred_at": ts("2024-02-01T10:30:00")},
            {"event_id": "e7", "event_type": "add_to_cart",
             "occurred_at": ts("2024-03-31T23:59:00")},
        ],
    )  # fmt: skip


def month(name: str, orders: int, revenue: str, returns: int = 0, value: str = "0") -> MonthFigures:
    return MonthFigures(name, orders, Decimal(revenue), returns, Decimal(value))


def ranked(name: str, revenue: str, orders: int) -> RankedFigure:
    return RankedFigure(name, Decimal(revenue), orders)


def buckets(*counts: int) -> tuple[CountFigure, ...]:
    labels = ("1", "2", "3", "4-5", "6-10", "11+")
    return tuple(CountFigure(label, n) for label, n in zip(labels, counts, strict=True))


def test_overview_figures(engine: Engine) -> None:
    load_shop(engine)
    result = overview(engine, currency="EUR")

    assert result.customers == 3  # c1 (two versions), c2, c3
    assert result.orders == 5  # o1 (loaded twice), o2, o3, o4, o5; r1 is a return
    assert result.anonymous_orders == 1  # o3
    assert result.order_lines == 7  # o1: 2, o2: 1 (its -1 line is a return), o3, o4: 2, o5
    assert result.revenue == Decimal("64.50")  # 20 + 5.5 + 6 + 10 + 11 + 10 + 2
    assert result.returns == 1  # r1
    assert result.returns_value == Decimal("15.50")  # r1 10.00 + o2's returned line 5.50
    assert result.net_revenue == Decimal("49.00")
    assert result.average_order_value == Decimal("12.90")  # 64.50 / 5
    assert result.unmatched_lines == 1  # o99
    assert result.first_order_date == dt.date(2024, 1, 31)
    assert result.last_order_date == dt.date(2024, 4, 2)
    assert result.by_month == (
        month("2024-01", 1, "25.50"),  # o1
        month("2024-02", 2, "16.00", 1, "15.50"),  # o2 6.00 (-5.50), o3 10.00; r1 -10.00
        month("2024-03", 1, "21.00"),  # o4
        month("2024-04", 1, "2.00"),  # o5
    )
    assert result.top_ranked_by is RankedBy.CATEGORY
    assert result.top_categories == (
        ranked("Games", "40.00", 3),  # A in o1, o3, o4 (the latest version's category)
        ranked(SCRIPT_NAME, "16.50", 2),  # B in o1, o4
        ranked("uncategorised", "8.00", 2),  # C in o2, o5
    )
    assert result.top_countries == (
        ranked("FR", "25.50", 1),  # o1: no country on the order, c1's latest country
        ranked("unknown", "21.00", 1),  # o4: neither order nor c2 has one
        ranked("DE", "16.00", 2),  # o2, o3
        ranked("US", "2.00", 1),  # o5
    )
    assert result.customers_by_orders == buckets(2, 1, 0, 0, 0, 0)  # c2, c3: 1; c1: 2
    assert result.events == 7
    assert result.events_by_type == (
        CountFigure("page", 3),
        CountFigure("add_to_cart", 2),  # tie with purchase, broken by name
        CountFigure("purchase", 2),
    )


def test_overview_as_of_leaves_out_later_orders_and_events(engine: Engine) -> None:
    load_shop(engine)
    result = overview(engine, currency="EUR", as_of=dt.date(2024, 3, 31))

    assert result.as_of == dt.date(2024, 3, 31)
    assert result.customers == 3
    assert result.orders == 4  # o5 on 2 April is later
    assert result.revenue == Decimal("62.50")
    assert result.returns_value == Decimal("15.50")
    assert result.last_order_date == dt.date(2024, 3, 5)
    assert [m.month for m in result.by_month] == ["2024-01", "2024-02", "2024-03"]
    assert result.top_categories[-1] == ranked("uncategorised", "6.00", 1)  # o2 only
    assert [c.name for c in result.top_countries] == ["FR", "unknown", "DE"]
    assert result.customers_by_orders == buckets(1, 1, 0, 0, 0, 0)  # c2: 1; c1: 2
    assert result.unmatched_lines == 1
    # e3 (1 April 00:30 UTC) is later; e7 (31 March 23:59 UTC) is kept.
    assert result.events_by_type == (
        CountFigure("add_to_cart", 2),
        CountFigure("page", 2),
        CountFigure("purchase", 2),
    )


def test_overview_ranks_products_when_no_category(engine: Engine) -> None:
    load(
        engine,
        Target.PRODUCTS,
        [{"sku": "A", "name": "Kite"}, {"sku": "B", "name": "Book", "category": " "}],
    )
    load(
        engine,
        Target.ORDERS,
        [
            {"order_id": "o1", "ordered_at": ts("2024-06-01T10:00:00")},
            {"order_id": "o2", "ordered_at": ts("2024-08-01T10:00:00")},
        ],
    )
    load(
        engine,
        Target.ORDER_ITEMS,
        [
            item("o1", 1, "A", 1, "3.00"),
            item("o1", 2, "B", 1, "3.00"),
            item("o2", 1, "Z", 2, "1.00", product_name="Zip"),  # not in the catalogue
        ],
    )
    result = overview(engine, currency="USD")

    assert result.top_ranked_by is RankedBy.PRODUCT
    # Book and Kite tie on 3.00 and one order: by name. Zip comes from the order line.
    assert result.top_categories == (
        ranked("Book", "3.00", 1),
        ranked("Kite", "3.00", 1),
        ranked("Zip", "2.00", 1),
    )
    assert result.customers == 0
    assert result.anonymous_orders == 2
    assert result.events_by_type is None
    assert result.top_countries == (ranked("unknown", "8.00", 2),)
    # July has no orders and still shows, as zero.
    assert [(m.month, m.orders) for m in result.by_month] == [
        ("2024-06", 1),
        ("2024-07", 0),
        ("2024-08", 1),
    ]


def test_overview_of_an_empty_warehouse(engine: Engine) -> None:
    result = overview(engine, currency="USD")

    assert result.to_dict() == {
        "currency": "USD",
        "as_of": None,
        "first_order_date": None,
        "last_order_date": None,
        "customers": 0,
        "orders": 0,
        "anonymous_orders": 0,
        "order_lines": 0,
        "revenue": 0.0,
        "returns": 0,
        "returns_value": 0.0,
        "unmatched_lines": 0,
        "by_month": [],
        "top_ranked_by": "category",
        "top_categories": [],
        "top_countries": [],
        "customers_by_orders": [
            {"name": label, "count": 0} for label in ("1", "2", "3", "4-5", "6-10", "11+")
        ],
        "events": None,
        "events_by_type": None,
        "rfm_segments": None,
        "net_revenue": 0.0,
        "average_order_value": None,
    }


@pytest.mark.spark
def test_duckdb_and_spark_agree(tmp_path: Path) -> None:
    results = {}
    for kind in (EngineKind.DUCKDB, EngineKind.SPARK):
        with connect(EngineSettings(kind=kind), tmp_path / kind.value) as engine:
            load_shop(engine)
            results[kind] = overview(engine, currency="EUR", as_of=dt.date(2024, 3, 31))
    assert results[EngineKind.DUCKDB] == results[EngineKind.SPARK]
    assert results[EngineKind.DUCKDB].to_dict() == results[EngineKind.SPARK].to_dict()


def test_to_dict_gives_plain_values() -> None:
    result = Overview(
        currency="EUR",
        as_of=dt.date(2024, 3, 31),
        first_order_date=dt.date(2024, 1, 31),
        last_order_date=dt.date(2024, 3, 5),
        customers=3,
        orders=3,
        anonymous_orders=0,
        order_lines=3,
        revenue=Decimal("10.005"),
        returns=0,
        returns_value=Decimal("0"),
        unmatched_lines=0,
        by_month=(month("2024-01", 3, "10.005"),),
        top_ranked_by=RankedBy.CATEGORY,
        top_categories=(),
        top_countries=(),
        customers_by_orders=buckets(0, 0, 1, 0, 0, 0),
        events=None,
        events_by_type=None,
    ).to_dict()

    assert result["revenue"] == 10.01  # half up, in cents
    assert result["average_order_value"] == 3.34  # 10.005 / 3 = 3.335
    assert result["as_of"] == "2024-03-31"
    assert result["top_ranked_by"] == "category"
    assert result["by_month"] == [
        {
            "month": "2024-01",
            "orders": 3,
            "revenue": 10.01,
            "returns": 0,
            "returns_value": 0.0,
            "net_revenue": 10.01,
        }
    ]


def report_overview() -> Overview:
    """Figures as the shop's overview has them, with data text that needs escaping."""
    return Overview(
        currency="EUR",
        as_of=None,
        first_order_date=dt.date(2024, 1, 31),
        last_order_date=dt.date(2024, 4, 2),
        customers=1234,
        orders=5,
        anonymous_orders=1,
        order_lines=7,
        revenue=Decimal("64.50"),
        returns=1,
        returns_value=Decimal("15.50"),
        unmatched_lines=1,
        by_month=(month("2024-01", 1, "25.50"), month("2024-02", 2, "16.00", 1, "15.50")),
        top_ranked_by=RankedBy.PRODUCT,
        top_categories=(ranked(SCRIPT_NAME, "40.00", 3), ranked("Tom & Jerry", "8.00", 2)),
        top_countries=(ranked("FR", "25.50", 1),),
        customers_by_orders=buckets(2, 1, 0, 0, 0, 0),
        events=3,
        events_by_type=(CountFigure('"><img src=x onerror=alert(1)>', 3),),
    )


def test_report_is_one_offline_page(tmp_path: Path) -> None:
    path = write_overview_report(
        report_overview(),
        tmp_path / "reports" / "overview.html",
        title="Overview <Q1>",
        project="shop & co",
        notes=["Data: Online Retail (UCI), CC BY 4.0", "3 rows quarantined <bad date>"],
    )
    page = path.read_text(encoding="utf-8")

    plotly_js = get_plotlyjs()
    assert page.count(plotly_js) == 1
    # plotly.js itself names map-tile and icon URLs that bar and line charts never fetch;
    # everything else in the page must name no URL at all.
    rest = page.replace(plotly_js, "")
    assert "https://cdn" not in rest
    assert not re.search(r"https?://", rest)
    assert "<script src=" not in page
    assert rest.count("<script") == 1 + 6 + 1  # plotly.js, one per chart, the resize on load
    assert "Plotly.Plots.resize" in rest

    for chart in (
        "chart-revenue-by-month",
        "chart-top-categories",
        "chart-returns-by-month",
        "chart-customers-by-orders",
        "chart-top-countries",
        "chart-events-by-type",
    ):
        assert f'<div id="{chart}"' in rest

    # KPI tiles
    for tile in (
        ">1,234<",  # customers
        ">5<",  # orders
        "EUR 64.50",  # revenue
        "net EUR 49.00 after returns",
        "EUR 12.90",  # average order value
        "EUR 15.50 returned",
        "20.0% of orders",  # anonymous
    ):
        assert tile in rest

    # Data text is escaped in the page and in the chart data.
    assert "<script>alert" not in rest
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rest  # table of top products
    assert "Tom &amp; Jerry" in rest
    assert "<img" not in rest
    assert "<title>Overview &lt;Q1&gt;</title>" in rest
    assert "shop &amp; co" in rest
    assert "3 rows quarantined &lt;bad date&gt;" in rest
    assert "Data: Online Retail (UCI), CC BY 4.0" in rest
    assert "1 order lines have no order" in rest


def test_report_of_an_empty_overview(engine: Engine, tmp_path: Path) -> None:
    path = write_overview_report(
        overview(engine, currency="USD"), tmp_path / "empty.html", title="Empty", project="p"
    )
    page = path.read_text(encoding="utf-8")

    assert page.count(get_plotlyjs()) == 1
    assert "No orders" in page
    assert page.count("No data in this period.") == 5  # no events table: no events card
    assert 'class="plotly-graph-div"' not in page


def test_overview_of_the_cdnow_sample(engine: Engine) -> None:
    # Fader & Hardie's CDNOW 1/10th sample: one record per customer-day purchase, 6,919 records
    # of 2,357 customers (published counts, ../shared/data/cdnow/SOURCE.md). Each record is
    # loaded as one order with one line; the other expected figures are summed from the file
    # here, independently of the engine.
    records = [
        line.split() for line in shared_file("cdnow/CDNOW_sample.txt").read_text().splitlines()
    ]
    load(
        engine,
        Target.ORDERS,
        [
            {
                "order_id": f"{number}",
                "customer_id": sample_id,
                "ordered_at": dt.datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC),
            }
            for number, (_, sample_id, day, _, _) in enumerate(records, start=1)
        ],
    )
    load(
        engine,
        Target.ORDER_ITEMS,
        [
            {
                "order_id": f"{number}",
                "line_number": 1,
                "sku": "CD",
                "quantity": int(cds),
                "unit_price": (Decimal(value) / max(int(cds), 1)).quantize(Decimal("0.0001")),
                "amount": Decimal(value),
            }
            for number, (_, _, _, cds, value) in enumerate(records, start=1)
        ],
    )
    result = overview(engine, currency="USD")

    orders_per_customer = Counter(Counter(r[1] for r in records).values())
    assert result.orders == 6919
    assert sum(bucket.count for bucket in result.customers_by_orders) == 2357
    assert result.customers_by_orders[0] == CountFigure("1", orders_per_customer[1])
    assert result.revenue == sum(Decimal(r[4]) for r in records)
    assert result.returns == 0
    assert result.first_order_date == dt.date(1997, 1, 1)
    last_day = max(r[2] for r in records)
    assert result.last_order_date == dt.datetime.strptime(last_day, "%Y%m%d").date()
    assert len(result.by_month) == 18  # January 1997 to June 1998
    assert result.top_ranked_by is RankedBy.PRODUCT
    assert result.top_categories == (RankedFigure("CD", result.revenue, 6919),)
