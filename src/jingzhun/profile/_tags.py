"""Custom tags: YAML definitions whose ``expression`` is one SQL expression, compiled to Ibis.

The expression is parsed by SQLGlot and compiled by walking its tree; only a whitelist of
node types is accepted (comparisons, AND / OR / NOT, arithmetic, IN, BETWEEN, IS [NOT] NULL,
CASE, IF, COALESCE, ABS, ROUND, LEAST, GREATEST, literals, profile columns and the event
aggregates below). Nothing is ever evaluated as Python or pasted into SQL text. Every node is
type-checked (boolean / number / string / date / timestamp), so a wrong definition fails when
it is loaded, with file, line and the problem.

Event aggregates, counted over the customer's events up to ``as_of``:

- ``count_events('type')``: events of that type; ``count_events('type', N)``: those of the last
  N days (age 0 to N - 1, where 0 is ``as_of`` itself). 0 when there are none.
- ``days_since_event('type')``: days from the last event of that type to ``as_of``; null
  when there was none.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from jingzhun.core import SpecError, SpecProblem
from jingzhun.core._yaml import LocatedYaml, load_yaml
from jingzhun.profile._columns import PROFILE_COLUMNS, Kind

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_IBIS_TYPES = {
    Kind.BOOLEAN: "boolean",
    Kind.NUMBER: "float64",
    Kind.STRING: "string",
    Kind.DATE: "date",
    Kind.TIMESTAMP: "timestamp",
}


class TagType(StrEnum):
    """What a custom tag holds."""

    BOOLEAN = "boolean"
    NUMBER = "number"
    STRING = "string"


@dataclass(frozen=True)
class TagSpec:
    """A custom tag as written: name, type, SQL expression; where it came from, if a file."""

    name: str
    type: TagType
    expression: str
    description: str = ""
    file: Path | None = None
    line: int | None = None  # line of ``expression`` in ``file``

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", TagType(self.type))


class EventFunction(StrEnum):
    """The event aggregates a tag expression may call."""

    COUNT_EVENTS = "count_events"
    DAYS_SINCE_EVENT = "days_since_event"


@dataclass(frozen=True)
class EventAggregate:
    """One event aggregate a tag needs, computed per customer before the tags."""

    function: EventFunction
    event_type: str
    days: int | None = None

    @property
    def column(self) -> str:
        """A column name for the aggregate that no profile column or tag can take."""
        digest = hashlib.sha256(self.event_type.encode()).hexdigest()[:10]
        window = "all" if self.days is None else str(self.days)
        return f"_jz_{self.function.value}_{digest}_{window}"


Env = Callable[[str], ir.Value]


@dataclass(frozen=True)
class _Typed:
    kind: Kind | None  # None: the NULL literal, which fits any kind
    build: Callable[[Env], ir.Value]


@dataclass(frozen=True)
class CompiledTag:
    """A checked tag: its kind, the event aggregates it reads, and its Ibis builder."""

    spec: TagSpec
    kind: Kind
    aggregates: tuple[EventAggregate, ...]
    _build: Callable[[Env], ir.Value] = field(repr=False)

    def build(self, env: Env) -> ir.Value:
        """The tag's Ibis expression over the columns ``env`` names, in its stored type."""
        value = self._build(env)
        return value.cast(_IBIS_TYPES[self.kind])


class _Problem(Exception):
    """A problem in one expression, turned into a SpecProblem by the caller."""


def _kind_name(kind: Kind | None) -> str:
    return "NULL" if kind is None else kind.value


