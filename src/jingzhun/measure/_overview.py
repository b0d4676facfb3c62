"""Overview figures of the raw tables, as Ibis expressions so DuckDB and Spark agree.

Customers, orders, revenue, returns and their breakdowns by month, category, country and
number of orders per customer.

Definitions (the report and the tests rely on them):

- An order is one ``order_id`` in ``raw_orders`` (rows repeated across loads collapse into
  one); it is a return when any of its rows says ``is_return``. Its date is its earliest
  ``ordered_at``, its month that date's month in UTC.
- A line is a return line when its own flag or its order's flag says so, or its quantity is
  negative. ``revenue`` is the gross of the other lines, ``returns_value`` the absolute value
  of the return lines, ``net_revenue`` the difference.
- Lines reach a date only through their order (joined on ``order_id``); lines whose order is
  not in ``raw_orders`` are counted in ``unmatched_lines`` and left out of every money figure.
- ``as_of`` keeps orders and events up to and including that date (UTC).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

import ibis
import ibis.expr.types as ir

from jingzhun.core import CONTRACTS, Target
from jingzhun.engine import Engine

TOP_N = 10
UNCATEGORISED = "uncategorised"
UNKNOWN_COUNTRY = "unknown"
# Customers by number of orders: (label, fewest orders, most orders or None for no limit).
ORDER_COUNT_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("1", 1, 1),
    ("2", 2, 2),
    ("3", 3, 3),
    ("4-5", 4, 5),
    ("6-10", 6, 10),
    ("11+", 11, None),
)

_CENT = Decimal("0.01")
_MONEY_SCALE = Decimal("0.0001")  # decimal(18, 4), the canonical money type


class RankedBy(StrEnum):
    """What the top-revenue breakdown ranks: categories, or product names when none exist."""

    CATEGORY = "category"
    PRODUCT = "product"


@dataclass(frozen=True)
class MonthFigures:
    """Orders, revenue and returns of one calendar month (UTC), ``month`` as ``YYYY-MM``."""

    month: str
    orders: int
    revenue: Decimal
    returns: int
    returns_value: Decimal

    @property
    def net_revenue(self) -> Decimal:
        """Revenue after returns."""
        return self.revenue - self.returns_value


@dataclass(frozen=True)
class RankedFigure:
    """One entry of a revenue ranking (a category, product or country)."""

    name: str
    revenue: Decimal
    orders: int


@dataclass(frozen=True)
class CountFigure:
    """One bar of a count chart (events of a type, customers in an order-count bucket)."""

    name: str
    count: int


@dataclass(frozen=True)
class Overview:
    """The headline figures of the raw tables, money in ``currency``; see the module docstring.

    ``top_ranked_by`` says whether ``top_categories`` holds categories or, when the products
    carry no category, product names. ``events_by_type`` is ``None`` when there is no
    ``raw_events`` table.
    """

    currency: str
    as_of: dt.date | None
    first_order_date: dt.date | None
    last_order_date: dt.date | None
    customers: int
    orders: int
    anonymous_orders: int
    order_lines: int
    revenue: Decimal
    returns: int
    returns_value: Decimal
    unmatched_lines: int
    by_month: tuple[MonthFigures, ...]
    top_ranked_by: RankedBy
    top_categories: tuple[RankedFigure, ...]
    top_countries: tuple[RankedFigure, ...]
    customers_by_orders: tuple[CountFigure, ...]
    events: int | None
    events_by_type: tuple[CountFigure, ...] | None
    rfm_segments: tuple[CountFigure, ...] | None = None  # from the profiles table, if built

    @property
    def net_revenue(self) -> Decimal:
        """Revenue after returns."""
        return self.revenue - self.returns_value

    @property
    def average_order_value(self) -> Decimal | None:
        """Gross revenue per order; ``None`` when there are no orders."""
        if not self.orders:
            return None
        return (self.revenue / self.orders).quantize(_MONEY_SCALE, ROUND_HALF_UP)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values: money as floats rounded to cents, dates as ISO strings."""
        plain: dict[str, Any] = _plain(self)
        plain["net_revenue"] = _plain(self.net_revenue)
        plain["average_order_value"] = _plain(self.average_order_value)
        for month, figures in zip(plain["by_month"], self.by_month, strict=True):
            month["net_revenue"] = _plain(figures.net_revenue)
        return plain


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Decimal):
        return float(value.quantize(_CENT, ROUND_HALF_UP))
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def overview(engine: Engine, *, currency: str, as_of: dt.date | None = None) -> Overview:
    """Compute the overview of the raw tables; missing tables count as empty.

    Parameters
    ----------
    engine
        The warehouse holding ``raw_customers``, ``raw_orders``, ``raw_order_items``,
        ``raw_products`` and ``raw_events``.
    currency
        The currency the money figures are in (the project's currency); a label, no
        conversion is done.
    as_of
        Leave out orders and events after this date (UTC), to reproduce an earlier report.
    """
    # Expressions are not cached between the figures (ibis 12's cache cannot release its
    # DuckDB table under sqlglot 30: DROP TABLE loses the name); each figure is one query.
    raw = {target: _read(engine, target) for target in _RAW_TABLES}
    raw_orders, raw_items = raw[Target.ORDERS], raw[Target.ORDER_ITEMS]
    orders = lines = order_totals = None
    if raw_orders is not None:
        orders = _orders(raw_orders, as_of)
        if raw_items is not None:
            lines = _lines(raw_items, orders)
        order_totals = _order_totals(orders, lines)
    by_month, totals = _by_month(engine, order_totals)
    top_ranked_by, top_categories = _top_categories(engine, lines, raw[Target.PRODUCTS])
    events_by_type = _events_by_type(engine, raw[Target.EVENTS], as_of)
    return Overview(
        currency=currency,
        as_of=as_of,
        first_order_date=totals["first_order_date"],
        last_order_date=totals["last_order_date"],
        customers=_customers(engine, raw[Target.CUSTOMERS]),
        orders=totals["orders"],
        anonymous_orders=totals["anonymous_orders"],
        order_lines=totals["order_lines"],
        revenue=totals["revenue"],
        returns=totals["returns"],
        returns_value=totals["returns_value"],
        unmatched_lines=_unmatched_lines(engine, raw[Target.ORDERS], raw[Target.ORDER_ITEMS]),
        by_month=by_month,
        top_ranked_by=top_ranked_by,
        top_categories=top_categories,
        top_countries=_top_countries(engine, order_totals, raw[Target.CUSTOMERS]),
        customers_by_orders=_customers_by_orders(engine, orders),
        events=sum(e.count for e in events_by_type) if events_by_type is not None else None,
        events_by_type=events_by_type,
        rfm_segments=_rfm_segments(engine),
    )


