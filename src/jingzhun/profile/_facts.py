"""The raw tables as they stood on ``as_of``, each row attributed to a ``customer_key``.

Definitions the profile columns rest on (the module docstring of ``measure/_overview.py``
defines the same for the overview report):

- "As it stood on ``as_of``" = orders with ``ordered_at`` and events with ``occurred_at``
  before the end of ``as_of`` (midnight UTC of the next day), and raw rows loaded
  (``_loaded_at``) before then unless ``include_late_loads`` is set.
- An order is one row of ``raw_orders`` (unique per ``(_source, order_id)``); it is a return
  when its ``is_return`` says so. A line is a return line when its own flag or its order's flag
  says so, or its quantity is negative. An order's ``gross`` is the amount of its other lines,
  its ``returned`` the absolute amount of its return lines; an order without lines uses its
  ``total_amount`` (as gross, or as returned for a return). ``net = gross - returned``.
- Versioned records (customers, products) are read at their latest version per
  ``(_source, key)``: latest ``_loaded_at``, then ``_batch_id``, then ``_row``.
- Ages are whole days in UTC: ``as_of`` minus the date of the order or event (0 = that day).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import ibis
import ibis.expr.types as ir

from jingzhun.core import CONTRACTS, Target
from jingzhun.engine import Engine
from jingzhun.profile._identity import (
    IdentitySnapshot,
    attribute_by_customer_id,
    attribute_events,
    blank_to_null,
)

MONEY = "decimal(18, 4)"


@dataclass(frozen=True)
class AsOf:
    """The build date and whether rows loaded after it count."""

    day: dt.date
    include_late_loads: bool = False

    @property
    def end(self) -> ir.TimestampScalar:
        """Midnight UTC after ``day``: everything strictly before it counts."""
        end = dt.datetime.combine(self.day + dt.timedelta(days=1), dt.time())
        return ibis.literal(end, type="timestamp")

    def loaded(self, table: ir.Table) -> ir.Table:
        """Rows loaded by the end of the day (all rows with ``include_late_loads``)."""
        if self.include_late_loads:
            return table
        return table.filter(table._loaded_at < self.end)

    def age_days(self, moment: ir.TimestampValue) -> ir.IntegerValue:
        """Whole days from the moment's UTC date to ``day``."""
        return ibis.literal(self.day, type="date").delta(moment.date(), unit="day")


def raw(engine: Engine, target: Target) -> ir.Table | None:
    """A raw table, or None when the warehouse has none."""
    name = CONTRACTS[target].raw_table
    return engine.read(name) if engine.exists(name) else None


def latest_versions(table: ir.Table, key: str) -> ir.Table:
    """The newest version of each record per ``(_source, key)``."""
    newest_first = ibis.row_number().over(
        group_by=[table._source, table[key]],
        order_by=[table._loaded_at.desc(), table._batch_id.desc(), table._row.desc()],
    )
    ranked = table.mutate(_jz_version=newest_first)
    return ranked.filter(ranked._jz_version == 0).drop("_jz_version")


def customer_records(engine: Engine, as_of: AsOf, identity: IdentitySnapshot) -> ir.Table | None:
    """Latest version of each customer record as of the date, with its ``customer_key``."""
    customers = raw(engine, Target.CUSTOMERS)
    if customers is None:
        return None
    latest = latest_versions(as_of.loaded(customers), "customer_id")
    keyed = attribute_by_customer_id(latest, identity)
    return keyed.filter(keyed.customer_key.notnull())


def _order_lines_totals(items: ir.Table) -> ir.Table:
    """Per order: amount of sales lines and absolute amount of return lines."""
    amount = ibis.coalesce(items.amount, (items.quantity * items.unit_price).cast(MONEY))
    line_return = items.is_return.fill_null(False) | (items.quantity < 0)
    lines = items.select(
        li_source=items._source,
        li_order_id=items.order_id,
        li_amount=amount.fill_null(0),
        li_return=line_return,
    )
    return lines.group_by(["li_source", "li_order_id"]).aggregate(
        li_sales=lines.li_amount.sum(where=~lines.li_return),
        li_returned=lines.li_amount.abs().sum(where=lines.li_return),
        li_lines=lines.count(),
    )


