"""Turn a file's converted rows into rows of the canonical raw tables.

``order_lines`` files fill orders, order_items and, where mapped, customers and products.
Keys that a file does not carry are derived: line numbers from file order, event ids and
version hashes from the row's content.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from jingzhun.core import (
    CONTRACTS,
    LINEAGE_FIELDS,
    STORED_TABLES,
    FieldType,
    TableContract,
    Target,
)
from jingzhun.engine import ARROW_TYPES, arrow_schema

_CONTRACTS = {c.name: c for c in STORED_TABLES}


def content_hash(table: pa.Table, columns: list[str]) -> pa.Array:
    """A stable 64-bit hash of the given columns per row, as text (pandas' SipHash, fixed key)."""
    if table.num_rows == 0:
        return pa.array([], pa.string())
    parts = [pc.fill_null(table[c].cast(pa.string()), "\x00") for c in columns]
    joined = pc.binary_join_element_wise(*parts, "\x1f")
    hashed = pd.util.hash_array(np.asarray(joined.to_numpy(zero_copy_only=False), dtype=object))
    return pa.array(hashed, pa.uint64()).cast(pa.string())


def line_numbers(order_ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    """1-based position of each line within its order, in file order."""
    if isinstance(order_ids, pa.ChunkedArray):
        order_ids = order_ids.combine_chunks()
    codes = pc.dictionary_encode(order_ids).indices.to_numpy(zero_copy_only=False)
    position = np.arange(len(codes))
    order = np.lexsort((position, codes))
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(codes)]))
    numbers = np.empty(len(codes), dtype=np.int64)
    numbers[order] = position - group_start + 1
    return pa.array(numbers)


def _column(table: pa.Table, name: str, dtype: pa.DataType) -> pa.Array:
    if name in table.column_names:
        return table[name].combine_chunks().cast(dtype)
    return pa.nulls(table.num_rows, dtype)


def _conform(table: pa.Table, contract: TableContract, lineage: dict[str, pa.Array]) -> pa.Table:
    """Select and cast to the raw table's schema, filling unmapped fields with nulls."""
    schema = arrow_schema(contract, LINEAGE_FIELDS)
    columns = []
    for field in schema:
        if field.name in lineage:
            columns.append(lineage[field.name].cast(field.type))
        else:
            columns.append(_column(table, field.name, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _first_per_key(table: pa.Table, keys: list[str]) -> pa.Table:
    """Keep the first row (rows are in file order) of each distinct combination of ``keys``."""
    if table.num_rows == 0:
        return table
    local = table.select(keys).append_column(
        "_idx", pa.array(np.arange(table.num_rows, dtype=np.int64))
    )
    firsts = local.group_by(keys, use_threads=False).aggregate([("_idx", "min")])
    if firsts.num_rows == table.num_rows:
        return table
    return table.take(np.sort(firsts["_idx_min"].to_numpy()))


def _with_lineage(table: pa.Table, contract: TableContract, lineage: dict[str, object]) -> pa.Table:
    """Add lineage columns; versioned tables get their content hash."""
    n = table.num_rows
    arrays: dict[str, pa.Array] = {
        "_source": pa.repeat(pa.scalar(lineage["source"], pa.string()), n),
        "_file": pa.repeat(pa.scalar(lineage["file"], pa.string()), n),
        "_batch_id": pa.repeat(pa.scalar(lineage["batch_id"], pa.string()), n),
        "_loaded_at": pa.repeat(pa.scalar(lineage["loaded_at"], pa.timestamp("us", tz="UTC")), n),
        "_row": table["_row"].combine_chunks(),
    }
    if contract.versioned:
        present = [f.name for f in contract.fields if f.name in table.column_names]
        arrays["_row_hash"] = content_hash(table, present)
    return _conform(table, contract, arrays)


def _amounts(table: pa.Table) -> pa.Table:
    """Amount = quantity x unit_price where the file does not give it."""
    if "amount" in table.column_names or "quantity" not in table.column_names:
        return table
    if "unit_price" not in table.column_names:
        return table
    quantity = table["quantity"].cast(pa.decimal128(19, 0))
    amount = pc.multiply(quantity, table["unit_price"]).cast(ARROW_TYPES[FieldType.DECIMAL])
    return table.append_column("amount", amount)


def shape(
    good: pa.Table, target: Target, defaults: dict[str, object], lineage: dict[str, object]
) -> dict[str, pa.Table]:
    """Rows for each raw table, keyed by raw table name. ``good`` carries ``_row`` (file row)."""
    good = good.append_column("_pos", pa.array(np.arange(good.num_rows, dtype=np.int64)))
    for name, value in defaults.items():
        if name not in good.column_names and value is not None:
            good = good.append_column(name, pa.repeat(pa.scalar(value), good.num_rows))
    out: dict[str, pa.Table] = {}
    if target in (Target.ORDER_LINES, Target.ORDER_ITEMS):
        if "line_number" not in good.column_names:
            good = good.append_column("line_number", line_numbers(good["order_id"]))
        good = _amounts(good)
        if "is_return" not in good.column_names:
            good = good.append_column("is_return", pa.repeat(pa.scalar(False), good.num_rows))
    if target is Target.ORDER_LINES:
        items = good
        out["raw_order_items"] = _with_lineage(items, _CONTRACTS["order_items"], lineage)
        headers = _first_per_key(good, ["order_id"])
        if "total_amount" not in headers.column_names and "amount" in good.column_names:
            totals = good.group_by("order_id").aggregate([("amount", "sum")])
            totals = totals.rename_columns(
                ["total_amount" if c == "amount_sum" else c for c in totals.column_names]
            )
            headers = headers.join(totals, "order_id").sort_by("_pos")
        out["raw_orders"] = _with_lineage(headers, _CONTRACTS["orders"], lineage)
        if "customer_id" in good.column_names:
            people = good.filter(pc.is_valid(good["customer_id"]))
            people = _distinct_versions(people, _CONTRACTS["customers"])
            out["raw_customers"] = _with_lineage(people, _CONTRACTS["customers"], lineage)
        if "sku" in good.column_names:
            products = good
            if "product_name" in products.column_names:
                products = products.rename_columns(
                    ["name" if c == "product_name" else c for c in products.column_names]
                )
            products = products.drop_columns([c for c in ("price",) if c in products.column_names])
            products = _distinct_versions(products, _CONTRACTS["products"])
            out["raw_products"] = _with_lineage(products, _CONTRACTS["products"], lineage)
        return out
    contract = CONTRACTS[target]
    if target is Target.EVENTS and "event_id" not in good.column_names:
        present = [f.name for f in contract.fields if f.name in good.column_names]
        event_ids = pc.binary_join_element_wise("h", content_hash(good, present), "")
        good = good.append_column("event_id", event_ids)
    if contract.versioned:
        good = _distinct_versions(good, contract)
    else:
        good = _first_per_key(good, list(contract.key))
    out[contract.raw_table] = _with_lineage(good, contract, lineage)
    return out


def _distinct_versions(table: pa.Table, contract: TableContract) -> pa.Table:
    """One row per distinct content of a versioned record (first occurrence in the file)."""
    present = [f.name for f in contract.fields if f.name in table.column_names]
    return _first_per_key(table, present)
