"""Privacy rules applied to every load: erased people stay erased, corrections stay corrected.

Two warehouse tables, written by ``jingzhun.privacy``, are read here:

- ``privacy_tombstones``: keyed hashes (HMAC-SHA256 with the project secret ``privacy``) of the
  identifiers of erased people, never the identifiers. A row of a new file whose customer id
  (with its source), e-mail, phone, anonymous id or order id hashes to a tombstone is dropped
  (``on_return: suppress``) or, for a customer record under ``new_customer_with_consent``,
  kept with its consent flags cleared: the person starts again as a new customer who is not
  contacted until a consent is recorded after the erasure.
- ``privacy_corrections``: attribute values a person had corrected (right to rectification).
  A customer record of that ``(_source, customer_id)`` is loaded with the corrected value, so
  a later export from the source system cannot bring the old value back.

The file's **quarantine rows** are checked too: each holds the whole source row as JSON
(``record``, with the source's column names), which the source spec's column mapping turns
back into canonical identifiers. A bad row of an erased person is dropped in both
``on_return`` modes: it is never loaded anyway, and keeping it would store the identifiers the
erasure removed.

When neither table exists (a project nobody has erased or corrected), nothing is read or
hashed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from jingzhun.core import CONTRACTS, Project, SourceSpec, Target
from jingzhun.engine import Engine
from jingzhun.ingest._shape import content_hash

TOMBSTONES_TABLE = "privacy_tombstones"
CORRECTIONS_TABLE = "privacy_corrections"
PRIVACY_SECRET = "privacy"  # Project.secret name: env JINGZHUN_SECRET_PRIVACY or a key file

TOMBSTONES_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),  # email | phone | customer_id | anonymous_id | order_id
        ("value_hash", pa.string()),  # hex HMAC-SHA256 of "kind\x1fnormalised value"
        ("on_return", pa.string()),  # suppress | new_customer_with_consent
        ("request_id", pa.string()),
        ("erased_at", pa.timestamp("us", tz="UTC")),
    ]
)
CORRECTIONS_SCHEMA = pa.schema(
    [
        ("_source", pa.string()),
        ("customer_id", pa.string()),
        ("field", pa.string()),
        ("value", pa.string()),  # as text; JSON null for "no value"
        ("request_id", pa.string()),
        ("corrected_at", pa.timestamp("us", tz="UTC")),
    ]
)
ON_RETURN = ("suppress", "new_customer_with_consent")
PHONE_DIGITS = 9  # as the consent ledger: national prefixes and country codes differ
_CONSENT_FLAGS = ("email_consent", "sms_consent", "push_consent")
_CUSTOMERS = CONTRACTS[Target.CUSTOMERS]


def normalise_identifier(kind: str, value: str, source: str | None = None) -> str | None:
    """The form an identifier is hashed in; None when there is nothing to hash.

    E-mails trimmed and lower-cased; phones as their last nine digits (7 digits at least);
    customer and order ids with their source (ids are per source); anonymous ids trimmed.
    """
    text = value.strip()
    if not text:
        return None
    if kind == "email":
        return text.lower() if "@" in text else None
    if kind == "phone":
        digits = re.sub(r"\D", "", text)
        return digits[-PHONE_DIGITS:] if len(digits) >= 7 else None
    if kind in ("customer_id", "order_id"):
        return f"{source or ''}\x1f{text}"
    return text


def tombstone_hash(key: bytes, kind: str, value: str, source: str | None = None) -> str | None:
    """Hex HMAC-SHA256 of an identifier's normal form under the project's privacy secret."""
    normal = normalise_identifier(kind, value, source)
    if normal is None:
        return None
    message = f"{kind}\x1f{normal}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


# Identifier fields looked for in a quarantined row: (canonical field, tombstone kind, whether
# the value is per source). Every one a source maps is checked, whatever the target.
_QUARANTINE_IDENTIFIERS = (
    ("email", "email", False),
    ("phone", "phone", False),
    ("customer_id", "customer_id", True),
    ("anonymous_id", "anonymous_id", False),
    ("order_id", "order_id", True),
)


@dataclass
class PrivacyOutcome:
    """Rows dropped by tombstones (per raw table) and records changed by the rules.

    ``quarantine`` is the file's quarantine without the erased people's rows (None when no
    quarantine was given); ``quarantine_rows_suppressed`` counts the source rows behind the
    dropped quarantine rows (a bad row has one quarantine row per bad value).
    """

    suppressed: dict[str, int]
    consent_cleared: int = 0
    corrected: int = 0
    quarantine: pa.Table | None = None
    quarantine_rows_suppressed: int = 0


def _hits(
    key: bytes,
    tombstones: dict[str, str],
    kind: str,
    values: Iterable[object],
    sources: Iterable[object] | None = None,
) -> list[str | None]:
    """The tombstone mode each row hits through one identifier column (None: no hit)."""
    cache: dict[tuple[object, object], str | None] = {}
    out: list[str | None] = []
    source_list = list(sources) if sources is not None else None
    for i, value in enumerate(values):
        source = source_list[i] if source_list is not None else None
        if value is None:
            out.append(None)
            continue
        marker = (value, source)
        if marker not in cache:
            digest = tombstone_hash(key, kind, str(value), None if source is None else str(source))
            cache[marker] = tombstones.get(digest) if digest else None
        out.append(cache[marker])
    return out


def _merge(modes: list[list[str | None]], n: int) -> list[str | None]:
    """Per row: ``suppress`` beats ``new_customer_with_consent`` beats no hit."""
    merged: list[str | None] = [None] * n
    for column in modes:
        for i, mode in enumerate(column):
            if mode == "suppress" or (mode and merged[i] is None):
                merged[i] = mode
    return merged


def _column(table: pa.Table, name: str) -> list[object]:
    return table[name].to_pylist() if name in table.column_names else [None] * table.num_rows


def _rehash(table: pa.Table, changed: list[bool]) -> pa.Table:
    """New content hashes for changed customer records (every contract field counts)."""
    if not any(changed) or "_row_hash" not in table.column_names:
        return table
    fresh = content_hash(table, list(_CUSTOMERS.field_names)).to_pylist()
    old = table["_row_hash"].to_pylist()
    hashes = [f if c else o for f, o, c in zip(fresh, old, changed, strict=True)]
    index = table.column_names.index("_row_hash")
    return table.set_column(index, "_row_hash", pa.array(hashes, pa.string()))


def _apply_tombstones(
    key: bytes, tombstones: dict[str, str], tables: dict[str, pa.Table], outcome: PrivacyOutcome
) -> dict[str, pa.Table]:
    out = dict(tables)
    dropped_orders: set[tuple[object, object]] = set()
    for name in ("raw_customers", "raw_orders", "raw_events", "raw_order_items"):
        table = out.get(name)
        if table is None or table.num_rows == 0:
            continue
        n = table.num_rows
        sources = _column(table, "_source")
        checks: list[list[str | None]] = []
        if "customer_id" in table.column_names:
            checks.append(
                _hits(key, tombstones, "customer_id", _column(table, "customer_id"), sources)
            )
        if name == "raw_customers":
            checks.append(_hits(key, tombstones, "email", _column(table, "email")))
            checks.append(_hits(key, tombstones, "phone", _column(table, "phone")))
        if name == "raw_events":
            checks.append(_hits(key, tombstones, "anonymous_id", _column(table, "anonymous_id")))
        if "order_id" in table.column_names:
            checks.append(_hits(key, tombstones, "order_id", _column(table, "order_id"), sources))
        modes = _merge(checks, n)
        if name == "raw_order_items":
            orders = list(zip(sources, _column(table, "order_id"), strict=True))
            modes = [
                "suppress" if o in dropped_orders else m for m, o in zip(modes, orders, strict=True)
            ]
        drop = [m == "suppress" for m in modes]
        if name == "raw_orders":
            ids = _column(table, "order_id")
            dropped_orders |= {(s, o) for s, o, d in zip(sources, ids, drop, strict=True) if d}
        if name == "raw_customers":
            renew = [m == "new_customer_with_consent" for m in modes]
            if any(renew):
                for flag in _CONSENT_FLAGS:
                    if flag in table.column_names:
                        cleared = pc.if_else(pa.array(renew), pa.scalar(False), table[flag])
                        table = table.set_column(table.column_names.index(flag), flag, cleared)
                table = _rehash(table, renew)
                outcome.consent_cleared += sum(
                    1 for r, d in zip(renew, drop, strict=True) if r and not d
                )
        if any(drop):
            table = table.filter(pa.array([not d for d in drop]))
            outcome.suppressed[name] = sum(drop)
        out[name] = table
    return out


def _record(text: object) -> dict[str, object]:
    """A quarantine row's ``record`` (the source row as JSON); {} when it is not an object."""
    if not isinstance(text, str):
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _apply_to_quarantine(
    key: bytes,
    tombstones: dict[str, str],
    quarantine: pa.Table,
    columns: Mapping[str, str],
    outcome: PrivacyOutcome,
) -> pa.Table:
    """The quarantine rows whose source row holds no tombstoned identifier.

    ``columns`` maps canonical fields to the source's column names (the spec's ``from``).
    """
    if quarantine.num_rows == 0:
        return quarantine
    records = [_record(text) for text in _column(quarantine, "record")]
    sources = _column(quarantine, "_source")
    checks: list[list[str | None]] = []
    for field_name, kind, per_source in _QUARANTINE_IDENTIFIERS:
        column = columns.get(field_name)
        if column is None:
            continue
        values = [record.get(column) for record in records]
        checks.append(_hits(key, tombstones, kind, values, sources if per_source else None))
    if not checks:
        return quarantine
    drop = [mode is not None for mode in _merge(checks, quarantine.num_rows)]
    if not any(drop):
        return quarantine
    rows = _column(quarantine, "_row")
    outcome.quarantine_rows_suppressed = len({r for r, d in zip(rows, drop, strict=True) if d})
    return quarantine.filter(pa.array([not d for d in drop]))


