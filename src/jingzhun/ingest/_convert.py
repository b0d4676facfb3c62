"""Convert a file's columns to the canonical types, column by column and without row loops.

Every value that cannot be converted, or breaks a check of the source spec, becomes a
``Problem`` naming the row, the column, the value and what was expected.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jingzhun.core import ColumnSpec, Field, FieldType
from jingzhun.engine import ARROW_TYPES

_INTEGER = r"^[+-]?\d+$"
_DECIMAL = r"^[+-]?(\d+(\.\d*)?|\.\d+)$"
_FLOAT = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|nan)$"
# Tried in order when a timestamp column has no format in the spec.
_TIMESTAMP_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
_WIDE_DECIMAL = pa.decimal128(38, 12)


@dataclass(frozen=True)
class Problem:
    """Why one value of one row was refused."""

    rows: np.ndarray  # 0-based row indexes in the file's table
    column: str  # the source column, as named in the file
    reason: str


@dataclass
class Converted:
    """One canonical column after conversion, plus the problems it found."""

    values: pa.Array
    problems: list[Problem]


def _as_string(values: pa.Array) -> pa.Array:
    text = values.cast(pa.string())
    text = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _bad_rows(candidate_ok: pa.Array, present: pa.Array) -> np.ndarray:
    """Rows that had a value but failed to convert."""
    failed = pc.and_(present, pc.invert(pc.fill_null(candidate_ok, False)))
    return np.flatnonzero(failed.to_numpy(zero_copy_only=False))


def _problem(rows: np.ndarray, column: str, reason: str) -> list[Problem]:
    return [Problem(rows, column, reason)] if rows.size else []


def _numeric(
    text: pa.Array, pattern: str, target: pa.DataType, column: str, what: str
) -> Converted:
    present = pc.is_valid(text)
    ok = pc.match_substring_regex(text, pattern, ignore_case=True)
    bad = _bad_rows(ok, present)
    clean = pc.if_else(pc.fill_null(ok, False), text, pa.scalar(None, pa.string()))
    if pa.types.is_decimal(target):
        # Parse wide, round half-to-even to the stored scale, then narrow (exact, no float).
        values = pc.round(clean.cast(_WIDE_DECIMAL), ndigits=target.scale).cast(target)
    else:
        values = clean.cast(target)
    return Converted(values, _problem(bad, column, f"is not {what}"))


def _boolean(text: pa.Array, spec: ColumnSpec, column: str) -> Converted:
    lowered = pc.utf8_lower(text)
    is_true = pc.is_in(lowered, value_set=pa.array([v.lower() for v in spec.true_values]))
    is_false = pc.is_in(lowered, value_set=pa.array([v.lower() for v in spec.false_values]))
    present = pc.is_valid(text)
    bad = _bad_rows(pc.or_(is_true, is_false), present)
    values = pc.if_else(present, pc.if_else(is_true, True, pc.if_else(is_false, False, None)), None)
    allowed = "/".join(spec.true_values[:2] + spec.false_values[:2])
    return Converted(values, _problem(bad, column, f"is not a yes/no value ({allowed})"))


def _strptime(text: pa.Array, fmt: str, unit: str) -> pa.Array:
    """Arrow's strptime, minus the impossible dates it rolls over (31/02 → 03/03).

    A value that prints back unchanged is valid; the few that do not (no zero padding, "Z"
    for an offset, ...) are checked once more with Python's strict parser.
    """
    parsed = pc.strptime(text, format=fmt, unit=unit, error_is_null=True)
    printed = pc.strftime(parsed, format=fmt) if parsed.type.tz is None else None
    doubtful = pc.is_valid(parsed)
    if printed is not None:
        doubtful = pc.and_(doubtful, pc.invert(pc.fill_null(pc.equal(printed, text), False)))
    rows = np.flatnonzero(doubtful.to_numpy(zero_copy_only=False))
    if rows.size == 0:
        return parsed
    refused = np.zeros(len(text), dtype=bool)
    for row, value in zip(rows, text.take(pa.array(rows)).to_pylist(), strict=True):
        try:
            datetime.strptime(value, fmt)
        except ValueError:
            refused[row] = True
    return pc.if_else(pa.array(refused), pa.scalar(None, parsed.type), parsed)


def _parse_timestamps(
    text: pa.Array, formats: tuple[str, ...], timezone: str
) -> tuple[pa.Array, pa.Array]:
    """Parse with the first format that fits each value; naive times are local to ``timezone``."""
    utc = pa.timestamp("us", tz="UTC")
    result = pa.nulls(len(text), utc)
    for fmt in formats:
        todo = pc.and_(pc.is_valid(text), pc.is_null(result))
        if not pc.any(todo).as_py():
            break
        parsed = _strptime(text, fmt, "us")
        if parsed.type.tz is None:
            # DST: an ambiguous local time takes its first occurrence; one inside the
            # spring-forward gap is moved forward, as wall clocks do.
            parsed = pc.assume_timezone(
                parsed, timezone=timezone, ambiguous="earliest", nonexistent="latest"
            )
        result = pc.if_else(todo, parsed.cast(utc), result)
    return result, pc.is_valid(result)


def _temporal(
    values: pa.Array, field: Field, spec: ColumnSpec, column: str, timezone: str
) -> Converted:
    utc = pa.timestamp("us", tz="UTC")
    if pa.types.is_timestamp(values.type):
        if field.type is FieldType.DATE:
            # A date is a calendar day where the customer is: read it in the source's zone.
            local = values
            if values.type.tz is not None:
                zoned = values.cast(pa.timestamp(values.type.unit, tz=timezone))
                local = pc.local_timestamp(zoned)
            return Converted(local.cast(pa.date32()), [])
        stamped = values
        if values.type.tz is None:
            stamped = pc.assume_timezone(
                values, timezone=timezone, ambiguous="earliest", nonexistent="latest"
            )
        return Converted(stamped.cast(utc), [])
    if pa.types.is_date(values.type):
        if field.type is FieldType.DATE:
            return Converted(values.cast(pa.date32()), [])
        naive = values.cast(pa.timestamp("us"))
        return Converted(
            pc.assume_timezone(naive, timezone=timezone, ambiguous="earliest").cast(utc), []
        )
    text = _as_string(values)
    present = pc.is_valid(text)
    if field.type is FieldType.DATE:
        fmt = spec.format or "%Y-%m-%d"
        parsed = _strptime(text, fmt, "s")
        bad = _bad_rows(pc.is_valid(parsed), present)
        return Converted(
            parsed.cast(pa.date32()), _problem(bad, column, f"is not a date in the format {fmt}")
        )
    formats = (spec.format,) if spec.format else _TIMESTAMP_FORMATS
    parsed, ok = _parse_timestamps(text, formats, timezone)
    bad = _bad_rows(ok, present)
    expected = f"the format {spec.format}" if spec.format else "ISO 8601 (YYYY-MM-DD HH:MM:SS)"
    return Converted(parsed, _problem(bad, column, f"is not a timestamp in {expected}"))


def _without_nulls(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _json(values: pa.Array, column: str) -> Converted:
    if (
        pa.types.is_struct(values.type)
        or pa.types.is_list(values.type)
        or pa.types.is_map(values.type)
    ):
        # Arrow gives every row the union of the keys seen in the file; drop the absent ones.
        dumped = [
            None if v is None else json.dumps(_without_nulls(v), default=str, ensure_ascii=False)
            for v in values.to_pylist()
        ]
        return Converted(pa.array(dumped, pa.string()), [])
    text = _as_string(values)
    bad: list[int] = []
    for index, value in enumerate(text.to_pylist()):
        if value is None:
            continue
        try:
            json.loads(value)
        except ValueError:
            bad.append(index)
    return Converted(text, _problem(np.array(bad, dtype=np.int64), column, "is not valid JSON"))


def convert_column(values: pa.Array, field: Field, spec: ColumnSpec, timezone: str) -> Converted:
    """Convert one source column to ``field``'s type (or the spec's override) and run its checks."""
    column = spec.source
    kind = spec.type or field.type
    if spec.starts_with is not None:
        text = _as_string(values)
        flag = pc.fill_null(pc.starts_with(text, spec.starts_with), False)
        return Converted(flag, [])
    target = ARROW_TYPES[kind]
    if kind is FieldType.STRING:
        out = Converted(_as_string(values), [])
    elif kind in (FieldType.INTEGER, FieldType.DECIMAL, FieldType.FLOAT):
        if (
            pa.types.is_integer(values.type)
            or pa.types.is_floating(values.type)
            or (pa.types.is_decimal(values.type))
        ):
            if kind is FieldType.INTEGER and not pa.types.is_integer(values.type):
                as_float = values.cast(pa.float64())
                whole = pc.equal(pc.floor(as_float), as_float)
                bad = _bad_rows(whole, pc.is_valid(values))
                kept = pc.if_else(pc.fill_null(whole, False), as_float, None)
                out = Converted(kept.cast(target), _problem(bad, column, "is not an integer"))
            elif kind is FieldType.DECIMAL and not pa.types.is_decimal(values.type):
                rounded = pc.round(values.cast(pa.float64()), ndigits=target.scale)
                out = Converted(rounded.cast(target), [])
            elif kind is FieldType.DECIMAL:
                out = Converted(pc.round(values, ndigits=target.scale).cast(target), [])
            else:
                out = Converted(values.cast(target), [])
        else:
            text = _as_string(values)
            pattern, what = {
                FieldType.INTEGER: (_INTEGER, "an integer"),
                FieldType.DECIMAL: (_DECIMAL, "a decimal number"),
                FieldType.FLOAT: (_FLOAT, "a number"),
            }[kind]
            out = _numeric(text, pattern, target, column, what)
    elif kind is FieldType.BOOLEAN:
        if pa.types.is_boolean(values.type):
            out = Converted(values, [])
        else:
            out = _boolean(_as_string(values), spec, column)
    elif kind in (FieldType.DATE, FieldType.TIMESTAMP):
        tz = spec.timezone or timezone
        out = _temporal(values, dataclasses.replace(field, type=kind), spec, column, tz)
    else:
        out = _json(values, column)
    out.problems.extend(_checks(out.values, field, spec, kind))
    return out


def _checks(values: pa.Array, field: Field, spec: ColumnSpec, kind: FieldType) -> list[Problem]:
    column = spec.source
    problems: list[Problem] = []
    required = field.required if spec.required is None else spec.required
    if required:
        missing = np.flatnonzero(pc.is_null(values).to_numpy(zero_copy_only=False))
        problems += _problem(missing, column, "is empty but required")
    numeric = kind in (FieldType.INTEGER, FieldType.DECIMAL, FieldType.FLOAT)
    bounds = (
        ("greater_than", pc.greater, "must be greater than"),
        ("at_least", pc.greater_equal, "must be at least"),
        ("less_than", pc.less, "must be less than"),
        ("at_most", pc.less_equal, "must be at most"),
    )
    for name, compare, words in bounds:
        limit = getattr(spec, name)
        if limit is None or not numeric:
            continue
        ok = compare(values.cast(pa.float64()), pa.scalar(float(limit)))
        bad = _bad_rows(ok, pc.is_valid(values))
        problems += _problem(bad, column, f"{words} {limit:g}")
    if spec.one_of is not None:
        ok = pc.is_in(values.cast(pa.string()), value_set=pa.array(spec.one_of))
        bad = _bad_rows(ok, pc.is_valid(values))
        problems += _problem(bad, column, f"must be one of {', '.join(spec.one_of)}")
    if spec.pattern is not None:
        ok = pc.match_substring_regex(values.cast(pa.string()), spec.pattern)
        bad = _bad_rows(ok, pc.is_valid(values))
        problems += _problem(bad, column, f"does not match the pattern {spec.pattern}")
    return problems
