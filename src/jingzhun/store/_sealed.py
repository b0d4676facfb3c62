"""Addresses and consent subjects sealed at rest in the operational store (AES-SIV).

``SealedString`` columns (``deliveries.address``, ``delivery_queue.address``,
``suppressions.address``, ``consents.subject``) are encrypted by SQLAlchemy on the way in and
opened on the way out, with the key the project's privacy settings give
(``OperationalStore.seal_with``). The cipher is **deterministic** AES-SIV (RFC 5297, from
``cryptography``): the same address always seals to the same text, so ``WHERE address = ?``,
``IN (...)`` and the unique constraint on suppressions keep working on sealed values, at the
price of showing which rows share an address (never which address). A stored value is
``jzs1:`` + base64 of the SIV tag and ciphertext.

Without a cipher, values are written as given and clear values are read as they are; a sealed
value read without the key is an error (a message would otherwise go to ``jzs1:...``).
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from jingzhun.core import EngineError

PREFIX = "jzs1:"
SEALED_LENGTH = 640  # a 320-character address sealed: 5 + 4 * ceil((16 + 320) / 3) = 453
DIALECT_ATTRIBUTE = "jingzhun_store_cipher"


class StoreCipher:
    """AES-256-SIV under a key derived (HKDF-SHA256) from a 32-byte data key."""

    def __init__(self, data_key: bytes, *, key_name: str = "system:store") -> None:
        if len(data_key) != 32:
            raise EngineError("the operational store's data key must be 32 bytes")
        key = HKDF(
            algorithm=hashes.SHA256(), length=64, salt=None, info=b"jingzhun store aes-siv v1"
        ).derive(data_key)
        self._siv = AESSIV(key)
        self.key_name = key_name

    def seal(self, value: str) -> str:
        """The sealed text of a value (the same value always gives the same text)."""
        if value.startswith(PREFIX):
            return value
        sealed = self._siv.encrypt(value.encode("utf-8"), None)
        return PREFIX + base64.b64encode(sealed).decode("ascii")

    def open(self, value: str) -> str:
        """The clear value of a sealed text; clear values (written before sealing) as they are."""
        if not value.startswith(PREFIX):
            return value
        try:
            raw = base64.b64decode(value[len(PREFIX) :], validate=True)
            return self._siv.decrypt(raw, None).decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error):
            raise EngineError(
                f"a sealed value in the operational store does not open with the key "
                f"'{self.key_name}': the master key in use is not the one that wrapped it"
            ) from None


def store_cipher_of(dialect: Dialect) -> StoreCipher | None:
    """The cipher a store's engine was given (``OperationalStore.seal_with``), if any."""
    cipher = getattr(dialect, DIALECT_ATTRIBUTE, None)
    return cipher if isinstance(cipher, StoreCipher) else None


class SealedString(TypeDecorator[str]):
    """A string column sealed at rest with the store's cipher (see the module's text)."""

    impl = String(SEALED_LENGTH)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        """Seal a value on its way into the database (comparisons included)."""
        cipher = store_cipher_of(dialect)
        if value is None or cipher is None:
            return value
        return cipher.seal(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        """Open a stored value."""
        if value is None or not value.startswith(PREFIX):
            return value
        cipher = store_cipher_of(dialect)
        if cipher is None:
            raise EngineError(
                "the operational store holds sealed addresses, and this connection has no key: "
                "open the project through the workspace (jingzhun commands do), which gives "
                "the store its key"
            )
        return cipher.open(value)