def _typed(field: str, text: object) -> object:
    """A corrected value (JSON-decoded) as the customers contract types it."""
    if not isinstance(text, str):
        return text
    kind = _CUSTOMERS.field(field).type.value
    if kind == "date":
        return date.fromisoformat(text)
    if kind == "timestamp":
        return datetime.fromisoformat(text)
    if kind == "boolean":
        return text.strip().lower() in ("true", "1", "yes")
    return text


def _apply_corrections(
    corrections: list[dict[str, object]], tables: dict[str, pa.Table], outcome: PrivacyOutcome
) -> dict[str, pa.Table]:
    table = tables.get("raw_customers")
    if table is None or table.num_rows == 0 or not corrections:
        return tables
    latest: dict[tuple[object, object], dict[str, object]] = {}
    for row in sorted(corrections, key=lambda r: str(r["corrected_at"])):
        value = row["value"]
        parsed = json.loads(str(value)) if value is not None else None
        latest.setdefault((row["_source"], row["customer_id"]), {})[str(row["field"])] = parsed
    keys = list(zip(_column(table, "_source"), _column(table, "customer_id"), strict=True))
    changed = [False] * table.num_rows
    for field in sorted({f for fields in latest.values() for f in fields}):
        if field not in table.column_names:
            continue
        current = table[field].to_pylist()
        values = []
        for i, (k, old) in enumerate(zip(keys, current, strict=True)):
            fields = latest.get(k, {})
            if field in fields:
                new = _typed(field, fields[field])
                changed[i] = changed[i] or new != old
                values.append(new)
            else:
                values.append(old)
        typed = pa.array(values, table.schema.field(field).type)
        table = table.set_column(table.column_names.index(field), field, typed)
    outcome.corrected += sum(changed)
    out = dict(tables)
    out["raw_customers"] = _rehash(table, changed)
    return out


