"""Events a journey reacts to, from the warehouse: raw events and orders, each attributed to a
``customer_key`` through the identity map (``jingzhun.profile``'s readers, as segments do).

``order`` (or ``purchase``) is an order that is not a return, from ``raw_orders``; any other
name is an ``event_type`` of ``raw_events``. Property filters read ``sku`` and ``channel``
columns, ``amount`` and ``source`` of orders, and top-level keys of the JSON ``properties``
(``Engine.json_text``; numbers compare as numbers).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from jingzhun.engine import Engine
from jingzhun.journeys._spec import EventMatch
from jingzhun.profile import AsOf, customer_events, customer_orders, identity_snapshot

ORDER_EVENTS = ("order", "purchase")
# As far as "no upper bound" reaches: AsOf adds a day, so stay below date.max.
FAR_FUTURE = dt.date(9999, 12, 30)
EVENT_COLUMNS = ("customer_key", "event_id", "occurred_at", "sku", "channel", "properties")


@contextmanager
def registered(engine: Engine, data: pa.Table, stem: str = "jz_journey") -> Iterator[ir.Table]:
    """Arrow data as a temporary table for one query, dropped afterwards."""
    name = f"_{stem}_{uuid.uuid4().hex[:10]}"
    table = engine.register(name, data)
    try:
        yield table
    finally:
        engine.unregister(name)


class EventReader:
    """Attributed events up to a day (``None``: everything loaded), with the identity map
    read once.
    """

    def __init__(self, engine: Engine, *, until: dt.date | None = None) -> None:
        self.engine = engine
        self.day = until or FAR_FUTURE
        self._identity = identity_snapshot(engine, self.day)
        self._as_of = AsOf(self.day, include_late_loads=True)

    def rows(self, match: EventMatch) -> ir.Table | None:
        """The matching events: ``customer_key, event_id, occurred_at, sku, channel,
        properties, amount``; None when the warehouse has no such table.
        """
        if match.event in ORDER_EVENTS:
            orders = customer_orders(self.engine, self._as_of, self._identity)
            if orders is None:
                return None
            orders = orders.filter(~orders.is_return)
            rows = orders.select(
                customer_key=orders.customer_key,
                event_id=ibis.literal("order:") + orders._source + ":" + orders.order_id,
                occurred_at=orders.ordered_at,
                sku=ibis.null("string"),
                channel=ibis.null("string"),
                properties=ibis.null("string"),
                amount=orders.net.cast("float64"),
                source=orders._source,
            )
        else:
            events = customer_events(self.engine, self._as_of, self._identity)
            if events is None:
                return None
            events = events.filter(events.event_type == match.event)
            rows = events.select(
                *EVENT_COLUMNS,
                amount=self.engine.json_text(events.properties, "amount").try_cast("float64"),
                source=events._source,
            )
        for name, wanted in match.where.items():
            rows = rows.filter(_condition(self._property(rows, name), wanted).fill_null(False))
        return rows

    def _property(self, rows: ir.Table, name: str) -> ir.Value:
        if name in ("sku", "channel", "amount", "source"):
            return rows[name]
        return self.engine.json_text(rows.properties, name)

    def first_after(
        self,
        match: EventMatch,
        windows: Sequence[tuple[int, str, dt.datetime, dt.datetime | None]],
    ) -> dict[int, dt.datetime]:
        """For each ``(id, customer_key, after, until)``: the first matching event strictly
        after ``after`` and at or before ``until`` (no bound when None).
        """
        if not windows:
            return {}
        rows = self.rows(match)
        if rows is None:
            return {}
        data = pa.table(
            {
                "w_id": pa.array([w[0] for w in windows], pa.int64()),
                "w_key": pa.array([w[1] for w in windows], pa.string()),
                "w_after": pa.array([w[2] for w in windows], pa.timestamp("us", tz="UTC")),
                "w_until": pa.array(
                    [w[3] or dt.datetime(9999, 1, 1, tzinfo=dt.UTC) for w in windows],
                    pa.timestamp("us", tz="UTC"),
                ),
            }
        )
        with registered(self.engine, data) as wanted:
            joined = rows.join(
                wanted,
                [
                    rows.customer_key == wanted.w_key,
                    rows.occurred_at > wanted.w_after,
                    rows.occurred_at <= wanted.w_until,
                ],
            )
            first = joined.group_by("w_id").aggregate(at=joined.occurred_at.min())
            found = self.engine.execute(first).to_pylist()
        return {int(r["w_id"]): r["at"] for r in found}


def _condition(column: ir.Value, wanted: Any) -> ir.BooleanValue:
    """A property filter: a value, a list of values, or ``{op: value}``."""
    if isinstance(wanted, Mapping):
        out: ir.BooleanValue | None = None
        for op, operand in wanted.items():
            left, right = _typed(column, operand)
            test = {
                "=": left == right,
                "!=": left != right,
                "<": left < right,
                "<=": left <= right,
                ">": left > right,
                ">=": left >= right,
            }[op]
            out = test if out is None else out & test
        assert out is not None
        return out
    if isinstance(wanted, list):
        if all(_is_number(v) for v in wanted):
            return column.cast("string").try_cast("float64").isin([float(v) for v in wanted])
        return column.cast("string").isin([_text(v) for v in wanted])
    left, right = _typed(column, wanted)
    return left == right


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _typed(column: ir.Value, value: Any) -> tuple[ir.Value, Any]:
    if _is_number(value):
        return column.cast("string").try_cast("float64"), float(value)
    return column.cast("string"), _text(value)
