"""Hand-made raw tables for identity tests: rows as dicts, lineage filled in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from jingzhun.core import CONTRACTS, LINEAGE_FIELDS, Target
from jingzhun.engine import Engine, arrow_schema
from jingzhun.ingest import ensure_tables

LOADED = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
_TABLES = {
    "raw_customers": Target.CUSTOMERS,
    "raw_events": Target.EVENTS,
    "raw_orders": Target.ORDERS,
}


def rows_table(raw_table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows of a raw table; unnamed columns are null, lineage gets defaults."""
    schema = arrow_schema(CONTRACTS[_TABLES[raw_table]], LINEAGE_FIELDS)
    filled = []
    for number, row in enumerate(rows, start=1):
        full = {name: None for name in schema.names}
        full.update(
            _file="test.csv",
            _row=number,
            _batch_id="b1",
            _loaded_at=LOADED,
            _row_hash=str(number),
        )
        full.update(row)
        filled.append(full)
    return pa.Table.from_pylist(filled, schema=schema)


def load(
    engine: Engine,
    *,
    customers: list[dict[str, Any]] = (),  # type: ignore[assignment]
    events: list[dict[str, Any]] = (),  # type: ignore[assignment]
    orders: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> None:
    """Create the raw tables and append the rows."""
    ensure_tables(engine)
    for name, rows in (
        ("raw_customers", customers),
        ("raw_events", events),
        ("raw_orders", orders),
    ):
        if rows:
            engine.write(name, rows_table(name, list(rows)))


def customer(source: str, customer_id: str, **values: Any) -> dict[str, Any]:
    """A raw_customers row."""
    return {"_source": source, "customer_id": customer_id, **values}


def event(
    event_id: str,
    event_type: str,
    *,
    customer_id: str | None = None,
    anonymous_id: str | None = None,
    source: str = "web",
    occurred_at: datetime = datetime(2024, 2, 1, tzinfo=UTC),
    properties: str | None = None,
    **values: Any,
) -> dict[str, Any]:
    """A raw_events row."""
    return {
        "_source": source,
        "event_id": event_id,
        "event_type": event_type,
        "occurred_at": occurred_at,
        "customer_id": customer_id,
        "anonymous_id": anonymous_id,
        "properties": properties,
        **values,
    }


def order(
    order_id: str,
    customer_id: str | None,
    *,
    source: str = "shop",
    ordered_at: datetime = datetime(2024, 2, 2, tzinfo=UTC),
) -> dict[str, Any]:
    """A raw_orders row."""
    return {
        "_source": source,
        "order_id": order_id,
        "customer_id": customer_id,
        "ordered_at": ordered_at,
    }
