"""Builders for the profile tests: raw tables written directly, an identity map, read-backs."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any

import pyarrow as pa

from jingzhun.core import CONTRACTS, LINEAGE_FIELDS, Target
from jingzhun.engine import Engine, arrow_schema
from jingzhun.profile import IDENTITY_MAP, IDENTITY_MAP_SCHEMA

UTC = dt.UTC
LOADED = dt.datetime(2020, 1, 1, tzinfo=UTC)


def at(day: str, hour: int = 12) -> dt.datetime:
    """A UTC moment on an ISO day."""
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), tzinfo=UTC)


def money(value: str | float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.0001"))


def raw_table(
    target: Target,
    rows: list[dict[str, Any]],
    *,
    source: str = "shop",
    loaded_at: dt.datetime = LOADED,
    batch: str = "b1",
) -> pa.Table:
    """Rows of a raw table with lineage columns; missing fields are null."""
    contract = CONTRACTS[target]
    schema = arrow_schema(contract, LINEAGE_FIELDS)
    full = []
    for i, row in enumerate(rows, start=1):
        record = {f.name: row.get(f.name) for f in contract.fields}
        for name in ("amount", "unit_price", "total_amount", "price"):
            if record.get(name) is not None and not isinstance(record[name], Decimal):
                record[name] = money(record[name])
        record.update(
            _source=row.get("_source", source),
            _file=f"{source}.csv",
            _row=i,
            _batch_id=batch,
            _loaded_at=row.get("_loaded_at", loaded_at),
            _row_hash=hashlib.sha256(repr(sorted(record.items())).encode()).hexdigest()[:16]
            if contract.versioned
            else None,
        )
        full.append(record)
    return pa.Table.from_pylist(full, schema=schema)


def load(engine: Engine, target: Target, rows: list[dict[str, Any]], **kwargs: Any) -> None:
    """Append rows to a raw table (created when missing)."""
    table = raw_table(target, rows, **kwargs)
    name = CONTRACTS[target].raw_table
    engine.create(name, table.schema)
    engine.write(name, table)


def write_identity(
    engine: Engine,
    nodes: list[tuple[str, str, str, str]],
    *,
    as_of: dt.date = dt.date(2020, 1, 1),
    built_at: dt.datetime = LOADED,
) -> None:
    """Write identity_map rows (node_source, node_id, node_kind, customer_key)."""
    table = pa.Table.from_pylist(
        [
            {
                "node_source": s,
                "node_id": i,
                "node_kind": k,
                "customer_key": key,
                "built_at": built_at,
                "as_of": as_of,
            }
            for s, i, k, key in nodes
        ],
        schema=IDENTITY_MAP_SCHEMA,
    )
    engine.create(IDENTITY_MAP, IDENTITY_MAP_SCHEMA)
    engine.write(IDENTITY_MAP, table)


def rows_of(engine: Engine, name: str, *order: str) -> list[dict[str, Any]]:
    """A stored table as sorted dicts."""
    rows = engine.execute(engine.read(name)).to_pylist()
    keys = order or tuple(rows[0]) if rows else ()
    return sorted(rows, key=lambda r: tuple((r[k] is None, r[k]) for k in keys))


def by_key(engine: Engine) -> dict[str, dict[str, Any]]:
    """profiles keyed by customer_key."""
    return {r["customer_key"]: r for r in engine.execute(engine.read("profiles")).to_pylist()}


def identity_from_truth(engine: Engine, truth: pa.Table) -> int:
    """Stand in for the identity stage on generated data: every (source, customer id) of the
    raw tables maps to its person (datagen's answer key), every device to the person whose
    customer id first appears with it in an event. Returns the number of nodes written.
    """
    person = dict(
        zip(truth["customer_id"].to_pylist(), truth["person_id"].to_pylist(), strict=True)
    )
    nodes: dict[tuple[str, str, str], str] = {}
    for name in ("raw_customers", "raw_orders", "raw_events"):
        if not engine.exists(name):
            continue
        rows = engine.execute(engine.read(name).select("_source", "customer_id")).to_pylist()
        for row in rows:
            customer = row["customer_id"]
            if customer in person:
                nodes[(row["_source"], customer, "customer")] = f"p{person[customer]}"
    if engine.exists("raw_events"):
        events = engine.read("raw_events")
        linked = events.filter(events.customer_id.notnull() & events.anonymous_id.notnull())
        linked = linked.select("_source", "anonymous_id", "customer_id", "occurred_at", "event_id")
        rows = sorted(
            engine.execute(linked).to_pylist(), key=lambda r: (r["occurred_at"], r["event_id"])
        )
        for row in rows:
            device = (row["_source"], row["anonymous_id"], "anonymous")
            if device not in nodes and row["customer_id"] in person:
                nodes[device] = f"p{person[row['customer_id']]}"
    write_identity(engine, [(s, i, k, key) for (s, i, k), key in sorted(nodes.items())])
    return len(nodes)


def copy_tables(source: Engine, target: Engine, names: list[str]) -> None:
    """Copy stored tables from one warehouse to another (Arrow in between)."""
    for name in names:
        data = source.execute(source.read(name))
        target.create(name, data.schema)
        target.write(name, data)
