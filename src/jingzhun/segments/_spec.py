"""What a marketer writes: a segment's rule as a tree of predicates (``SegmentSpec``).

The same structure arrives as YAML (``segments/*.yml``) or as JSON over the API. Parsing
checks the shape only; names (fields, events, segments) are checked against the warehouse
when the rule is compiled (``_compile.py``), so every problem names the file and line.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

import sqlglot
from sqlglot import exp

from jingzhun.core import SpecError, SpecProblem
from jingzhun.core._yaml import LocatedYaml, load_yaml

Location = tuple[str | int, ...]
Scalar: TypeAlias = bool | int | float | str | dt.date | None

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class PredicateKind(StrEnum):
    """Every kind of node a rule can hold (the key that introduces it in YAML)."""

    ALL = "all"
    ANY = "any"
    NOT = "not"
    FIELD = "field"
    EVENT = "event"
    SEGMENT = "segment"
    SAMPLE = "sample"
    ANNIVERSARY = "anniversary"
    CLUSTER = "cluster"
    LOOKALIKE = "lookalike"


class Op(StrEnum):
    """Comparison operators of field and measure conditions."""

    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    IN = "in"
    NOT_IN = "not in"
    BETWEEN = "between"
    CONTAINS = "contains"
    IS_NULL = "is null"
    NOT_NULL = "is not null"


OP_ALIASES: dict[str, Op] = {
    "==": Op.EQ,
    "<>": Op.NE,
    "not_in": Op.NOT_IN,
    "is_null": Op.IS_NULL,
    "is_not_null": Op.NOT_NULL,
    "not null": Op.NOT_NULL,
}
NO_VALUE = frozenset({Op.IS_NULL, Op.NOT_NULL})
LIST_VALUE = frozenset({Op.IN, Op.NOT_IN})


class Measure(StrEnum):
    """What an event condition measures over the matching events in its window."""

    COUNT = "count"
    SUM = "sum"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    FIRST = "first"
    LAST = "last"


VALUE_MEASURES = frozenset({Measure.SUM, Measure.AVG, Measure.MIN, Measure.MAX})
TIME_MEASURES = frozenset({Measure.FIRST, Measure.LAST})
BOUNDS: dict[str, Op] = {"at_least": Op.GE, "at_most": Op.LE, "exactly": Op.EQ}


@dataclass(frozen=True)
class Window:
    """Days counted back from ``as_of`` (``within: 30d`` = the last 30 days, as_of included),
    or calendar dates (``between: [2024-01-01, 2024-03-31]``, both included).
    """

    days: int | None = None
    months: int | None = None
    start: dt.date | None = None
    end: dt.date | None = None

    def text(self) -> str:
        """The window as the marketer wrote it."""
        if self.days is not None:
            return f"within {self.days}d"
        if self.months is not None:
            return f"within {self.months} month(s)"
        return f"between {self.start} and {self.end}"

    def bounds(self, as_of: dt.date) -> tuple[dt.date, dt.date]:
        """First and last day of the window, for a build on ``as_of``."""
        if self.days is not None:
            return as_of - dt.timedelta(days=self.days - 1), as_of
        if self.months is not None:
            return months_back(as_of, self.months) + dt.timedelta(days=1), as_of
        assert self.start is not None and self.end is not None
        return self.start, min(self.end, as_of)


def months_back(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    last = (dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last))


@dataclass(frozen=True)
class Node:
    """Base of every rule node: where it was written (for errors and explanations)."""

    path: str
    line: int | None

    kind: ClassVar[PredicateKind]

    def text(self) -> str:
        """The node in the marketer's words."""
        raise NotImplementedError


@dataclass(frozen=True)
class AllOf(Node):
    """Every rule holds (set intersection)."""

    rules: tuple[Node, ...] = ()

    kind: ClassVar[PredicateKind] = PredicateKind.ALL

    def text(self) -> str:
        return f"all of {len(self.rules)}"


@dataclass(frozen=True)
class AnyOf(Node):
    """At least one rule holds (set union)."""

    rules: tuple[Node, ...] = ()

    kind: ClassVar[PredicateKind] = PredicateKind.ANY

    def text(self) -> str:
        return f"any of {len(self.rules)}"


