"""The one narrow seam every stage uses to reach the warehouse.

A stage builds Ibis expressions over ``engine.read(name)`` and hands data back through
``engine.write``; it never opens DuckDB or Spark itself. Each engine keeps its dialect quirks
in its own module.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from jingzhun.core import ARROW_TYPES, EngineKind, TableContract


def arrow_schema(contract: TableContract, extra: tuple[Any, ...] = ()) -> pa.Schema:
    """The Arrow schema of a canonical table plus extra fields (lineage columns, say)."""
    return pa.schema([pa.field(f.name, ARROW_TYPES[f.type]) for f in (*contract.fields, *extra)])


def utc_aware(table: pa.Table) -> pa.Table:
    """Mark naive timestamps as UTC.

    The warehouse stores instants in UTC and every engine's session zone is UTC, so a naive
    timestamp coming back (Spark's TIMESTAMP, DuckDB's date_trunc) is a UTC instant. Saying
    so here makes both engines return the same values.
    """
    if not any(pa.types.is_timestamp(t) and t.tz is None for t in table.schema.types):
        return table
    columns = []
    for column in table.columns:
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            column = column.cast(pa.timestamp(column.type.unit, tz="UTC"))
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


class Engine(abc.ABC):
    """A warehouse: read, write, register, execute, exists — and a transaction per load."""

    kind: EngineKind

    @property
    @abc.abstractmethod
    def ibis(self) -> ibis.BaseBackend:
        """The Ibis backend, for building expressions (never for writing)."""

    @abc.abstractmethod
    def exists(self, name: str) -> bool:
        """Whether a stored table of that name exists."""

    @abc.abstractmethod
    def tables(self) -> list[str]:
        """Names of the stored tables (not temporary registrations)."""

    @abc.abstractmethod
    def read(self, name: str) -> ir.Table:
        """A stored table as an Ibis expression."""

    @abc.abstractmethod
    def create(self, name: str, schema: pa.Schema) -> None:
        """Create an empty stored table if it does not exist yet."""

    @abc.abstractmethod
    def write(self, name: str, data: pa.Table | ir.Table) -> int:
        """Append rows (Arrow data or the result of an expression); returns rows written.

        Inside ``transaction()`` the rows become visible to other readers only at commit.
        """

    @abc.abstractmethod
    def register(self, name: str, data: pa.Table) -> ir.Table:
        """Expose in-memory Arrow data as a temporary table for joins with stored ones."""

    @abc.abstractmethod
    def unregister(self, name: str) -> None:
        """Drop a temporary registration."""

    @abc.abstractmethod
    def drop(self, name: str) -> None:
        """Drop a stored table if it exists."""

    @abc.abstractmethod
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release files and sessions."""

    @abc.abstractmethod
    def json_text(self, document: ir.StringValue, key: str) -> ir.StringValue:
        """The value of a top-level ``key`` of a JSON object held as text, as text
        (null when the key is missing); numbers come back as their digits.
        """

    def execute(self, expr: ir.Expr) -> pa.Table:
        """Run an expression and return its rows as Arrow; timestamps come back UTC-aware."""
        if isinstance(expr, ir.Table):
            return utc_aware(expr.to_pyarrow())
        if isinstance(expr, ir.Scalar):
            return pa.table({"value": [self.scalar(expr)]})
        return utc_aware(expr.as_table().to_pyarrow())

    def scalar(self, expr: ir.Scalar) -> Any:
        """Run a scalar expression and return the Python value (timestamps UTC-aware)."""
        value = expr.to_pyarrow().as_py()
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    def count(self, name: str) -> int:
        """Rows in a stored table (0 when it does not exist)."""
        if not self.exists(name):
            return 0
        return int(self.scalar(self.read(name).count()))

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