_RAW_TABLES = (Target.CUSTOMERS, Target.EVENTS, Target.ORDERS, Target.ORDER_ITEMS, Target.PRODUCTS)


def _read(engine: Engine, target: Target) -> ir.Table | None:
    name = CONTRACTS[target].raw_table
    return engine.read(name) if engine.exists(name) else None


def _blank_to_null(column: ir.StringValue) -> ir.StringValue:
    # Not .strip(): on Spark, Ibis prints TRIM(' \t\n\r\v\f' FROM x) and Spark reads \f and \v
    # as the letters f and v ("food" would lose its f).
    return column.re_replace(r"^\s+|\s+$", "").nullif("")


def _latest(table: ir.Table, key: str) -> ir.Table:
    """Keep the newest version of each record of a versioned raw table (last loaded, last row)."""
    newest_first = ibis.row_number().over(
        group_by=table[key],
        order_by=[table._loaded_at.desc(), table._batch_id.desc(), table._row.desc()],
    )
    return table.mutate(_version_rank=newest_first).filter(lambda t: t._version_rank == 0)


def _orders(raw_orders: ir.Table, as_of: dt.date | None) -> ir.Table:
    """One row per order id: its customer, first date, return flag and country."""
    orders = raw_orders.group_by("order_id").aggregate(
        customer_id=_blank_to_null(raw_orders.customer_id).max(),
        ordered_at=raw_orders.ordered_at.min(),
        is_return=raw_orders.is_return.fill_null(False).any(),
        country=_blank_to_null(raw_orders.country).max(),
    )
    orders = orders.mutate(
        order_date=orders.ordered_at.date(),
        month_key=orders.ordered_at.year() * 100 + orders.ordered_at.month(),
    )
    if as_of is not None:
        orders = orders.filter(orders.order_date <= ibis.literal(as_of))
    return orders


def _lines(raw_items: ir.Table, orders: ir.Table) -> ir.Table:
    """Order lines of the orders kept, each with its amount and whether it is a return."""
    amount = ibis.coalesce(
        raw_items.amount,
        (raw_items.quantity * raw_items.unit_price).cast(raw_items.amount.type()),
    )
    items = raw_items.select(
        line_order_id=raw_items.order_id,
        sku=raw_items.sku,
        product_name=_blank_to_null(raw_items.product_name),
        amount=amount.fill_null(0),
        item_return=raw_items.is_return.fill_null(False) | (raw_items.quantity < 0),
    )
    heads = orders.select("order_id", "is_return")
    joined = items.join(heads, items.line_order_id == heads.order_id)
    return joined.select(
        "order_id",
        "sku",
        "product_name",
        "amount",
        line_return=joined.item_return | joined.is_return,
    )