@dataclass(frozen=True)
class NotOf(Node):
    """The rule does not hold (complement within the known customers)."""

    rule: Node | None = None

    kind: ClassVar[PredicateKind] = PredicateKind.NOT

    def text(self) -> str:
        return "not"


def _value_text(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_value_text(v) for v in value) + ")"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Condition:
    """``field op value``: on a profile column, a tag, a score, or an event property."""

    field: str
    op: Op
    value: Any = None

    def text(self) -> str:
        """``frequency >= 2``."""
        if self.op in NO_VALUE:
            return f"{self.field} {self.op.value}"
        if self.op is Op.BETWEEN:
            low, high = self.value
            return f"{self.field} between {_value_text(low)} and {_value_text(high)}"
        return f"{self.field} {self.op.value} {_value_text(self.value)}"


@dataclass(frozen=True)
class FieldPredicate(Node):
    """A condition on one value per customer: a profile column, tag or model score."""

    condition: Condition = field(default_factory=lambda: Condition("", Op.EQ))

    kind: ClassVar[PredicateKind] = PredicateKind.FIELD

    def text(self) -> str:
        return self.condition.text()


@dataclass(frozen=True)
class EventPredicate(Node):
    """Behaviour: events of a type (with property filters) in a window, measured and compared.

    ``did_not`` is the same as ``count = 0``. Without a measure the predicate holds when the
    customer did the event at least once in the window.
    """

    event: str = ""
    where: tuple[Condition, ...] = ()
    window: Window | None = None
    measure: Measure = Measure.COUNT
    of: str | None = None  # the property a sum, avg, min or max is taken of
    compare: Condition | None = None  # field is the measure's name

    kind: ClassVar[PredicateKind] = PredicateKind.EVENT

    def text(self) -> str:
        parts = [f"event {self.event}"]
        if self.where:
            parts.append("where " + " and ".join(c.text() for c in self.where))
        if self.window is not None:
            parts.append(self.window.text())
        text = " ".join(parts)
        if self.compare is not None:
            text += ": " + self.compare.text()
        return text


@dataclass(frozen=True)
class SegmentPredicate(Node):
    """Membership of another segment (evaluated first; cycles are rejected)."""

    segment: str = ""

    kind: ClassVar[PredicateKind] = PredicateKind.SEGMENT

    def text(self) -> str:
        return f"in segment {self.segment}"


@dataclass(frozen=True)
class SamplePredicate(Node):
    """A seeded random bucket, stable per customer: the same customers every build."""

    percent: float = 100.0
    seed: int = 0

    kind: ClassVar[PredicateKind] = PredicateKind.SAMPLE

    def text(self) -> str:
        return f"sample {self.percent:g}% (seed {self.seed})"


@dataclass(frozen=True)
class AnniversaryPredicate(Node):
    """A date column's anniversary (month and day) falls in the next ``days`` days."""

    column: str = "birth_date"
    days: int = 7

    kind: ClassVar[PredicateKind] = PredicateKind.ANNIVERSARY

    def text(self) -> str:
        return f"{self.column} anniversary within {self.days}d"


@dataclass(frozen=True)
class ClusterPredicate(Node):
    """Membership of one cluster of a saved cluster set (table ``clusters``)."""

    cluster_set: str = ""
    cluster: int = 0

    kind: ClassVar[PredicateKind] = PredicateKind.CLUSTER

    def text(self) -> str:
        return f"in cluster {self.cluster} of {self.cluster_set}"


@dataclass(frozen=True)
class LookalikePredicate(Node):
    """Among the top N look-alikes of a seed segment (table ``lookalike_scores``)."""

    seed: str = ""
    top: int = 0

    kind: ClassVar[PredicateKind] = PredicateKind.LOOKALIKE

    def text(self) -> str:
        return f"top {self.top} look-alikes of {self.seed}"


@dataclass(frozen=True)
class SegmentSpec:
    """One segment as written: a name, a description and its rule."""

    name: str
    rule: Node
    description: str = ""
    file: Path | None = None
    line: int | None = None

    def dependencies(self) -> set[str]:
        """Segments this one's rule refers to (directly)."""
        found: set[str] = set()
        for node in walk(self.rule):
            if isinstance(node, SegmentPredicate):
                found.add(node.segment)
            if isinstance(node, LookalikePredicate):
                found.add(node.seed)
        return found


