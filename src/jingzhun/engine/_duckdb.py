"""The embedded default: one DuckDB file inside the project folder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import ibis
import ibis.expr.types as ir
import pyarrow as pa

from jingzhun.core import EngineError, EngineKind
from jingzhun.engine._base import Engine
from jingzhun.engine._cipher import DECRYPT_FUNCTION, ENCRYPT_FUNCTION, ColumnCipher


@ibis.udf.scalar.builtin(name="json_extract_string")
def _json_extract_string(document: str, path: str) -> str:  # type: ignore[empty-body]
    """DuckDB's ``json_extract_string``."""


class DuckDBEngine(Engine):
    """Warehouse in a DuckDB file; ``path=None`` keeps it in memory (tests, scratch work).

    With a ``cipher``, personal columns are encrypted on ``write`` and decrypted by the
    expressions ``read`` returns (``_cipher.py``); without one, values are read as stored.
    """

    kind = EngineKind.DUCKDB

    def __init__(
        self, path: Path | None, *, threads: int | None = None, cipher: ColumnCipher | None = None
    ) -> None:
        self.path = path
        self.cipher = cipher
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._ibis = ibis.duckdb.connect(str(path) if path else ":memory:")
        except duckdb.IOException as exc:
            raise EngineError(
                f"cannot open the warehouse {path}: {exc}. Another jingzhun process may be "
                "writing to it; wait for it to finish."
            ) from None
        # Timestamps are stored in UTC; the session zone only affects display and casts.
        self._ibis.raw_sql("SET TimeZone = 'UTC'")
        if threads:
            self._ibis.raw_sql(f"SET threads = {int(threads)}")
        self._registered: set[str] = set()
        self._in_transaction = False
        if cipher is not None:
            self._register_cipher(cipher)

    def _register_cipher(self, cipher: ColumnCipher) -> None:
        """The decrypting and encrypting functions, on this connection, with this key."""

        def opening(values: pa.Array) -> pa.Array:
            return cipher.decrypt_array(values)

        def sealing(values: pa.Array) -> pa.Array:
            return cipher.encrypt_array(values)

        for name, function in ((DECRYPT_FUNCTION, opening), (ENCRYPT_FUNCTION, sealing)):
            self._ibis.con.create_function(
                name,
                function,
                [duckdb.sqltype("VARCHAR")],
                duckdb.sqltype("VARCHAR"),
                type="arrow",
                null_handling="special",
                side_effects=name == ENCRYPT_FUNCTION,  # a fresh nonce each call
            )

    @property
    def ibis(self) -> ibis.BaseBackend:
        """The Ibis DuckDB backend."""
        return self._ibis

    def exists(self, name: str) -> bool:
        """Whether a stored table of that name exists."""
        return name in self.tables()

    def tables(self) -> list[str]:
        """Stored tables, without temporary registrations."""
        return sorted(t for t in self._ibis.list_tables() if t not in self._registered)

    def read(self, name: str) -> ir.Table:
        """A stored table as an Ibis expression (personal columns decrypted)."""
        table = self._ibis.table(name)
        if self.cipher is None or name in self._registered:
            return table
        return self.cipher.decrypting(name, table)

    def create(self, name: str, schema: pa.Schema) -> None:
        """Create an empty table with this schema unless it exists."""
        if not self.exists(name):
            self._ibis.create_table(name, schema=ibis.schema(schema))

    def write(self, name: str, data: pa.Table | ir.Table) -> int:
        """Append rows by column name; returns how many."""
        if isinstance(data, pa.Table):
            if data.num_rows == 0:
                return 0
            rows = data.num_rows
            if self.cipher is not None:
                data = self.cipher.encrypt_table(name, data)
            view = f"_jz_write_{name}"
            self._ibis.con.register(view, data)
            try:
                self._ibis.insert(name, self._ibis.table(view))
            finally:
                self._ibis.con.unregister(view)
            return rows
        before = self.count(name)
        if self.cipher is not None:
            data = self.cipher.encrypting(name, data)
        self._ibis.insert(name, data)
        return self.count(name) - before

    def register(self, name: str, data: pa.Table) -> ir.Table:
        """Expose Arrow data as a view without copying it."""
        self._ibis.con.register(name, data)
        self._registered.add(name)
        return self._ibis.table(name)

    def unregister(self, name: str) -> None:
        """Drop a registered view."""
        if name in self._registered:
            self._ibis.con.unregister(name)
            self._registered.discard(name)

    def drop(self, name: str) -> None:
        """Drop a stored table if it exists."""
        self._ibis.drop_table(name, force=True)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT, or ROLLBACK on any error; nested calls join the outer one."""
        if self._in_transaction:
            yield
            return
        self._ibis.raw_sql("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._ibis.raw_sql("ROLLBACK")
            raise
        else:
            self._ibis.raw_sql("COMMIT")
        finally:
            self._in_transaction = False

    def close(self) -> None:
        """Close the DuckDB file."""
        self._ibis.disconnect()

    def json_text(self, document: ir.StringValue, key: str) -> ir.StringValue:
        """``json_extract_string(document, '$.key')``."""
        return _json_extract_string(document, f"$.{key}")