def _order_totals(orders: ir.Table, lines: ir.Table | None) -> ir.Table:
    """Each order with its gross sales, returned value and number of sales lines."""
    if lines is None:
        zero = ibis.literal(Decimal(0), type="decimal(18, 4)")
        return orders.mutate(sales=zero, returned=zero, sales_lines=ibis.literal(0, "int64"))
    per_order = lines.group_by(line_order_id=lines.order_id).aggregate(
        order_sales=lines.amount.sum(where=~lines.line_return),
        order_returned=lines.amount.abs().sum(where=lines.line_return),
        order_sales_lines=lines.count(where=~lines.line_return),
    )
    joined = orders.left_join(per_order, orders.order_id == per_order.line_order_id)
    return joined.select(
        *orders.columns,
        sales=joined.order_sales.fill_null(0),
        returned=joined.order_returned.fill_null(0),
        sales_lines=joined.order_sales_lines.fill_null(0),
    )


def _money(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return Decimal(str(value)).quantize(_MONEY_SCALE)


def _by_month(
    engine: Engine, order_totals: ir.Table | None
) -> tuple[tuple[MonthFigures, ...], Mapping[str, Any]]:
    """Figures per month, every month from the first to the last, and their totals."""
    totals: dict[str, Any] = {
        "orders": 0,
        "anonymous_orders": 0,
        "order_lines": 0,
        "revenue": Decimal(0),
        "returns": 0,
        "returns_value": Decimal(0),
        "first_order_date": None,
        "last_order_date": None,
    }
    if order_totals is None:
        return (), totals
    t = order_totals
    sale = ~t.is_return
    monthly = t.group_by("month_key").aggregate(
        orders=t.count(where=sale),
        anonymous_orders=t.count(where=sale & t.customer_id.isnull()),
        order_lines=t.sales_lines.sum(where=sale),
        revenue=t.sales.sum(),
        returns=t.count(where=t.is_return),
        returns_value=t.returned.sum(),
        first_order_date=t.order_date.min(),
        last_order_date=t.order_date.max(),
    )
    # Small results are sorted here: an ORDER BY without LIMIT costs Spark a sampling pass.
    rows = sorted(engine.execute(monthly).to_pylist(), key=lambda row: row["month_key"])
    if not rows:
        return (), totals
    found = {row["month_key"]: row for row in rows}
    months = []
    for key in _month_keys(rows[0]["month_key"], rows[-1]["month_key"]):
        row = found.get(key, {})
        months.append(
            MonthFigures(
                month=f"{key // 100:04d}-{key % 100:02d}",
                orders=int(row.get("orders") or 0),
                revenue=_money(row.get("revenue")),
                returns=int(row.get("returns") or 0),
                returns_value=_money(row.get("returns_value")),
            )
        )
    totals.update(
        orders=sum(m.orders for m in months),
        anonymous_orders=sum(int(r["anonymous_orders"] or 0) for r in rows),
        order_lines=sum(int(r["order_lines"] or 0) for r in rows),
        revenue=sum((m.revenue for m in months), Decimal(0)),
        returns=sum(m.returns for m in months),
        returns_value=sum((m.returns_value for m in months), Decimal(0)),
        first_order_date=min(r["first_order_date"] for r in rows),
        last_order_date=max(r["last_order_date"] for r in rows),
    )
    return tuple(months), totals


def _month_keys(first: int, last: int) -> list[int]:
    """Every ``YYYYMM`` key from first to last, so months without orders show as zero."""
    keys = []
    year, month = divmod(first, 100)
    while year * 100 + month <= last:
        keys.append(year * 100 + month)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return keys


def _ranked(engine: Engine, grouped: ir.Table) -> tuple[RankedFigure, ...]:
    """Rank a ``name, revenue, orders`` table: most revenue first, ties by name."""
    top = grouped.order_by([grouped.revenue.desc(), grouped.orders.desc(), grouped.name.asc()])
    rows = engine.execute(top.limit(TOP_N)).to_pylist()
    return tuple(
        RankedFigure(name=row["name"], revenue=_money(row["revenue"]), orders=int(row["orders"]))
        for row in rows
    )


def _top_categories(
    engine: Engine, lines: ir.Table | None, raw_products: ir.Table | None
) -> tuple[RankedBy, tuple[RankedFigure, ...]]:
    """Top categories by gross revenue, or top product names when no product has a category."""
    if lines is None:
        return RankedBy.CATEGORY, ()
    sales = lines.filter(~lines.line_return)
    if raw_products is None:
        product_name = ibis.coalesce(sales.product_name, sales.sku)
        return RankedBy.PRODUCT, _ranked(engine, _revenue_by(sales, product_name))
    latest = _latest(raw_products, "sku")
    latest = latest.select(
        product_sku=latest.sku,
        category=_blank_to_null(latest.category),
        catalogue_name=_blank_to_null(latest.name),
    )
    joined = sales.left_join(latest, sales.sku == latest.product_sku)
    joined = joined.select(
        "order_id", "sku", "product_name", "amount", "category", "catalogue_name"
    )
    category = joined.category.fill_null(UNCATEGORISED)
    top = _ranked(engine, _revenue_by(joined, category))
    if top and not (len(top) == 1 and top[0].name == UNCATEGORISED):
        return RankedBy.CATEGORY, top
    product_name = ibis.coalesce(joined.catalogue_name, joined.product_name, joined.sku)
    return RankedBy.PRODUCT, _ranked(engine, _revenue_by(joined, product_name))


def _revenue_by(lines: ir.Table, name: ir.StringValue) -> ir.Table:
    keyed = lines.mutate(name=name)
    return keyed.group_by("name").aggregate(
        revenue=keyed.amount.sum(), orders=keyed.order_id.nunique()
    )


def _top_countries(
    engine: Engine, order_totals: ir.Table | None, raw_customers: ir.Table | None
) -> tuple[RankedFigure, ...]:
    """Top countries by gross revenue: the order's country, else the customer's latest one."""
    if order_totals is None:
        return ()
    sales = order_totals.filter(~order_totals.is_return)
    country = sales.country
    if raw_customers is not None:
        latest = _latest(raw_customers, "customer_id")
        latest = latest.select(
            known_customer_id=latest.customer_id,
            customer_country=_blank_to_null(latest.country),
        )
        sales = sales.left_join(latest, sales.customer_id == latest.known_customer_id)
        country = ibis.coalesce(sales.country, sales.customer_country)
    keyed = sales.mutate(name=country.fill_null(UNKNOWN_COUNTRY))
    grouped = keyed.group_by("name").aggregate(revenue=keyed.sales.sum(), orders=keyed.count())
    return _ranked(engine, grouped)


def _customers_by_orders(engine: Engine, orders: ir.Table | None) -> tuple[CountFigure, ...]:
    """How many known customers placed 1, 2, 3, 4-5, 6-10 and 11+ orders."""
    counts: dict[int, int] = {}
    if orders is not None:
        sales = orders.filter(~orders.is_return & orders.customer_id.notnull())
        per_customer = sales.group_by("customer_id").aggregate(order_count=sales.count())
        histogram = per_customer.group_by("order_count").aggregate(customers=per_customer.count())
        for row in engine.execute(histogram).to_pylist():
            counts[int(row["order_count"])] = int(row["customers"])
    return tuple(
        CountFigure(
            name=label,
            count=sum(n for k, n in counts.items() if k >= low and (high is None or k <= high)),
        )
        for label, low, high in ORDER_COUNT_BUCKETS
    )


def _customers(engine: Engine, raw_customers: ir.Table | None) -> int:
    """Distinct known customer ids (versions of one customer count once)."""
    if raw_customers is None:
        return 0
    customer_id = _blank_to_null(raw_customers.customer_id)
    return int(engine.scalar(customer_id.nunique()) or 0)


def _unmatched_lines(
    engine: Engine, raw_orders: ir.Table | None, raw_items: ir.Table | None
) -> int:
    """Order lines whose order id is in no row of ``raw_orders`` (so they have no date)."""
    if raw_items is None:
        return 0
    if raw_orders is None:
        return int(engine.scalar(raw_items.count()))
    known = raw_orders.select(known_order_id=raw_orders.order_id)
    orphans = raw_items.anti_join(known, raw_items.order_id == known.known_order_id)
    return int(engine.scalar(orphans.count()))


def _rfm_segments(engine: Engine) -> tuple[CountFigure, ...] | None:
    """Customers per RFM segment from the profile stage's table (buyers only), if it exists."""
    if not engine.exists("profiles"):
        return None
    profiles = engine.read("profiles")
    if "rfm_segment" not in profiles.columns:
        return None
    buyers = profiles.filter(profiles.rfm_segment.notnull() & (profiles.rfm_segment != "none"))
    grouped = buyers.group_by(name=buyers.rfm_segment).aggregate(count=buyers.count())
    rows = engine.execute(grouped).to_pylist()
    rows.sort(key=lambda row: (-row["count"], row["name"]))
    return tuple(CountFigure(name=row["name"], count=int(row["count"])) for row in rows)


def _events_by_type(
    engine: Engine, events: ir.Table | None, as_of: dt.date | None
) -> tuple[CountFigure, ...] | None:
    """Events per type, most first, ties by name; ``None`` without a ``raw_events`` table."""
    if events is None:
        return None
    if as_of is not None:
        events = events.filter(events.occurred_at.date() <= ibis.literal(as_of))
    grouped = events.group_by(name=events.event_type).aggregate(count=events.count())
    rows = engine.execute(grouped).to_pylist()
    rows.sort(key=lambda row: (-row["count"], row["name"]))
    return tuple(CountFigure(name=row["name"], count=int(row["count"])) for row in rows)