def walk(node: Node) -> list[Node]:
    """Every node of a rule, depth first, parents before children."""
    out = [node]
    if isinstance(node, AllOf | AnyOf):
        for child in node.rules:
            out.extend(walk(child))
    elif isinstance(node, NotOf) and node.rule is not None:
        out.extend(walk(node.rule))
    return out


# --- parsing ----------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+)\s*(d|day|days|w|week|weeks|m|mo|month|months|y|year|years)\s*$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_KINDS_TEXT = (
    "all, any, not, field (or a condition such as 'frequency >= 2'), event, segment, "
    "sample, anniversary (or birthday), cluster, lookalike"
)


class _Parser:
    """Turns the YAML/JSON structure into nodes, collecting every problem."""

    def __init__(self, file: Path, located: LocatedYaml | None, base: Location) -> None:
        self.file = file
        self.located = located
        self.base = base
        self.problems: list[SpecProblem] = []

    def line(self, loc: Location) -> int | None:
        return self.located.line_of(loc) if self.located is not None else None

    def problem(self, loc: Location, message: str) -> None:
        self.problems.append(SpecProblem(self.file, self.line(loc), _path(loc), message))

    def rule(self, data: Any, loc: Location) -> Node | None:
        path, line = _path(loc), self.line(loc)
        if isinstance(data, str):
            return self.rule_text(data, loc)
        if not isinstance(data, Mapping):
            self.problem(loc, f"a rule must be a mapping or a condition text, not {data!r}")
            return None
        if "all" in data or "any" in data:
            key = "all" if "all" in data else "any"
            self._only(data, {key}, loc)
            items = data[key]
            if not isinstance(items, list) or not items:
                self.problem((*loc, key), f"'{key}' takes a non-empty list of rules")
                return None
            children = [self.rule(item, (*loc, key, i)) for i, item in enumerate(items)]
            rules = tuple(c for c in children if c is not None)
            return (AllOf if key == "all" else AnyOf)(path, line, rules)
        if "not" in data:
            self._only(data, {"not"}, loc)
            child = self.rule(data["not"], (*loc, "not"))
            return NotOf(path, line, child)
        if "field" in data or "tag" in data or "attribute" in data or "score" in data:
            return self.field_predicate(data, loc)
        if "event" in data:
            return self.event(data, loc)
        if "segment" in data:
            self._only(data, {"segment"}, loc)
            name = data["segment"]
            if not isinstance(name, str) or not NAME.match(name):
                self.problem((*loc, "segment"), f"'{name}' is not a segment name")
                return None
            return SegmentPredicate(path, line, name)
        if "sample" in data:
            return self.sample(data, loc)
        if "anniversary" in data or "birthday" in data:
            return self.anniversary(data, loc)
        if "cluster" in data:
            return self.cluster(data, loc)
        if "lookalike" in data:
            return self.lookalike(data, loc)
        keys = ", ".join(str(k) for k in data)
        self.problem(loc, f"unknown rule ({keys}); a rule is one of: {_KINDS_TEXT}")
        return None

    def _only(self, data: Mapping[str, Any], allowed: set[str], loc: Location) -> None:
        for key in data:
            if key not in allowed:
                allowed_text = ", ".join(sorted(allowed))
                self.problem((*loc, key), f"unexpected key '{key}' here; allowed: {allowed_text}")

    # conditions ------------------------------------------------------------------------

    def op(self, raw: Any, loc: Location) -> Op | None:
        text = str(raw).strip().lower() if raw is not None else ""
        text = re.sub(r"\s+", " ", text)
        if text in OP_ALIASES:
            return OP_ALIASES[text]
        try:
            return Op(text)
        except ValueError:
            allowed = ", ".join(o.value for o in Op)
            self.problem(loc, f"unknown operator '{raw}'; allowed: {allowed}")
            return None

    def condition(self, name: str, op: Op, value: Any, loc: Location) -> Condition | None:
        if op in NO_VALUE:
            return Condition(name, op, None)
        if op in LIST_VALUE:
            if not isinstance(value, list) or not value:
                self.problem(loc, f"'{op.value}' takes a non-empty list of values")
                return None
            return Condition(name, op, tuple(value))
        if op is Op.BETWEEN:
            if not isinstance(value, list) or len(value) != 2:
                self.problem(loc, "'between' takes a list of two values [low, high]")
                return None
            low, high = value
            if _comparable(low, high) and low > high:
                self.problem(loc, f"'between' low {low!r} is above high {high!r}")
                return None
            return Condition(name, op, (low, high))
        if value is None:
            self.problem(loc, f"'{op.value}' needs a value (use 'is null' to test for none)")
            return None
        if isinstance(value, list | dict):
            self.problem(loc, f"'{op.value}' compares with one value, not {value!r}")
            return None
        if op is Op.CONTAINS and not isinstance(value, str):
            self.problem(loc, "'contains' looks for a text inside a text value")
            return None
        return Condition(name, op, value)

    def field_predicate(self, data: Mapping[str, Any], loc: Location) -> Node | None:
        key = next(k for k in ("field", "tag", "attribute", "score") if k in data)
        self._only(data, {key, "op", "value"}, loc)
        name = data[key]
        if not isinstance(name, str) or not name:
            self.problem((*loc, key), f"'{key}' names a profile column, tag or score")
            return None
        op = self.op(data.get("op", "="), (*loc, "op"))
        if op is None:
            return None
        condition = self.condition(name, op, data.get("value"), (*loc, "value"))
        if condition is None:
            return None
        return FieldPredicate(_path(loc), self.line(loc), condition)

    def _parsed(self, text: str, loc: Location) -> exp.Expr | None:
        """SQLGlot's tree of a condition written as text; a problem (never an exception) when
        it cannot be read — unknown characters such as ``$`` included (a tokenizer error).
        """
        try:
            return sqlglot.parse_one(text, dialect="duckdb")
        except sqlglot.errors.ParseError as exc:
            first = exc.errors[0]["description"] if exc.errors else str(exc)
        except sqlglot.errors.SqlglotError:
            first = "it holds characters a condition cannot have"
        self.problem(loc, f"cannot read the condition '{text}': {first}")
        return None

    def condition_text(self, text: str, loc: Location) -> Condition | None:
        """``frequency >= 2``, ``city NOT IN ('Shanghai')``, ``email IS NOT NULL``:
        parsed by SQLGlot, never evaluated.
        """
        tree = self._parsed(text, loc)
        if tree is None:
            return None
        condition = _condition_from_tree(tree) if isinstance(tree, exp.Expression) else None
        if condition is None:
            self.problem(
                loc,
                f"'{text}' is not a condition on one field; write 'field op value' with op one "
                "of = != < <= > >= IN (...) NOT IN (...) BETWEEN a AND b IS [NOT] NULL, or "
                "CONTAINS(field, 'text')",
            )
        return condition

    def rule_text(self, text: str, loc: Location) -> Node | None:
        """A rule written as text: conditions joined by AND / OR / NOT and parentheses."""
        tree = self._parsed(text, loc)
        if tree is None:
            return None
        path, line = _path(loc), self.line(loc)

        def convert(node: exp.Expression) -> Node | None:
            if isinstance(node, exp.Paren):
                return convert(node.this)
            if isinstance(node, exp.And | exp.Or):
                left, right = convert(node.this), convert(node.expression)
                if left is None or right is None:
                    return None
                cls = AllOf if isinstance(node, exp.And) else AnyOf
                parts: list[Node] = []
                for part in (left, right):
                    parts.extend(part.rules if isinstance(part, cls) else [part])
                return cls(path, line, tuple(parts))
            condition = _condition_from_tree(node)
            if condition is not None:
                return FieldPredicate(path, line, condition)
            if isinstance(node, exp.Not):
                inner = convert(node.this)
                return None if inner is None else NotOf(path, line, inner)
            self.problem(
                loc,
                f"'{node.sql()}' in '{text}' is not a condition on one field; write 'field op "
                "value' with op one of = != < <= > >= IN (...) NOT IN (...) BETWEEN a AND b "
                "IS [NOT] NULL, or CONTAINS(field, 'text'), joined by AND, OR, NOT",
            )
            return None

        return convert(tree) if isinstance(tree, exp.Expression) else None

    def where(self, data: Any, loc: Location) -> tuple[Condition, ...]:
        out: list[Condition] = []
        if isinstance(data, Mapping):
            for key, value in data.items():
                item_loc = (*loc, key)
                if isinstance(value, list):
                    condition = self.condition(str(key), Op.IN, value, item_loc)
                else:
                    condition = self.condition(str(key), Op.EQ, value, item_loc)
                if condition is not None:
                    out.append(condition)
            return tuple(out)
        if isinstance(data, list):
            for i, item in enumerate(data):
                item_loc = (*loc, i)
                if isinstance(item, str):
                    condition = self.condition_text(item, item_loc)
                elif isinstance(item, Mapping) and "field" in item:
                    op = self.op(item.get("op", "="), (*item_loc, "op"))
                    condition = (
                        None
                        if op is None
                        else self.condition(str(item["field"]), op, item.get("value"), item_loc)
                    )
                else:
                    self.problem(item_loc, "a property filter is 'name op value' text or a field")
                    condition = None
                if condition is not None:
                    out.append(condition)
            return tuple(out)
        self.problem(loc, "'where' takes a mapping {property: value} or a list of conditions")
        return ()

    # behaviour ---------------------------------------------------------------------------

    def window(self, data: Mapping[str, Any], loc: Location) -> Window | None:
        if "within" in data and "between" in data:
            self.problem(loc, "give either 'within' or 'between', not both")
            return None
        if "within" in data:
            return self.duration_window(data["within"], (*loc, "within"))
        if "between" in data:
            raw = data["between"]
            if not isinstance(raw, list) or len(raw) != 2:
                self.problem((*loc, "between"), "'between' takes two dates [first, last]")
                return None
            start = self.date(raw[0], (*loc, "between", 0))
            end = self.date(raw[1], (*loc, "between", 1))
            if start is None or end is None:
                return None
            if end < start:
                self.problem((*loc, "between"), f"impossible window: {end} is before {start}")
                return None
            return Window(start=start, end=end)
        return None

    def duration_window(self, raw: Any, loc: Location) -> Window | None:
        days, months = self.duration(raw, loc)
        if days is None and months is None:
            return None
        return Window(days=days, months=months)

    def duration(self, raw: Any, loc: Location) -> tuple[int | None, int | None]:
        match = _DURATION.match(str(raw)) if raw is not None else None
        if match is None:
            self.problem(loc, f"'{raw}' is not a duration; write e.g. 30d, 12w, 6m (months) or 1y")
            return None, None
        n, unit = int(match.group(1)), match.group(2)[0]
        if match.group(2) in {"mo", "month", "months"}:
            unit = "m"
        if n <= 0:
            self.problem(loc, f"impossible window: '{raw}' covers no day; use at least 1d")
            return None, None
        if unit == "d":
            return n, None
        if unit == "w":
            return 7 * n, None
        if unit == "m":
            return None, n
        return None, 12 * n

    def date(self, raw: Any, loc: Location) -> dt.date | None:
        if isinstance(raw, dt.datetime):
            return raw.date()
        if isinstance(raw, dt.date):
            return raw
        try:
            return dt.date.fromisoformat(str(raw))
        except ValueError:
            self.problem(loc, f"'{raw}' is not a date; write YYYY-MM-DD, e.g. 2024-01-31")
            return None

    def event(self, data: Mapping[str, Any], loc: Location) -> Node | None:
        measures = [m.value for m in Measure]
        self._only(data, {"event", "where", "within", "between", "did_not", *measures}, loc)
        name = data["event"]
        if not isinstance(name, str) or not name.strip():
            self.problem((*loc, "event"), "'event' names an event type, e.g. order")
            return None
        where = self.where(data["where"], (*loc, "where")) if "where" in data else ()
        window = self.window(data, loc)
        given = [m for m in Measure if m.value in data]
        if len(given) > 1 or (given and data.get("did_not")):
            self.problem(loc, "an event rule measures one thing: count, sum, avg, min, max, ...")
            return None
        path, line = _path(loc), self.line(loc)
        if data.get("did_not"):
            if data["did_not"] is not True:
                self.problem((*loc, "did_not"), "'did_not' is true or left out")
                return None
            compare = Condition("count", Op.EQ, 0)
            return EventPredicate(
                path, line, name.strip(), where, window, Measure.COUNT, None, compare
            )
        if not given:
            compare = Condition("count", Op.GE, 1)
            return EventPredicate(
                path, line, name.strip(), where, window, Measure.COUNT, None, compare
            )
        measure = given[0]
        spec = data[measure.value]
        m_loc = (*loc, measure.value)
        if not isinstance(spec, Mapping):
            self.problem(m_loc, f"'{measure.value}' takes a mapping, e.g. {{at_least: 2}}")
            return None
        prop = None
        if measure in VALUE_MEASURES:
            prop = spec.get("of")
            if not isinstance(prop, str) or not prop:
                self.problem(m_loc, f"'{measure.value}' needs 'of: <property>', e.g. of: amount")
                return None
        measured = self.measure_compare(measure, spec, m_loc)
        if measured is None:
            return None
        return EventPredicate(path, line, name.strip(), where, window, measure, prop, measured)

    def measure_compare(
        self, measure: Measure, spec: Mapping[str, Any], loc: Location
    ) -> Condition | None:
        if measure in TIME_MEASURES:
            self._only(spec, {"within", "not_within", "before", "after"}, loc)
            if "within" in spec or "not_within" in spec:
                key = "within" if "within" in spec else "not_within"
                days, months = self.duration(spec[key], (*loc, key))
                if days is None and months is None:
                    return None
                span = ("days", days) if days is not None else ("months", months)
                return Condition(f"{measure.value}_{key}", Op.EQ, span)
            for key in ("before", "after"):
                if key in spec:
                    day = self.date(spec[key], (*loc, key))
                    if day is None:
                        return None
                    op = Op.LT if key == "before" else Op.GT
                    return Condition(f"{measure.value}_date", op, day)
            self.problem(loc, f"'{measure.value}' takes within, not_within, before or after")
            return None
        allowed = {"of", "op", "value", *BOUNDS}
        self._only(spec, allowed, loc)
        bounds = [b for b in BOUNDS if b in spec]
        if len(bounds) > 1 or (bounds and "op" in spec):
            self.problem(loc, "give one of at_least, at_most, exactly (or op and value)")
            return None
        if bounds:
            op, value = BOUNDS[bounds[0]], spec[bounds[0]]
        elif "op" in spec:
            found = self.op(spec["op"], (*loc, "op"))
            if found is None:
                return None
            op, value = found, spec.get("value")
        else:
            self.problem(loc, "say how much: at_least, at_most, exactly (or op and value)")
            return None
        number_ops = {Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE, Op.BETWEEN}
        if op not in number_ops:
            self.problem(loc, f"'{op.value}' does not compare a {measure.value}")
            return None
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float):
                self.problem(loc, f"a {measure.value} is compared with a number, not {v!r}")
                return None
            if measure is Measure.COUNT and v < 0:
                self.problem(loc, f"a count cannot be {v}")
                return None
        return self.condition(measure.value, op, value, loc)

    def sample(self, data: Mapping[str, Any], loc: Location) -> Node | None:
        self._only(data, {"sample", "seed"}, loc)
        raw = data["sample"]
        match = _PERCENT.match(str(raw))
        percent = float(match.group(1)) if match else None
        if percent is None and isinstance(raw, int | float) and not isinstance(raw, bool):
            percent = float(raw) * 100 if 0 < raw < 1 else None
        if percent is None or not 0 < percent <= 100:
            self.problem((*loc, "sample"), f"'{raw}' is not a share; write e.g. 10% (0-100%)")
            return None
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            self.problem((*loc, "seed"), f"seed is a whole number, not {seed!r}")
            return None
        return SamplePredicate(_path(loc), self.line(loc), percent, seed)

    def anniversary(self, data: Mapping[str, Any], loc: Location) -> Node | None:
        if "birthday" in data:
            self._only(data, {"birthday"}, loc)
            spec, column = data["birthday"], "birth_date"
            s_loc = (*loc, "birthday")
        else:
            self._only(data, {"anniversary", "within"}, loc)
            column, spec, s_loc = data["anniversary"], data, loc
            if not isinstance(column, str):
                self.problem((*loc, "anniversary"), "'anniversary' names a date column")
                return None
        if not isinstance(spec, Mapping) or "within" not in spec:
            self.problem(s_loc, "say when: within: 7d")
            return None
        days, months = self.duration(spec["within"], (*s_loc, "within"))
        if days is None:
            if months is not None:
                self.problem((*s_loc, "within"), "an anniversary window is in days or weeks")
            return None
        if days > 366:
            self.problem((*s_loc, "within"), "an anniversary window is at most 366 days")
            return None
        return AnniversaryPredicate(_path(loc), self.line(loc), column, days)

    def cluster(self, data: Mapping[str, Any], loc: Location) -> Node | None:
        spec = data["cluster"]
        if not isinstance(spec, Mapping) or "set" not in spec or "id" not in spec:
            self.problem((*loc, "cluster"), "'cluster' takes {set: NAME, id: N}")
            return None
        cid = spec["id"]
        if isinstance(cid, bool) or not isinstance(cid, int) or cid < 0:
            self.problem((*loc, "cluster", "id"), f"a cluster id is a whole number, not {cid!r}")
            return None
        return ClusterPredicate(_path(loc), self.line(loc), str(spec["set"]), cid)

    def lookalike(self, data: Mapping[str, Any], loc: Location) -> Node | None:
        spec = data["lookalike"]
        if not isinstance(spec, Mapping) or "seed" not in spec or "top" not in spec:
            self.problem((*loc, "lookalike"), "'lookalike' takes {seed: SEGMENT, top: N}")
            return None
        top = spec["top"]
        if isinstance(top, bool) or not isinstance(top, int) or top <= 0:
            self.problem((*loc, "lookalike", "top"), f"top is a positive number, not {top!r}")
            return None
        return LookalikePredicate(_path(loc), self.line(loc), str(spec["seed"]), top)


