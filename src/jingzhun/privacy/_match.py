"""Finding one person's values anywhere: in a warehouse column, a store row, a file's cell.

Identifiers come in two strengths:

- **distinctive** ones (e-mails, phones, customer keys, node keys, device ids, ID hashes, and
  source ids of 6+ characters with a letter or of 8+ characters) are matched as whole tokens
  in any text, case ignored: ``ck_1a2b`` matches in ``winback:ck_1a2b:email`` but ``W-0001``
  does not match in ``W-00012``;
- **short** source ids (``12346``, an invoice number) could be anything else (a SKU, a
  quantity), so they are matched only as the whole value of an id column (``customer_id``,
  ``node_id``, ``subject``, ``user_id``...; ``order_id`` for order ids) and, when the row has a
  source column (``_source``, ``node_source``, ``source``, ``subject_source``), only with
  their own source; and inside JSON text as the value of a key naming a customer or user.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, reduce
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

ID_COLUMNS = frozenset({"customerid", "nodeid", "subject", "userid", "externalid", "previousid"})
ORDER_COLUMNS = frozenset({"orderid", "invoiceno", "invoice"})
SOURCE_COLUMNS = frozenset({"source", "nodesource", "subjectsource"})
_LEFT = r"(?:^|[^a-z0-9])"
_RIGHT = r"(?:$|[^a-z0-9])"
_EMAIL_LEFT = r"(?:^|[^a-z0-9._%+-])"
_EMAIL_RIGHT = r"(?:$|[^a-z0-9.-]|\.(?:$|[^a-z0-9]))"
_DIGITS_LEFT = r"(?:^|[^0-9])"
_DIGITS_RIGHT = r"(?:$|[^0-9])"


def column_kind(name: str) -> str:
    """``id``, ``order``, ``source`` or ``""`` for a column name (case and _ ignored)."""
    flat = re.sub(r"[^a-z0-9]", "", name.lower())
    if flat in SOURCE_COLUMNS:
        return "source"
    if flat in ID_COLUMNS:
        return "id"
    if flat in ORDER_COLUMNS:
        return "order"
    return ""


def distinctive(value: str) -> bool:
    """Whether a source id is unlikely to be anything else (safe to match as a token)."""
    text = value.strip()
    return (len(text) >= 6 and bool(re.search(r"[A-Za-z]", text))) or len(text) >= 8


def _alternation(terms: Iterable[str]) -> str:
    ordered = sorted({t for t in terms if t}, key=lambda t: (-len(t), t))
    return "|".join(re.escape(t.lower()) for t in ordered)


@dataclass(frozen=True)
class Matcher:
    """The terms of one person, and how to look for them."""

    emails: frozenset[str] = frozenset()
    digits: frozenset[str] = frozenset()  # phone numbers written as digits only
    tokens: frozenset[str] = frozenset()  # other distinctive values
    ids: frozenset[tuple[str, str]] = field(default_factory=frozenset)  # (source, short id)
    orders: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    @property
    def empty(self) -> bool:
        """True when there is nothing to look for."""
        return not (self.emails or self.digits or self.tokens or self.ids or self.orders)

    def terms(self) -> list[str]:
        """Every value looked for (for reports and tests)."""
        return sorted(
            self.emails | self.digits | self.tokens | {i for _, i in self.ids | self.orders}
        )

    @cached_property
    def pattern(self) -> str:
        """One case-insensitive regular expression (RE2 and Python alike) for text hits."""
        parts = []
        if self.emails:
            parts.append(f"{_EMAIL_LEFT}(?:{_alternation(self.emails)}){_EMAIL_RIGHT}")
        if self.digits:
            parts.append(f"{_DIGITS_LEFT}(?:{_alternation(self.digits)}){_DIGITS_RIGHT}")
        if self.tokens:
            parts.append(f"{_LEFT}(?:{_alternation(self.tokens)}){_RIGHT}")
        short = {i for _, i in self.ids}
        if short:
            parts.append(
                r'"[^"]*(?:customer|user|client|member)[^"]*"\s*:\s*"?'
                f"(?:{_alternation(short)})" + r'(?:\.0)?"?\s*[,}]'
            )
        return "(?i)(?:" + "|".join(parts) + ")" if parts else ""

    @cached_property
    def regex(self) -> re.Pattern[str] | None:
        """The compiled pattern (None when there is nothing to look for in text)."""
        return re.compile(self.pattern[4:], re.IGNORECASE) if self.pattern else None

    def text_hit(self, text: str) -> bool:
        """Whether a piece of text holds one of the person's distinctive values."""
        return bool(self.regex and self.regex.search(text))

    @cached_property
    def _core(self) -> re.Pattern[str]:
        every = self.emails | self.digits | self.tokens | {i for _, i in self.ids}
        return re.compile(_alternation(every) or "(?!)", re.IGNORECASE)

    def redact(self, text: str, replacement: str) -> str:
        """``text`` with every distinctive value replaced by ``replacement``."""
        if not self.regex:
            return text
        for _ in range(8):  # adjacent values share a boundary character: repeat until clean
            changed = self.regex.sub(lambda m: self._core.sub(replacement, m.group(0)), text)
            if changed == text:
                break
            text = changed
        return text

    # -- rows of named columns (store tables, CSV and Parquet files) --------------------------

    def row_hit(self, row: Mapping[str, Any], source: str | None = None) -> bool:
        """Whether a row (column name: value) belongs to the person.

        ``source`` is the source a file belongs to, used when the row has no source column.
        """
        row_source = source
        for name, value in row.items():
            if column_kind(name) == "source" and value not in (None, ""):
                row_source = str(value)
        for name, value in row.items():
            if value is None:
                continue
            if isinstance(value, dict | list):
                text = json.dumps(value, ensure_ascii=False)
            else:
                text = value if isinstance(value, str) else str(value)
            kind = column_kind(name)
            if kind == "id" and self._scoped(self.ids, row_source, text):
                return True
            if kind == "order" and self._scoped(self.orders, row_source, text):
                return True
            if isinstance(value, str | dict | list) and self.text_hit(text):
                return True
        return False

    @staticmethod
    def _scoped(pairs: frozenset[tuple[str, str]], source: str | None, value: str) -> bool:
        text = value.strip().removesuffix(".0")
        return any(i == text and (source is None or s == source) for s, i in pairs)

    # -- warehouse tables ----------------------------------------------------------------------

    def predicate(self, table: ir.Table) -> ir.BooleanValue | None:
        """An Ibis condition true for the person's rows of ``table`` (None: none can match)."""
        schema = table.schema()
        strings = [name for name, kind in schema.items() if isinstance(kind, dt.String)]
        sources = [n for n in strings if column_kind(n) == "source"]
        source_column = sources[0] if sources else None
        conditions: list[ir.BooleanValue] = []
        for name in strings:
            column = table[name]
            if self.pattern:
                conditions.append(column.re_search(self.pattern).fill_null(False))
            kind = column_kind(name)
            pairs = self.ids if kind == "id" else self.orders if kind == "order" else None
            if not pairs:
                continue
            if source_column is None or source_column == name:
                values = sorted({i for _, i in pairs})
                conditions.append(column.isin(values).fill_null(False))
            else:
                keyed = sorted(f"{s}\x1f{i}" for s, i in pairs)
                joined = table[source_column].concat("\x1f", column)
                conditions.append(joined.isin(keyed).fill_null(False))
        if not conditions:
            return None
        return reduce(lambda a, b: a | b, conditions)


def literal_false() -> ir.BooleanValue:
    """A condition no row meets."""
    return ibis.literal(False)
