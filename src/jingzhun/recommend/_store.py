"""The ``recommendations`` and ``similar_items`` tables: written through the engine, replaced
whole by each fit, read back for export, ``show`` and message templates.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from jingzhun.core import NotFoundError, SpecError, SpecProblem
from jingzhun.engine import Engine

RECOMMENDATIONS = "recommendations"
SIMILAR_ITEMS = "similar_items"
RECOMMENDATIONS_SCHEMA = pa.schema(
    [
        ("customer_key", pa.string()),
        ("customer_id", pa.string()),
        ("source", pa.string()),
        ("item_id", pa.string()),
        ("item_name", pa.string()),
        ("rank", pa.int32()),
        ("score", pa.float64()),
        ("method", pa.string()),
        ("reason", pa.string()),
        ("model_as_of", pa.date32()),
        ("built_at", pa.timestamp("us", tz="UTC")),
    ]
)
SIMILAR_ITEMS_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("similar_item_id", pa.string()),
        ("rank", pa.int32()),
        ("score", pa.float64()),
        ("method", pa.string()),
    ]
)
EXPORT_COLUMNS = ("customer_id", "item_id", "rank", "score", "method")
_EXPORT_FORMATS = (".csv", ".parquet")


def replace_table(engine: Engine, name: str, schema: pa.Schema, rows: pa.Table) -> int:
    """Replace a whole table with ``rows``.

    The rows go to a staging table first; the swap (drop, create, copy) runs in one
    transaction, so readers see the old table or the new one and a failure before the swap
    changes nothing.
    """
    staging = f"_{name}_next"
    engine.drop(staging)
    engine.create(staging, schema)
    engine.write(staging, rows.select(schema.names).cast(schema))
    with engine.transaction():
        engine.drop(name)
        engine.create(name, schema)
        engine.write(name, engine.read(staging))
    engine.drop(staging)
    return rows.num_rows


def _require(engine: Engine, name: str) -> None:
    if not engine.exists(name):
        raise NotFoundError(f"no {name} yet: run 'jingzhun recommend fit' first")


def read_recommendations(
    engine: Engine, *, customer_key: str | None = None, top: int | None = None
) -> pa.Table:
    """Stored recommendations (one customer's, or everyone's), by customer and rank."""
    _require(engine, RECOMMENDATIONS)
    table = engine.read(RECOMMENDATIONS)
    if customer_key is not None:
        table = table.filter(table.customer_key == customer_key)
    if top is not None:
        table = table.filter(table["rank"] <= top)
    return engine.execute(table.order_by(["customer_key", "rank"]))


def read_similar_items(engine: Engine, item_id: str, *, top: int | None = None) -> pa.Table:
    """The stored similar items of one item, by rank."""
    _require(engine, SIMILAR_ITEMS)
    table = engine.read(SIMILAR_ITEMS)
    table = table.filter(table.item_id == item_id)
    if top is not None:
        table = table.filter(table["rank"] <= top)
    return engine.execute(table.order_by("rank"))


def stored_customer_key(engine: Engine, wanted: str) -> str | None:
    """The ``customer_key`` whose recommendations are stored under that key or source
    customer id; None when no row names it. An id shared by several customers is an error.
    """
    _require(engine, RECOMMENDATIONS)
    table = engine.read(RECOMMENDATIONS)
    text = wanted.strip()
    by_key = table.filter(table.customer_key == text).select("customer_key").limit(1)
    if engine.execute(by_key).num_rows:
        return text
    by_id = table.filter(table.customer_id == text).select("customer_key").distinct()
    keys = sorted(str(k) for k in engine.execute(by_id).column("customer_key").to_pylist())
    if len(keys) > 1:
        raise NotFoundError(
            f"customer id '{text}' names {len(keys)} customers in different sources; give one "
            "of their customer_keys: " + ", ".join(keys[:5])
        )
    return keys[0] if keys else None


def model_info(engine: Engine) -> dict[str, Any]:
    """When and as of which date the stored recommendations were made, and their size."""
    _require(engine, RECOMMENDATIONS)
    table = engine.read(RECOMMENDATIONS)
    summary = table.aggregate(
        rows=table.count(),
        customers=table.customer_key.nunique(),
        model_as_of=table.model_as_of.max(),
        built_at=table.built_at.max(),
    )
    row = engine.execute(summary).to_pylist()[0]
    methods = table.group_by("method").aggregate(rows=table.count())
    row["methods"] = {
        r["method"]: r["rows"] for r in engine.execute(methods.order_by("method")).to_pylist()
    }
    return row


def export_recommendations(engine: Engine, out: Path, *, top: int | None = None) -> int:
    """Write ``customer_id, item_id, rank, score, method`` (the source's ids) to a CSV or
    Parquet file, chosen by the extension; returns the rows written.
    """
    suffix = out.suffix.lower()
    if suffix not in _EXPORT_FORMATS:
        raise SpecError(
            [
                SpecProblem(
                    out,
                    None,
                    "--out",
                    f"unknown file type '{out.suffix or '(none)'}'; write .csv or .parquet",
                )
            ]
        )
    if top is not None and top < 1:
        raise SpecError([SpecProblem(out, None, "--top", f"must be at least 1, not {top}")])
    rows = read_recommendations(engine, top=top).select(list(EXPORT_COLUMNS))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    if suffix == ".csv":
        pa_csv.write_csv(rows, partial)
    else:
        pq.write_table(rows, partial)
    partial.replace(out)
    return rows.num_rows


def utc_now() -> dt.datetime:
    """The build time stamped on stored rows (UTC, to the microsecond)."""
    return dt.datetime.now(dt.UTC)