def _comparable(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return True
    return type(a) is type(b) and isinstance(a, str | dt.date)


def _literal(node: exp.Expression) -> tuple[bool, Any]:
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        ok, value = _literal(node.this)
        return ok, -value if ok else None
    if isinstance(node, exp.Literal):
        if node.is_string:
            return True, node.this
        text = node.this
        return True, int(text) if re.fullmatch(r"\d+", text) else float(text)
    if isinstance(node, exp.Boolean):
        return True, bool(node.this)
    if (
        isinstance(node, exp.Cast)
        and isinstance(node.this, exp.Literal)
        and node.to.this is exp.DataType.Type.DATE
    ):
        try:
            return True, dt.date.fromisoformat(node.this.this)
        except ValueError:
            return False, None
    if isinstance(node, exp.Null):
        return True, None
    return False, None


def _column(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Column) and not node.table:
        return node.name
    return None


_BINARY: dict[type[exp.Expression], Op] = {
    exp.EQ: Op.EQ,
    exp.NEQ: Op.NE,
    exp.LT: Op.LT,
    exp.LTE: Op.LE,
    exp.GT: Op.GT,
    exp.GTE: Op.GE,
}


def _condition_from_tree(tree: exp.Expression) -> Condition | None:
    """One ``field op literal`` condition from a SQLGlot tree, or None."""
    negate = False
    if isinstance(tree, exp.Not):
        negate, tree = True, tree.this
        if isinstance(tree, exp.Paren):
            tree = tree.this
    if isinstance(tree, exp.Is):
        name = _column(tree.this)
        if name is None or not isinstance(tree.expression, exp.Null):
            return None
        return Condition(name, Op.NOT_NULL if negate else Op.IS_NULL)
    if isinstance(tree, exp.In):
        name = _column(tree.this)
        values = [_literal(v) for v in tree.expressions]
        if name is None or not values or not all(ok for ok, _ in values):
            return None
        return Condition(name, Op.NOT_IN if negate else Op.IN, tuple(v for _, v in values))
    if negate:
        return None
    if isinstance(tree, exp.Between):
        name = _column(tree.this)
        (ok_low, low), (ok_high, high) = _literal(tree.args["low"]), _literal(tree.args["high"])
        if name is None or not (ok_low and ok_high):
            return None
        return Condition(name, Op.BETWEEN, (low, high))
    if type(tree) in _BINARY:
        assert isinstance(tree, exp.Binary)
        name = _column(tree.this)
        ok, value = _literal(tree.expression)
        if name is None or not ok or value is None:
            return None
        return Condition(name, _BINARY[type(tree)], value)
    if isinstance(tree, exp.Contains):
        name = _column(tree.this)
        ok, value = _literal(tree.expression)
        if name is not None and ok and isinstance(value, str):
            return Condition(name, Op.CONTAINS, value)
    if isinstance(tree, exp.Anonymous) and tree.name.lower() == "contains":
        args = tree.expressions
        if len(args) == 2:
            name = _column(args[0])
            ok, value = _literal(args[1])
            if name is not None and ok and isinstance(value, str):
                return Condition(name, Op.CONTAINS, value)
    if isinstance(tree, exp.Column) and not tree.table:
        # a bare boolean column: "has_valid_phone"
        return Condition(tree.name, Op.EQ, True)
    return None


def _path(loc: Location) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_segment(
    data: Any,
    *,
    file: Path,
    located: LocatedYaml | None = None,
    base: Location = (),
    default_name: str | None = None,
) -> tuple[SegmentSpec | None, list[SpecProblem]]:
    """A ``SegmentSpec`` from the YAML/JSON structure, with every problem found."""
    parser = _Parser(file, located, base)
    if not isinstance(data, Mapping):
        parser.problem(base, "a segment is a mapping with name, description and rule")
        return None, parser.problems
    for key in data:
        if key not in {"name", "description", "rule"}:
            parser.problem(
                (*base, key), f"unexpected key '{key}'; allowed: name, description, rule"
            )
    name = data.get("name", default_name)
    if not isinstance(name, str) or not NAME.match(name):
        parser.problem(
            (*base, "name"),
            f"segment name '{name}' must be lower-case letters, digits and _ (start with a letter)",
        )
    description = data.get("description", "")
    if "rule" not in data:
        parser.problem(base, "a segment needs a 'rule'")
        return None, parser.problems
    rule = parser.rule(data["rule"], (*base, "rule"))
    if rule is None or parser.problems:
        return None, parser.problems
    assert isinstance(name, str)
    spec = SegmentSpec(name, rule, str(description or ""), file, parser.line(base))
    return spec, parser.problems


def load_segment_specs(folder: Path) -> list[SegmentSpec]:
    """Every segment under ``folder`` (``*.yml`` / ``*.yaml``, sub-folders included).

    A file holds one segment (its name defaults to the file name). Raises one ``SpecError``
    with every problem in every file, duplicate names included.
    """
    if not folder.is_dir():
        return []
    problems: list[SpecProblem] = []
    specs: list[SegmentSpec] = []
    files = sorted([*folder.rglob("*.yml"), *folder.rglob("*.yaml")])
    for path in files:
        if path.name.startswith("_"):
            continue
        located = load_yaml(path)
        spec, found = parse_segment(
            located.data, file=path, located=located, default_name=path.stem
        )
        problems.extend(found)
        if spec is not None:
            specs.append(spec)
    seen: dict[str, SegmentSpec] = {}
    for spec in specs:
        if spec.name in seen:
            first = seen[spec.name].file
            problems.append(
                SpecProblem(
                    spec.file or folder,
                    spec.line,
                    "name",
                    f"'{spec.name}' is already defined in {first}",
                )
            )
        seen[spec.name] = spec
    if problems:
        raise SpecError(problems)
    return specs


def dependency_order(specs: Sequence[SegmentSpec]) -> list[SegmentSpec]:
    """Segments so that each comes after those it refers to; cycles and unknown references
    are a ``SpecError`` naming the chain.
    """
    by_name = {s.name: s for s in specs}
    problems: list[SpecProblem] = []
    for spec in specs:
        for dep in sorted(spec.dependencies()):
            if dep not in by_name:
                known = ", ".join(sorted(by_name)) or "none"
                problems.append(
                    SpecProblem(
                        spec.file or Path("<rule>"),
                        spec.line,
                        "rule",
                        f"segment '{spec.name}' refers to unknown segment '{dep}'; known: {known}",
                    )
                )
    if problems:
        raise SpecError(problems)
    order: list[SegmentSpec] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*chain[chain.index(name) :], name]
            spec = by_name[name]
            raise SpecError(
                [
                    SpecProblem(
                        spec.file or Path("<rule>"),
                        spec.line,
                        "rule",
                        "segments refer to each other in a cycle: " + " → ".join(cycle),
                    )
                ]
            )
        state[name] = 1
        for dep in sorted(by_name[name].dependencies()):
            visit(dep, [*chain, name])
        state[name] = 2
        order.append(by_name[name])

    for spec in sorted(specs, key=lambda s: s.name):
        visit(spec.name, [])
    return order
