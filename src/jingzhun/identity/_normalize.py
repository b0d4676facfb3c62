"""Identifier normalisation: one spelling per e-mail and phone, keyed hashes for ID numbers.

Each function takes an Arrow array of raw text and returns the normalised values with, for
every value that was present but unusable, the reason it was refused (``Normalised.reasons``;
None where the value is fine or was empty).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

# Deliberately simple: one @, something before it, a dot in the domain, no spaces. Stricter
# RFC 5322 checks refuse real addresses; deliverability is the delivery stage's business.
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"


@dataclass(frozen=True)
class Normalised:
    """Normalised identifiers and, per row, why a present value was refused (else None)."""

    values: pa.Array
    reasons: pa.Array

    @property
    def refused(self) -> pa.Array:
        """True where a value was present but refused."""
        return pc.is_valid(self.reasons)


def _text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    text = pc.utf8_trim_whitespace(values.cast(pa.string()))
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def normalize_emails(values: pa.Array | pa.ChunkedArray) -> Normalised:
    """Trim and lower-case; refuse values that are not shaped like an address."""
    text = pc.utf8_lower(_text(values))
    ok = pc.fill_null(pc.match_substring_regex(text, _EMAIL), False)
    refused = pc.and_(pc.is_valid(text), pc.invert(ok))
    reasons = pc.if_else(refused, "not an e-mail address", pa.scalar(None, pa.string()))
    return Normalised(pc.if_else(ok, text, pa.scalar(None, pa.string())), reasons)


@lru_cache(maxsize=1_000_000)
def _e164(raw: str, region: str) -> tuple[str | None, str | None]:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        return None, f"not a phone number ({exc.args[0] if exc.args else exc})"
    if not phonenumbers.is_valid_number(number):
        return None, f"not a valid phone number for region {region}"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def normalize_phones(values: pa.Array | pa.ChunkedArray, region: str) -> Normalised:
    """E.164 via Google's libphonenumber rules; numbers without a country code use ``region``.

    Parsed once per distinct spelling (a customer table repeats few), cached across calls.
    """
    text = _text(values)
    distinct = pc.unique(text).drop_null()
    parsed = [_e164(raw, region) for raw in distinct.to_pylist()]
    lookup = pc.index_in(text, value_set=distinct)
    numbers = pa.array([p[0] for p in parsed], pa.string())
    reasons = pa.array([p[1] for p in parsed], pa.string())
    return Normalised(pc.take(numbers, lookup), pc.take(reasons, lookup))


def keyed_hash(values: pa.Array | pa.ChunkedArray, key: bytes) -> pa.Array:
    """HMAC-SHA256 of each trimmed, upper-cased value (ID and card numbers are kept only so).

    The key lives outside the warehouse, so the hashes cannot be reversed by trying every
    possible ID number without it.
    """
    text = pc.utf8_upper(_text(values))
    hashed = [
        None if v is None else hmac.new(key, v.encode(), hashlib.sha256).hexdigest()
        for v in text.to_pylist()
    ]
    return pa.array(hashed, pa.string())
