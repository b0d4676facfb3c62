"""Personal data encrypted at rest inside the warehouse, value by value (AES-GCM).

The engine seam is where every stage reads and writes, so it is where personal columns are
sealed and opened: ``write`` encrypts them, ``read`` returns expressions that decrypt them,
and no stage sees a difference. What lands in the DuckDB file (and in every copy of it: the
API's read snapshot, backups) is ``jz1:`` + base64(12-byte random nonce + AES-GCM
ciphertext and tag), one fresh nonce per value (NIST SP 800-38D), so equal e-mails do not
look equal on disk. Joins and ``GROUP BY`` on these columns work on the decrypted values in
flight (identity groups records by e-mail and phone).

Which columns are personal is decided by name, in every table, so that a staging copy, a
snapshot or a later stage's table holding an e-mail is covered without being listed:
``PERSONAL_COLUMNS`` anywhere, and ``PERSONAL_TABLE_COLUMNS`` for generic column names that
hold personal data only in certain tables (``identifiers.value``, ``quarantine.record``).
Only string columns are sealed (a birth date stays a date; it is masked on the way out).

Values written before encryption was switched on have no ``jz1:`` prefix and are read as
they are; ``jingzhun privacy encrypt`` rewrites them.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterable

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jingzhun.core import EngineError

PREFIX = "jz1:"
_AAD = b"jingzhun warehouse pii v1"
_NONCE = 12

# Personal wherever they appear (the customers contract's, the profiles' and send plans' columns).
PERSONAL_COLUMNS = frozenset({"email", "phone", "first_name", "last_name", "address"})
# Personal only in these tables (matched by suffix too: "_jz_privacy_identifiers").
PERSONAL_TABLE_COLUMNS: dict[str, frozenset[str]] = {
    "identifiers": frozenset({"value"}),
    "quarantine": frozenset({"value", "record"}),
}
DECRYPT_FUNCTION = "jz_pii_decrypt"
ENCRYPT_FUNCTION = "jz_pii_encrypt"


@ibis.udf.scalar.builtin(name=DECRYPT_FUNCTION)
def pii_decrypt(value: str) -> str:  # type: ignore[empty-body]
    """The engine's decrypting function (registered on each connection with its key)."""


@ibis.udf.scalar.builtin(name=ENCRYPT_FUNCTION)
def pii_encrypt(value: str) -> str:  # type: ignore[empty-body]
    """The engine's encrypting function (registered on each connection with its key)."""


def personal_columns(table: str, columns: Iterable[str]) -> list[str]:
    """Which of a table's columns hold personal data, by the rules above."""
    extra: frozenset[str] = frozenset()
    for name, cols in PERSONAL_TABLE_COLUMNS.items():
        if table == name or table.endswith("_" + name):
            extra = extra | cols
    return [c for c in columns if c in PERSONAL_COLUMNS or c in extra]


class ColumnCipher:
    """AES-GCM under one 32-byte data key, for the warehouse's personal columns."""

    def __init__(
        self, key: bytes, *, key_name: str = "system:warehouse", cache_size: int = 500_000
    ) -> None:
        if len(key) != 32:
            raise EngineError("the warehouse data key must be 32 bytes")
        self._aead = AESGCM(key)
        self.key_name = key_name
        # A build reads the same sealed values several times (identity normalises e-mails and
        # phones, profiles take the latest of each): opened values are kept, up to a bound,
        # for the life of this connection. Sealing is never cached (a fresh nonce each time).
        self._opened: dict[str, str] = {}
        self._cache_size = cache_size

    def encrypt(self, value: str | None) -> str | None:
        """``jz1:`` + base64(nonce + ciphertext); None stays None; sealed values stay."""
        if value is None or value.startswith(PREFIX):
            return value
        nonce = secrets.token_bytes(_NONCE)
        sealed = self._aead.encrypt(nonce, value.encode("utf-8"), _AAD)
        return PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, value: str | None) -> str | None:
        """The clear value; values without the prefix (written before encryption) as they are."""
        if value is None or not value.startswith(PREFIX):
            return value
        opened = self._opened.get(value)
        if opened is not None:
            return opened
        try:
            raw = base64.b64decode(value[len(PREFIX) :], validate=True)
            opened = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _AAD).decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error):
            raise EngineError(
                "a personal value in the warehouse does not open with the warehouse key "
                f"'{self.key_name}': the master key in use is not the one that wrapped it, "
                "or the value was changed"
            ) from None
        if len(self._opened) < self._cache_size:
            self._opened[value] = opened
        return opened

    def forget(self) -> None:
        """Drop every opened value kept in memory (after an erasure)."""
        self._opened.clear()

    def encrypt_many(self, values: list[str | None]) -> list[str | None]:
        """``encrypt`` of each value, with the nonces drawn in one call."""
        nonces = secrets.token_bytes(_NONCE * len(values))
        seal = self._aead.encrypt
        out: list[str | None] = []
        for i, value in enumerate(values):
            if value is None or value.startswith(PREFIX):
                out.append(value)
                continue
            nonce = nonces[i * _NONCE : (i + 1) * _NONCE]
            sealed = seal(nonce, value.encode("utf-8"), _AAD)
            out.append(PREFIX + base64.b64encode(nonce + sealed).decode("ascii"))
        return out

    def encrypt_array(self, values: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Encrypt a string column."""
        return pa.array(self.encrypt_many(values.to_pylist()), pa.string())

    def decrypt_array(self, values: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Decrypt a string column."""
        return pa.array([self.decrypt(v) for v in values.to_pylist()], pa.string())

    def encrypt_table(self, name: str, data: pa.Table) -> pa.Table:
        """Arrow rows about to be written to table ``name``, personal columns sealed."""
        for column in personal_columns(name, data.column_names):
            index = data.column_names.index(column)
            field = data.schema.field(index)
            if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
                encrypted = self.encrypt_array(data.column(index))
                data = data.set_column(index, pa.field(column, pa.string()), encrypted)
        return data

    def decrypting(self, name: str, table: ir.Table) -> ir.Table:
        """A stored table's expression with its personal columns decrypted."""
        columns = [c for c in personal_columns(name, table.columns) if table[c].type().is_string()]
        if not columns:
            return table
        return table.mutate(**{c: pii_decrypt(table[c]) for c in columns})

    def encrypting(self, name: str, data: ir.Table) -> ir.Table:
        """An expression about to be written to table ``name``, personal columns sealed."""
        columns = [c for c in personal_columns(name, data.columns) if data[c].type().is_string()]
        if not columns:
            return data
        return data.mutate(**{c: pii_encrypt(data[c]) for c in columns})

    def is_sealed(self, value: str | None) -> bool:
        """Whether a stored value is encrypted (None counts as nothing to seal)."""
        return value is None or value.startswith(PREFIX)