def _did_you_mean(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


_SUPPORTED = (
    "comparisons (= <> < <= > >=), AND, OR, NOT, + - * / %, IN (...), BETWEEN, "
    "IS [NOT] NULL, CASE WHEN, IF, COALESCE, ABS, ROUND, LEAST, GREATEST, literals, "
    "profile columns, count_events('type'[, days]), days_since_event('type')"
)


class _Compiler:
    """Walks one SQLGlot tree into a typed Ibis builder."""

    def __init__(self, columns: Mapping[str, Kind]) -> None:
        self.columns = columns
        self.aggregates: dict[str, EventAggregate] = {}

    # -- entry -------------------------------------------------------------------------
    def compile(self, node: exp.Expr) -> _Typed:
        handler = self._HANDLERS.get(type(node))
        if handler is not None:
            return handler(self, node)
        if isinstance(node, exp.Query | exp.Command | exp.Block | exp.DDL | exp.DML):
            raise _Problem("must be one expression over profile columns, not a statement or query")
        if isinstance(node, exp.Func):
            name = node.sql_name() if not isinstance(node, exp.Anonymous) else node.name
            raise _Problem(
                f"unsupported function '{name}' in '{node.sql()}'; functions allowed: "
                "COALESCE, ABS, ROUND, LEAST, GREATEST, IF, count_events, days_since_event"
            )
        raise _Problem(f"unsupported syntax '{node.sql()}'; allowed: {_SUPPORTED}")

    # -- helpers -----------------------------------------------------------------------
    def _expect(self, typed: _Typed, kind: Kind, node: exp.Expr, role: str) -> None:
        if typed.kind is not None and typed.kind is not kind:
            raise _Problem(
                f"type mismatch: {role} '{node.sql()}' is {_kind_name(typed.kind)}, "
                f"expected {kind.value}"
            )

    def _common(self, parts: Sequence[tuple[exp.Expr, _Typed]], what: str) -> Kind | None:
        kinds = {t.kind for _, t in parts if t.kind is not None}
        if len(kinds) > 1:
            described = ", ".join(f"'{n.sql()}' is {_kind_name(t.kind)}" for n, t in parts)
            raise _Problem(f"type mismatch in {what}: {described}")
        return kinds.pop() if kinds else None

    @staticmethod
    def _value(typed: _Typed, kind: Kind | None, env: Env) -> ir.Value:
        if typed.kind is None:
            return ibis.null(_IBIS_TYPES[kind or Kind.STRING])
        return typed.build(env)

    def _coerce_literal(self, node: exp.Expr, typed: _Typed, kind: Kind | None) -> _Typed:
        """A string literal compared with a date or timestamp becomes one ('2024-01-31')."""
        if kind not in (Kind.DATE, Kind.TIMESTAMP) or typed.kind is not Kind.STRING:
            return typed
        if not (isinstance(node, exp.Literal) and node.is_string):
            return typed
        return self._temporal_literal(node.this, kind)

    @staticmethod
    def _temporal_literal(text: str, kind: Kind) -> _Typed:
        try:
            if kind is Kind.DATE:
                day = dt.date.fromisoformat(text)
                return _Typed(kind, lambda env: ibis.literal(day, type="date"))
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise _Problem(f"'{text}' is not an ISO {kind.value} (like 2024-01-31)") from None
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
        return _Typed(kind, lambda env: ibis.literal(moment, type="timestamp"))

    # -- leaves --------------------------------------------------------------------------
    def _column(self, node: exp.Column) -> _Typed:
        if node.table:
            raise _Problem(f"'{node.sql()}': name profile columns without a table prefix")
        name = node.name.lower()
        kind = self.columns.get(name)
        if kind is None:
            known = sorted(self.columns)
            raise _Problem(f"unknown column '{node.name}'{_did_you_mean(name, known)}")
        return _Typed(kind, lambda env: env(name))

    def _literal(self, node: exp.Literal) -> _Typed:
        if node.is_string:
            text = node.this
            return _Typed(Kind.STRING, lambda env: ibis.literal(text, type="string"))
        number: int | float
        try:
            number = int(node.this)
        except ValueError:
            number = float(node.this)
        literal_type = "int64" if isinstance(number, int) else "float64"
        return _Typed(Kind.NUMBER, lambda env: ibis.literal(number, type=literal_type))

    def _boolean(self, node: exp.Boolean) -> _Typed:
        value = bool(node.this)
        return _Typed(Kind.BOOLEAN, lambda env: ibis.literal(value, type="boolean"))

    def _null(self, node: exp.Null) -> _Typed:
        return _Typed(None, lambda env: ibis.null())

    def _cast(self, node: exp.Cast) -> _Typed:
        target = node.to.this
        literal = node.this
        if isinstance(literal, exp.Literal) and literal.is_string:
            if target == exp.DataType.Type.DATE:
                return self._temporal_literal(literal.this, Kind.DATE)
            if target in (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ):
                return self._temporal_literal(literal.this, Kind.TIMESTAMP)
        raise _Problem(
            f"unsupported cast '{node.sql()}'; only DATE '...' and TIMESTAMP '...' literals"
        )

    # -- logic -----------------------------------------------------------------------------
    def _paren(self, node: exp.Paren) -> _Typed:
        return self.compile(node.this)

    def _bool_binary(self, node: exp.Binary) -> _Typed:
        left, right = self.compile(node.left), self.compile(node.right)
        word = "AND" if isinstance(node, exp.And) else "OR"
        self._expect(left, Kind.BOOLEAN, node.left, f"{word} operand")
        self._expect(right, Kind.BOOLEAN, node.right, f"{word} operand")

        def build(env: Env) -> ir.Value:
            a = self._value(left, Kind.BOOLEAN, env)
            b = self._value(right, Kind.BOOLEAN, env)
            return a & b if word == "AND" else a | b

        return _Typed(Kind.BOOLEAN, build)

    def _not(self, node: exp.Not) -> _Typed:
        inner = self.compile(node.this)
        self._expect(inner, Kind.BOOLEAN, node.this, "NOT operand")
        return _Typed(Kind.BOOLEAN, lambda env: ~self._value(inner, Kind.BOOLEAN, env))

    def _is(self, node: exp.Is) -> _Typed:
        if not isinstance(node.expression, exp.Null):
            raise _Problem(f"'{node.sql()}': only IS NULL and IS NOT NULL are supported")
        inner = self.compile(node.this)
        if inner.kind is None:
            raise _Problem(f"'{node.sql()}' is always true")
        return _Typed(Kind.BOOLEAN, lambda env: inner.build(env).isnull())

    _COMPARE: ClassVar[dict[type[exp.Expr], Callable[[Any, Any], Any]]] = {
        exp.EQ: lambda a, b: a == b,
        exp.NEQ: lambda a, b: a != b,
        exp.GT: lambda a, b: a > b,
        exp.GTE: lambda a, b: a >= b,
        exp.LT: lambda a, b: a < b,
        exp.LTE: lambda a, b: a <= b,
    }

    def _compare(self, node: exp.Binary) -> _Typed:
        left, right = self.compile(node.left), self.compile(node.right)
        if left.kind is None or right.kind is None:
            raise _Problem(f"'{node.sql()}' compares with NULL; use IS NULL or IS NOT NULL")
        left = self._coerce_literal(node.left, left, right.kind)
        right = self._coerce_literal(node.right, right, left.kind)
        kind = self._common([(node.left, left), (node.right, right)], f"'{node.sql()}'")
        if kind is Kind.BOOLEAN and not isinstance(node, exp.EQ | exp.NEQ):
            raise _Problem(f"'{node.sql()}': booleans can only be compared with = or <>")
        op = self._COMPARE[type(node)]
        return _Typed(Kind.BOOLEAN, lambda env: op(left.build(env), right.build(env)))

    # -- arithmetic -------------------------------------------------------------------------
    _ARITHMETIC: ClassVar[dict[type[exp.Expr], Callable[[Any, Any], Any]]] = {
        exp.Add: lambda a, b: a + b,
        exp.Sub: lambda a, b: a - b,
        exp.Mul: lambda a, b: a * b,
        exp.Div: lambda a, b: a / b,
        exp.Mod: lambda a, b: a % b,
    }

    def _arithmetic(self, node: exp.Binary) -> _Typed:
        left, right = self.compile(node.left), self.compile(node.right)
        self._expect(left, Kind.NUMBER, node.left, "operand")
        self._expect(right, Kind.NUMBER, node.right, "operand")
        op = self._ARITHMETIC[type(node)]

        def build(env: Env) -> ir.Value:
            a = self._value(left, Kind.NUMBER, env)
            b = self._value(right, Kind.NUMBER, env)
            return op(a, b)

        return _Typed(Kind.NUMBER, build)

    def _neg(self, node: exp.Neg) -> _Typed:
        inner = self.compile(node.this)
        self._expect(inner, Kind.NUMBER, node.this, "operand of -")
        return _Typed(Kind.NUMBER, lambda env: -self._value(inner, Kind.NUMBER, env))

    # -- sets and ranges -----------------------------------------------------------------
    def _in(self, node: exp.In) -> _Typed:
        if node.args.get("query") is not None or node.args.get("unnest") is not None:
            raise _Problem(f"'{node.sql()}': IN takes a list of values, not a query")
        subject = self.compile(node.this)
        items = [(item, self.compile(item)) for item in node.expressions]
        items = [(n, self._coerce_literal(n, t, subject.kind)) for n, t in items]
        kind = self._common([(node.this, subject), *items], f"'{node.sql()}'")

        def build(env: Env) -> ir.Value:
            values = [self._value(t, kind, env) for _, t in items]
            return self._value(subject, kind, env).isin(values)

        return _Typed(Kind.BOOLEAN, build)

    def _between(self, node: exp.Between) -> _Typed:
        subject = self.compile(node.this)
        low_node, high_node = node.args["low"], node.args["high"]
        low = self._coerce_literal(low_node, self.compile(low_node), subject.kind)
        high = self._coerce_literal(high_node, self.compile(high_node), subject.kind)
        kind = self._common(
            [(node.this, subject), (low_node, low), (high_node, high)], f"'{node.sql()}'"
        )

        def build(env: Env) -> ir.Value:
            value = self._value(subject, kind, env)
            return value.between(self._value(low, kind, env), self._value(high, kind, env))

        return _Typed(Kind.BOOLEAN, build)

    # -- conditionals ------------------------------------------------------------------------
    def _case(self, node: exp.Case) -> _Typed:
        if node.this is not None:
            raise _Problem(f"'{node.sql()}': write CASE WHEN condition THEN ... (searched CASE)")
        branches = []
        for branch in node.args.get("ifs") or []:
            condition = self.compile(branch.this)
            self._expect(condition, Kind.BOOLEAN, branch.this, "CASE WHEN condition")
            branches.append((branch.args["true"], condition, self.compile(branch.args["true"])))
        default_node = node.args.get("default")
        default = self.compile(default_node) if default_node is not None else None
        results = [(n, t) for n, _, t in branches]
        if default is not None and default_node is not None:
            results.append((default_node, default))
        kind = self._common(results, "CASE results")

        def build(env: Env) -> ir.Value:
            pairs = [
                (self._value(c, Kind.BOOLEAN, env), self._value(t, kind, env))
                for _, c, t in branches
            ]
            otherwise = (
                self._value(default, kind, env)
                if default is not None
                else ibis.null(_IBIS_TYPES[kind or Kind.STRING])
            )
            return ibis.cases(*pairs, else_=otherwise)

        return _Typed(kind, build)

    def _if(self, node: exp.If) -> _Typed:
        condition = self.compile(node.this)
        self._expect(condition, Kind.BOOLEAN, node.this, "IF condition")
        then_node, else_node = node.args["true"], node.args.get("false")
        then = self.compile(then_node)
        otherwise = self.compile(else_node) if else_node is not None else _Typed(None, _nothing)
        parts = [(then_node, then)]
        if else_node is not None:
            parts.append((else_node, otherwise))
        kind = self._common(parts, "IF results")

        def build(env: Env) -> ir.Value:
            return ibis.cases(
                (self._value(condition, Kind.BOOLEAN, env), self._value(then, kind, env)),
                else_=self._value(otherwise, kind, env),
            )

        return _Typed(kind, build)

    def _variadic(self, node: exp.Func, name: str, numeric: bool) -> _Typed:
        args = [node.this, *node.expressions] if node.this is not None else node.expressions
        parts = [(a, self.compile(a)) for a in args]
        if len(parts) < 2 and name != "COALESCE":
            raise _Problem(f"{name} needs at least two values")
        if numeric:
            for a, t in parts:
                self._expect(t, Kind.NUMBER, a, f"{name} argument")
        kind = self._common(parts, name)

        def build(env: Env) -> ir.Value:
            values = [self._value(t, kind, env) for _, t in parts]
            if name == "COALESCE":
                return ibis.coalesce(*values)
            if name == "LEAST":
                return ibis.least(*values)
            return ibis.greatest(*values)

        return _Typed(kind, build)

    def _coalesce(self, node: exp.Coalesce) -> _Typed:
        return self._variadic(node, "COALESCE", numeric=False)

    def _least(self, node: exp.Least) -> _Typed:
        return self._variadic(node, "LEAST", numeric=True)

    def _greatest(self, node: exp.Greatest) -> _Typed:
        return self._variadic(node, "GREATEST", numeric=True)

    def _abs(self, node: exp.Abs) -> _Typed:
        inner = self.compile(node.this)
        self._expect(inner, Kind.NUMBER, node.this, "ABS argument")
        return _Typed(Kind.NUMBER, lambda env: self._value(inner, Kind.NUMBER, env).abs())

    def _round(self, node: exp.Round) -> _Typed:
        inner = self.compile(node.this)
        self._expect(inner, Kind.NUMBER, node.this, "ROUND argument")
        digits_node = node.args.get("decimals")
        digits = 0
        if digits_node is not None:
            if not (isinstance(digits_node, exp.Literal) and not digits_node.is_string):
                raise _Problem(f"'{node.sql()}': ROUND's digits must be a whole number")
            try:
                digits = int(digits_node.this)
            except ValueError:
                raise _Problem(f"'{node.sql()}': ROUND's digits must be a whole number") from None
        return _Typed(
            Kind.NUMBER,
            lambda env: self._value(inner, Kind.NUMBER, env).cast("float64").round(digits),
        )

    # -- event aggregates --------------------------------------------------------------------
    def _anonymous(self, node: exp.Anonymous) -> _Typed:
        name = str(node.name).lower()
        try:
            function = EventFunction(name)
        except ValueError:
            allowed = [f.value for f in EventFunction]
            raise _Problem(
                f"unsupported function '{node.name}'{_did_you_mean(name, allowed)}; "
                "functions allowed: COALESCE, ABS, ROUND, LEAST, GREATEST, IF, "
                "count_events('type'[, days]), days_since_event('type')"
            ) from None
        args = node.expressions
        max_args = 2 if function is EventFunction.COUNT_EVENTS else 1
        if not 1 <= len(args) <= max_args:
            usage = (
                "count_events('event_type') or count_events('event_type', days)"
                if function is EventFunction.COUNT_EVENTS
                else "days_since_event('event_type')"
            )
            raise _Problem(f"'{node.sql()}': call it as {usage}")
        kind_arg = args[0]
        if not (isinstance(kind_arg, exp.Literal) and kind_arg.is_string):
            raise _Problem(f"'{node.sql()}': the event type must be a quoted text like 'page'")
        days: int | None = None
        if len(args) == 2:
            days_arg = args[1]
            try:
                if not isinstance(days_arg, exp.Literal) or days_arg.is_string:
                    raise ValueError
                days = int(days_arg.this)
                if days < 1:
                    raise ValueError
            except ValueError:
                raise _Problem(
                    f"'{node.sql()}': the number of days must be a whole number of at least 1"
                ) from None
        aggregate = EventAggregate(function, str(kind_arg.this), days)
        self.aggregates[aggregate.column] = aggregate
        column = aggregate.column
        return _Typed(Kind.NUMBER, lambda env: env(column))

    _HANDLERS: ClassVar[dict[type[exp.Expr], Callable[[_Compiler, Any], _Typed]]] = {
        exp.Column: _column,
        exp.Literal: _literal,
        exp.Boolean: _boolean,
        exp.Null: _null,
        exp.Cast: _cast,
        exp.Paren: _paren,
        exp.And: _bool_binary,
        exp.Or: _bool_binary,
        exp.Not: _not,
        exp.Is: _is,
        exp.EQ: _compare,
        exp.NEQ: _compare,
        exp.GT: _compare,
        exp.GTE: _compare,
        exp.LT: _compare,
        exp.LTE: _compare,
        exp.Add: _arithmetic,
        exp.Sub: _arithmetic,
        exp.Mul: _arithmetic,
        exp.Div: _arithmetic,
        exp.Mod: _arithmetic,
        exp.Neg: _neg,
        exp.In: _in,
        exp.Between: _between,
        exp.Case: _case,
        exp.If: _if,
        exp.Coalesce: _coalesce,
        exp.Least: _least,
        exp.Greatest: _greatest,
        exp.Abs: _abs,
        exp.Round: _round,
        exp.Anonymous: _anonymous,
    }


def _nothing(env: Env) -> ir.Value:
    return ibis.null()


PROFILE_KINDS: dict[str, Kind] = {c.name: c.kind for c in PROFILE_COLUMNS}
_TAG_KINDS = {
    TagType.BOOLEAN: Kind.BOOLEAN,
    TagType.NUMBER: Kind.NUMBER,
    TagType.STRING: Kind.STRING,
}


def _problem(spec: TagSpec, field_name: str, message: str) -> SpecProblem:
    return SpecProblem(spec.file or Path("<tag>"), spec.line, field_name, message)


def compile_tag(spec: TagSpec, columns: Mapping[str, Kind] | None = None) -> CompiledTag:
    """Parse and type-check one tag; a problem raises ``SpecError`` with file and line."""
    known = dict(PROFILE_KINDS if columns is None else columns)
    where = f"tag '{spec.name}'"
    try:
        tree = sqlglot.parse_one(spec.expression, read="duckdb")
    except (ParseError, TokenError) as exc:
        detail = str(exc).splitlines()[0]
        errors = getattr(exc, "errors", None)
        if errors:
            first = errors[0]
            detail = f"{first.get('description')} (column {first.get('col')} of the expression)"
        raise SpecError(
            [_problem(spec, "expression", f"{where}: cannot parse the expression: {detail}")]
        ) from None
    compiler = _Compiler(known)
    try:
        typed = compiler.compile(tree)
    except _Problem as exc:
        raise SpecError([_problem(spec, "expression", f"{where}: {exc}")]) from None
    expected = _TAG_KINDS[spec.type]
    if typed.kind is not None and typed.kind is not expected:
        raise SpecError(
            [
                _problem(
                    spec,
                    "type",
                    f"{where}: type mismatch: the tag is declared {spec.type.value} but the "
                    f"expression gives a {typed.kind.value}",
                )
            ]
        )

    def build(env: Env) -> ir.Value:
        if typed.kind is None:
            return ibis.null(_IBIS_TYPES[expected])
        return typed.build(env)

    return CompiledTag(spec, expected, tuple(compiler.aggregates.values()), build)


# -- YAML files ------------------------------------------------------------------------------
_FIELDS = ("name", "description", "type", "expression")


def _spec_from(
    doc: LocatedYaml, entry: Any, loc: tuple[str | int, ...], problems: list[SpecProblem]
) -> TagSpec | None:
    path = doc.path
    if not isinstance(entry, dict):
        problems.append(
            SpecProblem(path, doc.line_of(loc), "", "a tag must be a mapping of field: value")
        )
        return None
    found = len(problems)
    for key in entry:
        if key not in _FIELDS:
            problems.append(
                SpecProblem(
                    path,
                    doc.line_of((*loc, key)),
                    str(key),
                    f"is not a tag field{_did_you_mean(str(key), _FIELDS)}; fields: "
                    + ", ".join(_FIELDS),
                )
            )
    for key in ("name", "type", "expression"):
        if key not in entry:
            problems.append(SpecProblem(path, doc.line_of(loc), key, "is required"))
    name, kind, text = entry.get("name"), entry.get("type"), entry.get("expression")
    description = entry.get("description", "")
    if name is not None and not (isinstance(name, str) and _NAME.match(name)):
        problems.append(
            SpecProblem(
                path,
                doc.line_of((*loc, "name")),
                "name",
                "must be lower-case letters, digits and _ , starting with a letter",
            )
        )
    elif isinstance(name, str) and (name in PROFILE_KINDS or name.startswith("_")):
        problems.append(
            SpecProblem(
                path,
                doc.line_of((*loc, "name")),
                "name",
                f"'{name}' is a profile column already; choose another name",
            )
        )
    if kind is not None and kind not in [t.value for t in TagType]:
        problems.append(
            SpecProblem(
                path,
                doc.line_of((*loc, "type")),
                "type",
                f"'{kind}' is not a tag type; use boolean, number or string",
            )
        )
    if text is not None and not (isinstance(text, str) and text.strip()):
        problems.append(
            SpecProblem(
                path,
                doc.line_of((*loc, "expression")),
                "expression",
                "must be a SQL expression written as text (quote it in YAML)",
            )
        )
    if description is not None and not isinstance(description, str):
        problems.append(
            SpecProblem(path, doc.line_of((*loc, "description")), "description", "must be text")
        )
    if len(problems) > found:
        return None
    return TagSpec(
        name=str(name),
        type=TagType(str(kind)),
        expression=str(text).strip(),
        description=description or "",
        file=path,
        line=doc.line_of((*loc, "expression")),
    )


def load_tag_specs(folder: Path) -> list[TagSpec]:
    """Read and check every tag in ``folder/*.yml`` (files starting with ``_`` are not tags).

    A file holds one tag (a mapping) or a list of them. Each expression is parsed and
    type-checked against the profile columns now, so every problem of every file is
    reported at once as one ``SpecError`` (file, line, field, message).
    """
    if not folder.is_dir():
        return []
    files = sorted(
        p
        for p in [*folder.glob("*.yml"), *folder.glob("*.yaml")]
        if p.is_file() and not p.name.startswith("_")
    )
    problems: list[SpecProblem] = []
    specs: list[TagSpec] = []
    seen: dict[str, TagSpec] = {}
    for file in files:
        try:
            doc = load_yaml(file)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        entries: list[tuple[Any, tuple[str | int, ...]]]
        if isinstance(doc.data, list):
            entries = [(entry, (i,)) for i, entry in enumerate(doc.data)]
        elif doc.data == {}:
            continue
        else:
            entries = [(doc.data, ())]
        for entry, loc in entries:
            spec = _spec_from(doc, entry, loc, problems)
            if spec is None:
                continue
            if spec.name in seen:
                other = seen[spec.name]
                problems.append(
                    SpecProblem(
                        file,
                        doc.line_of((*loc, "name")),
                        "name",
                        f"tag '{spec.name}' is already defined in {other.file}",
                    )
                )
                continue
            try:
                compile_tag(spec)
            except SpecError as exc:
                problems.extend(exc.problems)
                continue
            seen[spec.name] = spec
            specs.append(spec)
    if problems:
        raise SpecError(problems)
    return specs


def check_tags(tags: Sequence[TagSpec]) -> list[CompiledTag]:
    """Compile tags given in Python; names must be new and unique."""
    problems: list[SpecProblem] = []
    compiled: list[CompiledTag] = []
    names: set[str] = set()
    for spec in tags:
        if not _NAME.match(spec.name) or spec.name in PROFILE_KINDS:
            problems.append(
                _problem(spec, "name", f"'{spec.name}' is not a free lower-case column name")
            )
            continue
        if spec.name in names:
            problems.append(_problem(spec, "name", f"tag '{spec.name}' is defined twice"))
            continue
        names.add(spec.name)
        try:
            compiled.append(compile_tag(spec))
        except SpecError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    return compiled
