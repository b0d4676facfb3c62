"""Build Arrow columns from numpy arrays without a Python loop per row.

Ids are written digit by digit into a byte matrix and handed to Arrow as one buffer; money is
kept as int64 in units of 1/10 000 and handed to Arrow as decimal128(18, 4); low-cardinality
text is a dictionary array, which the Parquet writer stores without hashing each value.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MONEY_SCALE = 10_000  # decimal(18, 4): amounts are int64 counts of 1/10 000
DECIMAL = pa.decimal128(18, 4)
TIMESTAMP = pa.timestamp("us", tz="UTC")


@cache
def _four_digits() -> np.ndarray:
    """The ASCII bytes of 0000..9999, one row each."""
    numbers = np.arange(10_000)
    out = np.empty((10_000, 4), dtype=np.uint8)
    for k in range(4):
        out[:, 3 - k] = 48 + (numbers // 10**k) % 10
    return out


def fixed_width(matrix: np.ndarray, null: np.ndarray | None = None) -> pa.StringArray:
    """One string per row of an (n, width) uint8 matrix of UTF-8 bytes; null where ``null``."""
    n, width = matrix.shape
    if (n + 1) * width >= 2**31:
        raise ValueError(f"{n} strings of {width} bytes do not fit one Arrow string array")
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(matrix).reshape(-1)
    validity = None
    if null is not None and null.any():
        validity = pa.py_buffer(np.packbits(~null, bitorder="little"))
    return pa.Array.from_buffers(
        pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def digit_matrix(numbers: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative integers as an (n, width) byte matrix."""
    table = _four_digits()
    out = np.empty((len(numbers), width), dtype=np.uint8)
    rest = np.asarray(numbers, dtype=np.int64)
    end = width
    while end > 0:
        rest, group = np.divmod(rest, 10_000)
        take = min(4, end)
        out[:, end - take : end] = table[group][:, 4 - take :]
        end -= take
    return out


def id_strings(prefix: str, numbers: np.ndarray, width: int) -> pa.StringArray:
    """``prefix`` followed by each number zero-padded to ``width`` digits (``W-00000042``)."""
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    matrix = np.empty((len(numbers), len(head) + width), dtype=np.uint8)
    matrix[:, : len(head)] = head
    matrix[:, len(head) :] = digit_matrix(numbers, width)
    return fixed_width(matrix)


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@cache
def _byte_hex() -> np.ndarray:
    """The two hex digits of each byte value, as one little-endian uint16 each."""
    pairs = np.empty((256, 2), dtype=np.uint8)
    pairs[:, 0] = _HEX[np.arange(256) >> 4]
    pairs[:, 1] = _HEX[np.arange(256) & 15]
    return pairs.view(np.uint16).reshape(256)


def hex_matrix(values: np.ndarray) -> np.ndarray:
    """The 16 lower-case hex digits of uint64 values, as an (n, 16) byte matrix."""
    big_endian = np.asarray(values, dtype=np.uint64).astype(">u8")
    octets = big_endian.view(np.uint8).reshape(-1, 8)
    return _byte_hex()[octets].view(np.uint8).reshape(-1, 16)


def mix64(values: np.ndarray, key: int) -> np.ndarray:
    """A bijection of uint64 (splitmix64's finaliser after adding ``key``): distinct in,
    distinct out, looking random — for ids that must be unique yet not sequential.
    """
    z = np.asarray(values, dtype=np.uint64) + np.uint64(key & 0xFFFFFFFFFFFFFFFF)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uuid_strings(index: np.ndarray, key: int) -> pa.StringArray:
    """Version-4-shaped UUIDs (``8-4-4-4-12`` hex), unique per index for a given ``key``."""
    high = hex_matrix(mix64(index, key))
    low = hex_matrix(mix64(index, key ^ 0x5DEECE66D))
    dash = np.uint8(ord("-"))
    out = np.empty((len(index), 36), dtype=np.uint8)
    out[:, 0:8] = high[:, 0:8]
    out[:, 8] = dash
    out[:, 9:13] = high[:, 8:12]
    out[:, 13] = dash
    out[:, 14] = ord("4")
    out[:, 15:18] = high[:, 13:16]
    out[:, 18] = dash
    out[:, 19] = _HEX[8 + (low[:, 0] & 3)]  # the variant nibble is 8, 9, a or b
    out[:, 20:23] = low[:, 1:4]
    out[:, 23] = dash
    out[:, 24:36] = low[:, 4:16]
    return fixed_width(out)


def money(units: np.ndarray) -> pa.Array:
    """A decimal(18, 4) array from int64 counts of 1/10 000 — exact, no float on the way."""
    units = np.asarray(units, dtype=np.int64)
    words = np.empty((len(units), 2), dtype=np.int64)
    words[:, 0] = units
    words[:, 1] = units >> 63  # two's-complement sign extension to 128 bits
    return pa.Array.from_buffers(DECIMAL, len(units), [None, pa.py_buffer(words)])


def timestamps(us: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """A UTC timestamp array from int64 microseconds since the epoch."""
    return pa.array(np.asarray(us, dtype=np.int64), mask=null).cast(TIMESTAMP)


def dates(days: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """A date32 array from int days since 1970-01-01."""
    return pa.array(np.asarray(days, dtype=np.int32), mask=null).cast(pa.date32())


def categorical(codes: np.ndarray, values: pa.Array, null: np.ndarray | None = None) -> pa.Array:
    """Text from a small vocabulary as a dictionary array (code ``i`` stands for ``values[i]``)."""
    if pc.count_distinct(values).as_py() != len(values):
        # Parquet's writer would fall back to plain encoding, and not reproducibly.
        raise ValueError("a dictionary column needs distinct values")
    indices = pa.array(np.asarray(codes, dtype=np.int32), mask=null)
    return pa.DictionaryArray.from_arrays(indices, values)


def pick(values: pa.Array, index: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Dense ``values[index]``, null where ``null`` is set."""
    return values.take(pa.array(np.asarray(index, dtype=np.int64), mask=null))


def join(*parts: pa.Array | str) -> pa.Array:
    """Concatenate strings element-wise; plain ``str`` parts repeat on every row."""
    return pc.binary_join_element_wise(*parts, "")


def compact_json(value: Any) -> str:
    """JSON text without spaces, non-ASCII kept as is: how every JSON column is written."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