def orders(
    engine: Engine,
    as_of: AsOf,
    identity: IdentitySnapshot,
    *,
    customer_ids: Sequence[str] | None = None,
) -> ir.Table | None:
    """Orders of known customers up to the date, one row each, with gross/returned/net.

    Columns: ``customer_key, _source, order_id, ordered_at, order_date, age_days,
    is_return, gross, returned, net``. ``customer_ids`` narrows the orders read to those
    ids first (one customer's view).
    """
    raw_orders = raw(engine, Target.ORDERS)
    if raw_orders is None:
        return None
    kept = as_of.loaded(raw_orders)
    kept = kept.filter(kept.ordered_at < as_of.end)
    if customer_ids is not None:
        kept = kept.filter(kept.customer_id.isin(list(customer_ids)))
    keyed = attribute_by_customer_id(kept, identity)
    keyed = keyed.filter(keyed.customer_key.notnull())
    keyed = keyed.select(
        "customer_key",
        "_source",
        "order_id",
        "ordered_at",
        "total_amount",
        is_return=keyed.is_return.fill_null(False),
    )
    zero = ibis.literal(Decimal(0), type=MONEY)
    items = raw(engine, Target.ORDER_ITEMS)
    if items is None:
        sales = keyed.total_amount.fill_null(0)
        returned_lines = zero
        has_lines = ibis.literal(False)
        joined = keyed
    else:
        items = as_of.loaded(items)
        if customer_ids is not None:
            wanted = kept.select(w_source=kept._source, w_order_id=kept.order_id)
            items = items.semi_join(
                wanted, [items._source == wanted.w_source, items.order_id == wanted.w_order_id]
            )
        totals = _order_lines_totals(items)
        joined = keyed.left_join(
            totals,
            [keyed._source == totals.li_source, keyed.order_id == totals.li_order_id],
        )
        has_lines = joined.li_lines.notnull()
        sales = ibis.cases(
            (has_lines, joined.li_sales.fill_null(0)), else_=joined.total_amount.fill_null(0)
        )
        returned_lines = joined.li_returned.fill_null(0)
    gross = ibis.cases((joined.is_return, zero), else_=sales)
    # A return order's lines are returns whatever their sign; without lines its total is.
    returned = ibis.cases(
        (joined.is_return, sales.abs() + returned_lines),
        else_=ibis.cases((has_lines, returned_lines), else_=zero),
    )
    out = joined.select(
        "customer_key",
        "_source",
        "order_id",
        "ordered_at",
        "is_return",
        order_date=joined.ordered_at.date(),
        age_days=as_of.age_days(joined.ordered_at),
        gross=gross.cast(MONEY),
        returned=returned.cast(MONEY),
    )
    return out.mutate(net=(out.gross - out.returned).cast(MONEY))


def bought_lines(engine: Engine, as_of: AsOf, order_table: ir.Table) -> ir.Table | None:
    """Sales lines (not returns) of the orders: ``customer_key, sku, age_days``."""
    items = raw(engine, Target.ORDER_ITEMS)
    if items is None:
        return None
    items = as_of.loaded(items)
    items = items.filter(~(items.is_return.fill_null(False) | (items.quantity < 0)))
    items = items.select(li_source=items._source, li_order_id=items.order_id, sku=items.sku)
    sales = order_table.filter(~order_table.is_return)
    joined = sales.join(
        items, [sales._source == items.li_source, sales.order_id == items.li_order_id]
    )
    return joined.select("customer_key", "sku", "age_days")


def product_categories(engine: Engine, as_of: AsOf) -> ir.Table | None:
    """One category per SKU: from the latest version that names one (any source)."""
    products = raw(engine, Target.PRODUCTS)
    if products is None:
        return None
    products = as_of.loaded(products)
    products = products.mutate(category=blank_to_null(products.category))
    products = products.filter(products.category.notnull())
    newest_first = ibis.row_number().over(
        group_by=products.sku,
        order_by=[
            products._loaded_at.desc(),
            products._batch_id.desc(),
            products._row.desc(),
            products._source,
        ],
    )
    ranked = products.mutate(_jz_version=newest_first)
    ranked = ranked.filter(ranked._jz_version == 0)
    return ranked.select(cat_sku=ranked.sku, category=ranked.category)


def events(
    engine: Engine,
    as_of: AsOf,
    identity: IdentitySnapshot,
    *,
    customer_ids: Sequence[str] | None = None,
    devices: Sequence[str] | None = None,
) -> ir.Table | None:
    """Events of known customers up to the date.

    Columns: ``customer_key, _source, event_id, event_type, occurred_at, age_days, sku,
    channel, properties``. ``customer_ids`` and ``devices`` narrow the events read to those
    naming one of them first (one customer's view).
    """
    raw_events = raw(engine, Target.EVENTS)
    if raw_events is None:
        return None
    kept = as_of.loaded(raw_events)
    kept = kept.filter(kept.occurred_at < as_of.end)
    if customer_ids is not None or devices is not None:
        kept = kept.filter(
            kept.customer_id.isin(list(customer_ids or [""]))
            | kept.anonymous_id.isin(list(devices or [""]))
        )
    keyed = attribute_events(kept, identity)
    keyed = keyed.filter(keyed.customer_key.notnull())
    return keyed.select(
        "customer_key",
        "_source",
        "event_id",
        "event_type",
        "occurred_at",
        "sku",
        "channel",
        "properties",
        age_days=as_of.age_days(keyed.occurred_at),
    )