def apply_privacy_rules(
    engine: Engine,
    project: Project,
    tables: dict[str, pa.Table],
    *,
    quarantine: pa.Table | None = None,
    spec: SourceSpec | None = None,
) -> tuple[dict[str, pa.Table], PrivacyOutcome]:
    """Apply corrections, then tombstones, to one file's shaped rows before they are stored.

    With ``quarantine`` (the file's quarantine rows) and ``spec`` (whose column mapping reads
    their ``record``), the quarantine rows of erased people are dropped as well, in either
    ``on_return`` mode; the rest is ``outcome.quarantine``.
    """
    outcome = PrivacyOutcome(suppressed={}, quarantine=quarantine)
    if engine.exists(CORRECTIONS_TABLE) and engine.count(CORRECTIONS_TABLE):
        rows = engine.execute(engine.read(CORRECTIONS_TABLE)).to_pylist()
        tables = _apply_corrections(rows, tables, outcome)
    if engine.exists(TOMBSTONES_TABLE) and engine.count(TOMBSTONES_TABLE):
        stones = engine.read(TOMBSTONES_TABLE).select("value_hash", "on_return")
        found = engine.execute(stones).to_pylist()
        modes: dict[str, str] = {}
        for row in found:
            mode = str(row["on_return"])
            if modes.get(str(row["value_hash"])) != "suppress":
                modes[str(row["value_hash"])] = mode
        key = project.secret(PRIVACY_SECRET)
        tables = _apply_tombstones(key, modes, tables, outcome)
        if quarantine is not None and spec is not None:
            columns = {name: column.source for name, column in spec.columns.items()}
            outcome.quarantine = _apply_to_quarantine(key, modes, quarantine, columns, outcome)
    return tables, outcome
