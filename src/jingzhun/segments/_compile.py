"""Compile a ``SegmentSpec`` for one engine: an Ibis expression of its members, and of every
predicate's value and truth for ``explain`` (``CompiledSegment``).

Every leaf is a boolean column over ``profiles`` left-joined with one small table per
behavioural, score, cluster or nested-segment predicate (keyed by ``customer_key``). A leaf
whose value is unknown (null) is false, so ``not`` is the complement within the profiles.
Nothing is pasted into SQL: the SQL is printed by Ibis for the engine's dialect.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from jingzhun.core import SpecError, SpecProblem
from jingzhun.engine import Engine
from jingzhun.profile import (
    PROFILE_COLUMNS,
    PROFILES,
    AsOf,
    Kind,
    customer_events,
    customer_orders,
    identity_snapshot,
    product_categories,
)
from jingzhun.segments._spec import (
    TIME_MEASURES,
    AllOf,
    AnniversaryPredicate,
    AnyOf,
    ClusterPredicate,
    Condition,
    EventPredicate,
    FieldPredicate,
    LookalikePredicate,
    Measure,
    Node,
    NotOf,
    Op,
    SamplePredicate,
    SegmentPredicate,
    SegmentSpec,
    Window,
    walk,
)

SCORES = "scores"
CLUSTERS = "clusters"
LOOKALIKE_SCORES = "lookalike_scores"

# Behaviour that is not in raw_events: orders (purchases), returns and bought lines.
ORDER_EVENTS = ("order", "purchase")
RETURN_EVENT = "return"
LINE_EVENT = "order_line"
PSEUDO_EVENT_PROPERTIES: dict[str, dict[str, Kind]] = {
    "order": {"amount": Kind.NUMBER, "gross": Kind.NUMBER, "source": Kind.STRING},
    "purchase": {"amount": Kind.NUMBER, "gross": Kind.NUMBER, "source": Kind.STRING},
    "return": {"amount": Kind.NUMBER, "source": Kind.STRING},
    "order_line": {
        "sku": Kind.STRING,
        "category": Kind.STRING,
        "quantity": Kind.NUMBER,
        "amount": Kind.NUMBER,
        "source": Kind.STRING,
    },
}
EVENT_COLUMNS: dict[str, Kind] = {"sku": Kind.STRING, "channel": Kind.STRING, "source": Kind.STRING}
_PROPERTY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_HEX = "0123456789abcdef"
SAMPLE_BUCKETS = 10_000


@dataclass(frozen=True)
class Catalog:
    """What rules may name: profile columns (with custom tags), score names, event types."""

    columns: Mapping[str, Kind]
    scores: frozenset[str] = frozenset()
    event_types: frozenset[str] | None = None  # None: not known (no events table yet)
    cluster_sets: frozenset[str] = frozenset()

    @classmethod
    def from_engine(cls, engine: Engine) -> Catalog:
        """Read the names from the warehouse (``profiles``, ``scores``, ``raw_events``)."""
        if engine.exists(PROFILES):
            schema = engine.read(PROFILES).schema()
            columns = {name: _kind_of(dtype) for name, dtype in schema.items()}
        else:
            columns = {c.name: c.kind for c in PROFILE_COLUMNS}
        scores: frozenset[str] = frozenset()
        if engine.exists(SCORES):
            t = engine.read(SCORES)
            rows = engine.execute(t.select("score_name").distinct()).column(0).to_pylist()
            scores = frozenset(str(r) for r in rows if r is not None)
        events: frozenset[str] | None = None
        if engine.exists("raw_events"):
            t = engine.read("raw_events")
            rows = engine.execute(t.select("event_type").distinct()).column(0).to_pylist()
            events = frozenset(str(r) for r in rows if r is not None)
        sets: frozenset[str] = frozenset()
        if engine.exists(CLUSTERS):
            t = engine.read(CLUSTERS)
            rows = engine.execute(t.select("cluster_set").distinct()).column(0).to_pylist()
            sets = frozenset(str(r) for r in rows if r is not None)
        return cls(columns, scores, events, sets)


def _kind_of(dtype: Any) -> Kind:
    if dtype.is_boolean():
        return Kind.BOOLEAN
    if dtype.is_string():
        return Kind.STRING
    if dtype.is_date():
        return Kind.DATE
    if dtype.is_timestamp():
        return Kind.TIMESTAMP
    return Kind.NUMBER


@dataclass(frozen=True)
class ExplainColumn:
    """One node of the rule in the explain query: its value column and its truth column."""

    node: Node
    depth: int
    value: str | None
    truth: str


@dataclass
class CompiledSegment:
    """A segment compiled for one engine on one date."""

    spec: SegmentSpec
    as_of: dt.date
    wide: ir.Table  # profiles + one value column per predicate + one truth column per node
    columns: list[ExplainColumn] = field(default_factory=list)
    base: ir.Table = None  # profiles + value columns
    expressions: list[ir.BooleanValue] = field(default_factory=list)  # truth per node

    @property
    def truth(self) -> str:
        """The column holding the whole rule's truth."""
        return self.columns[0].truth

    @property
    def condition(self) -> ir.BooleanValue:
        """The whole rule as one boolean over ``wide`` (no explain columns)."""
        return self.expressions[0]

    @property
    def members(self) -> ir.Table:
        """``customer_key`` of every member."""
        w = self.base
        return w.filter(self.condition).select("customer_key")

    def member_profiles(self) -> ir.Table:
        """The members' rows of ``profiles`` (every profile column)."""
        w = self.base
        names = [c for c in w.columns if not c.startswith("_jz_")]
        return w.filter(self.condition).select(*names)

    def count(self) -> ir.IntegerScalar:
        """The number of members."""
        return self.base.filter(self.condition).count()

    def sql(self) -> str:
        """The SQL of the members query in the engine's dialect."""
        return str(ibis.to_sql(self.members))


class _Compiler:
    """Compiles rules of one project on one engine and date; nested segments are reused."""

    def __init__(
        self,
        engine: Engine,
        catalog: Catalog,
        as_of: AsOf,
        specs: Mapping[str, SegmentSpec],
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.as_of = as_of
        self.specs = specs
        self.problems: list[SpecProblem] = []
        self._identity: Any = None
        self._members: dict[str, ir.Table] = {}
        self._stack: list[str] = []

    # helpers ---------------------------------------------------------------------------

    def problem(self, spec: SegmentSpec, node: Node, message: str) -> None:
        self.problems.append(
            SpecProblem(spec.file or Path("<rule>"), node.line, node.path or "rule", message)
        )

    @property
    def identity(self) -> Any:
        if self._identity is None:
            self._identity = identity_snapshot(self.engine, self.as_of.day)
        return self._identity

    # compile ---------------------------------------------------------------------------

    def compile(self, spec: SegmentSpec) -> CompiledSegment:
        if spec.name in self._stack:
            cycle = " → ".join([*self._stack[self._stack.index(spec.name) :], spec.name])
            raise SpecError(
                [
                    SpecProblem(
                        spec.file or Path("<rule>"),
                        spec.line,
                        "rule",
                        f"segments refer to each other in a cycle: {cycle}",
                    )
                ]
            )
        self._stack.append(spec.name)
        try:
            profiles = self.engine.read(PROFILES)
            nodes = walk(spec.rule)
            aux: list[tuple[int, ir.Table]] = []
            values: dict[int, str] = {}
            for i, node in enumerate(nodes):
                table = self.aux_table(spec, node, i)
                if table is not None:
                    aux.append((i, table))
                    values[i] = f"_jz_v{i}"
            if self.problems:
                raise SpecError(list(self.problems))
            wide = profiles
            for i, table in aux:
                key = f"_jz_k{i}"
                joined = wide.left_join(table, wide.customer_key == table[key])
                wide = joined.select(*wide.columns, values[i])
            truths: dict[int, ir.BooleanValue] = {}
            negated = _negated(nodes)
            for i in reversed(range(len(nodes))):
                truth = self.truth(spec, nodes, i, wide, values, truths)
                # An unknown value (null) fails a condition. A filter drops nulls by itself,
                # so only leaves under a `not` need the (costly) coalesce to false.
                leaf = not isinstance(nodes[i], AllOf | AnyOf | NotOf)
                truths[i] = truth.fill_null(False) if leaf and i in negated else truth
            if self.problems:
                raise SpecError(list(self.problems))
            truthful = wide.mutate(**{f"_jz_t{i}": truths[i] for i in range(len(nodes))})
            columns = [
                ExplainColumn(node, _depth(spec.rule, node), values.get(i), f"_jz_t{i}")
                for i, node in enumerate(nodes)
            ]
            for i, node in enumerate(nodes):
                if isinstance(node, FieldPredicate) and i not in values:
                    columns[i] = ExplainColumn(
                        node, columns[i].depth, node.condition.field, f"_jz_t{i}"
                    )
                if isinstance(node, AnniversaryPredicate | SamplePredicate):
                    columns[i] = ExplainColumn(node, columns[i].depth, None, f"_jz_t{i}")
            return CompiledSegment(
                spec,
                self.as_of.day,
                truthful,
                columns,
                wide,
                [truths[i] for i in range(len(nodes))],
            )
        finally:
            self._stack.pop()

    def members_of(self, spec: SegmentSpec, node: Node, name: str) -> ir.Table | None:
        if name not in self.specs:
            known = ", ".join(sorted(self.specs)) or "none"
            self.problem(spec, node, f"unknown segment '{name}'; known: {known}")
            return None
        if name not in self._members:
            compiled = self.compile(self.specs[name])
            self._members[name] = compiled.members
        return self._members[name]

    def aux_table(self, spec: SegmentSpec, node: Node, i: int) -> ir.Table | None:
        """A (``_jz_k{i}``, ``_jz_v{i}``) table for predicates that need more than profiles."""
        key, value = f"_jz_k{i}", f"_jz_v{i}"
        if isinstance(node, FieldPredicate):
            name = node.condition.field
            if name in self.catalog.columns:
                self.check_value(spec, node, node.condition, self.catalog.columns[name])
                return None
            if name in self.catalog.scores:
                self.check_value(spec, node, node.condition, Kind.NUMBER)
                scores = self.engine.read(SCORES)
                scores = scores.filter(scores.score_name == name)
                latest = scores.group_by("customer_key").aggregate(
                    **{value: scores.score.cast("float64").max()}
                )
                return latest.rename({key: "customer_key"})
            known = sorted([*self.catalog.columns, *self.catalog.scores])
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f" — did you mean '{close[0]}'?" if close else ""
            scores_text = ", ".join(sorted(self.catalog.scores)) or "none yet"
            self.problem(
                spec,
                node,
                f"unknown field '{name}'{hint}; a field is a profile column or tag "
                f"(see 'jingzhun profile show') or a model score ({scores_text})",
            )
            return None
        if isinstance(node, EventPredicate):
            return self.event_table(spec, node, key, value)
        if isinstance(node, SegmentPredicate | LookalikePredicate):
            if isinstance(node, SegmentPredicate):
                members = self.members_of(spec, node, node.segment)
            else:
                if self.members_of(spec, node, node.seed) is None:
                    return None
                members = self.lookalike_members(spec, node)
            if members is None:
                return None
            return members.select(**{key: members.customer_key, value: ibis.literal(True)})
        if isinstance(node, ClusterPredicate):
            if node.cluster_set not in self.catalog.cluster_sets:
                sets = ", ".join(sorted(self.catalog.cluster_sets)) or "none yet"
                self.problem(
                    spec,
                    node,
                    f"unknown cluster set '{node.cluster_set}'; saved sets: {sets} "
                    "(make one with 'jingzhun segment cluster')",
                )
                return None
            c = self.engine.read(CLUSTERS)
            c = c.filter((c.cluster_set == node.cluster_set) & (c.cluster == node.cluster))
            return c.select(**{key: c.customer_key, value: c.cluster.cast("int64")})
        if isinstance(node, AnniversaryPredicate):
            kind = self.catalog.columns.get(node.column)
            if kind not in (Kind.DATE, Kind.TIMESTAMP):
                dates = sorted(n for n, k in self.catalog.columns.items() if k is Kind.DATE)
                self.problem(
                    spec,
                    node,
                    f"'{node.column}' is not a date column; date columns: {', '.join(dates)}",
                )
        return None

    def lookalike_members(self, spec: SegmentSpec, node: LookalikePredicate) -> ir.Table | None:
        if not self.engine.exists(LOOKALIKE_SCORES):
            self.problem(
                spec,
                node,
                f"no look-alike scores yet; run 'jingzhun segment lookalike {node.seed}' first",
            )
            return None
        t = self.engine.read(LOOKALIKE_SCORES)
        t = t.filter((t.seed_segment == node.seed) & ~t.in_seed & (t["rank"] <= node.top))
        return t.select("customer_key")

    # behaviour -------------------------------------------------------------------------

    def event_rows(self, spec: SegmentSpec, node: EventPredicate) -> ir.Table | None:
        """The customer's rows for the event type: ``customer_key, day, <properties>``."""
        name = node.event
        if name in ORDER_EVENTS or name == RETURN_EVENT:
            orders = customer_orders(self.engine, self.as_of, self.identity)
            if orders is None:
                return _empty_events(self.engine, PSEUDO_EVENT_PROPERTIES[name])
            returns = name == RETURN_EVENT
            orders = orders.filter(orders.is_return if returns else ~orders.is_return)
            amount = orders.returned if returns else orders.net
            cols: dict[str, ir.Value] = {
                "customer_key": orders.customer_key,
                "_jz_day": orders.order_date,
                "amount": amount.cast("float64"),
                "source": orders._source,
            }
            if not returns:
                cols["gross"] = orders.gross.cast("float64")
            return orders.select(**cols)
        if name == LINE_EVENT:
            return self.order_lines()
        if self.catalog.event_types is not None and name not in self.catalog.event_types:
            known = sorted([*self.catalog.event_types, *PSEUDO_EVENT_PROPERTIES])
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f" — did you mean '{close[0]}'?" if close else ""
            self.problem(
                spec, node, f"unknown event '{name}'{hint}; known events: {', '.join(known)}"
            )
            return None
        events = customer_events(self.engine, self.as_of, self.identity)
        if events is None:
            return _empty_events(self.engine, {})
        events = events.filter(events.event_type == name)
        return events.select(
            "customer_key",
            "sku",
            "channel",
            "properties",
            _jz_day=events.occurred_at.date(),
            source=events._source,
        )

    def order_lines(self) -> ir.Table:
        orders = customer_orders(self.engine, self.as_of, self.identity)
        if orders is None or not self.engine.exists("raw_order_items"):
            return _empty_events(self.engine, PSEUDO_EVENT_PROPERTIES[LINE_EVENT])
        items = self.as_of.loaded(self.engine.read("raw_order_items"))
        items = items.filter(~(items.is_return.fill_null(False) | (items.quantity < 0)))
        sales = orders.filter(~orders.is_return)
        joined = sales.join(
            items, [sales._source == items._source, sales.order_id == items.order_id]
        )
        amount = ibis.coalesce(joined.amount, joined.quantity * joined.unit_price)
        lines = joined.select(
            customer_key=joined.customer_key,
            _jz_day=joined.order_date,
            sku=joined.sku,
            quantity=joined.quantity.cast("float64"),
            amount=amount.cast("float64"),
            source=joined._source,
        )
        categories = product_categories(self.engine, self.as_of)
        if categories is None:
            return lines.mutate(category=ibis.null("string"))
        with_cat = lines.left_join(categories, lines.sku == categories.cat_sku)
        return with_cat.select(*lines.columns, "category")

    def property(
        self, spec: SegmentSpec, node: EventPredicate, rows: ir.Table, name: str
    ) -> tuple[ir.Value, Kind] | None:
        """A property of the event rows: a column, or a key of the JSON ``properties``."""
        pseudo = PSEUDO_EVENT_PROPERTIES.get(node.event)
        if pseudo is not None:
            if name not in pseudo:
                allowed = ", ".join(pseudo)
                self.problem(
                    spec, node, f"'{node.event}' has no property '{name}'; it has: {allowed}"
                )
                return None
            return rows[name], pseudo[name]
        if name in EVENT_COLUMNS:
            return rows[name], EVENT_COLUMNS[name]
        if not _PROPERTY.match(name):
            self.problem(spec, node, f"'{name}' is not a property name (letters, digits, _)")
            return None
        return self.engine.json_text(rows.properties, name), Kind.STRING

    def event_table(
        self, spec: SegmentSpec, node: EventPredicate, key: str, value: str
    ) -> ir.Table | None:
        rows = self.event_rows(spec, node)
        if rows is None:
            return None
        for condition in node.where:
            found = self.property(spec, node, rows, condition.field)
            if found is None:
                return None
            column, kind = found
            if kind is Kind.STRING and _is_number_condition(condition):
                column, kind = column.cast("float64"), Kind.NUMBER  # a JSON number's digits
            self.check_value(spec, node, condition, kind)
            rows = rows.filter(_compare(column, condition, kind).fill_null(False))
        if node.window is not None:
            start, end = node.window.bounds(self.as_of.day)
            if start > end:
                self.problem(
                    spec,
                    node,
                    f"impossible window: {node.window.text()} lies after the build date "
                    f"{self.as_of.day}",
                )
                return None
            rows = rows.filter(
                (rows._jz_day >= ibis.literal(start, type="date"))
                & (rows._jz_day <= ibis.literal(end, type="date"))
            )
        measure = node.measure
        if measure is Measure.COUNT:
            agg = rows.count()
        elif measure in TIME_MEASURES:
            agg = rows._jz_day.min() if measure is Measure.FIRST else rows._jz_day.max()
        else:
            assert node.of is not None
            found = self.property(spec, node, rows, node.of)
            if found is None:
                return None
            column, kind = found
            number = column.cast("float64")
            agg = {
                Measure.SUM: number.sum,
                Measure.AVG: number.mean,
                Measure.MIN: number.min,
                Measure.MAX: number.max,
            }[measure]()
        grouped = rows.group_by(**{key: rows.customer_key}).aggregate(**{value: agg})
        return grouped

    # truth -----------------------------------------------------------------------------

    def check_value(self, spec: SegmentSpec, node: Node, condition: Condition, kind: Kind) -> None:
        values: list[Any] = []
        if condition.op in (Op.IN, Op.NOT_IN, Op.BETWEEN):
            values = list(condition.value)
        elif condition.op not in (Op.IS_NULL, Op.NOT_NULL):
            values = [condition.value]
        if condition.op is Op.CONTAINS and kind is not Kind.STRING:
            self.problem(
                spec, node, f"'contains' needs a text field; '{condition.field}' is {kind.value}"
            )
            return
        if condition.op in (Op.LT, Op.LE, Op.GT, Op.GE, Op.BETWEEN) and kind is Kind.BOOLEAN:
            self.problem(spec, node, f"'{condition.field}' is true/false; compare it with = or !=")
            return
        for v in values:
            if not _fits(v, kind):
                example = {
                    Kind.BOOLEAN: "true or false",
                    Kind.NUMBER: "a number",
                    Kind.STRING: "a text",
                    Kind.DATE: "a date like 2024-01-31",
                    Kind.TIMESTAMP: "a date like 2024-01-31",
                }[kind]
                self.problem(
                    spec,
                    node,
                    f"wrong type: '{condition.field}' is {kind.value}, so compare it with "
                    f"{example}, not {v!r}",
                )
                return

    def truth(
        self,
        spec: SegmentSpec,
        nodes: Sequence[Node],
        i: int,
        wide: ir.Table,
        values: Mapping[int, str],
        truths: Mapping[int, ir.BooleanValue],
    ) -> ir.BooleanValue:
        node = nodes[i]
        children = [j for j, n in enumerate(nodes) if j > i and _parent(nodes, j) == i]
        if isinstance(node, AllOf):
            return _fold([truths[j] for j in children], all_of=True)
        if isinstance(node, AnyOf):
            return _fold([truths[j] for j in children], all_of=False)
        if isinstance(node, NotOf):
            return ~truths[children[0]] if children else ibis.literal(True)
        if isinstance(node, FieldPredicate):
            name = node.condition.field
            if i in values:
                return _compare(wide[values[i]], node.condition, Kind.NUMBER)
            kind = self.catalog.columns.get(name, Kind.STRING)
            return _compare(wide[name], node.condition, kind)
        if isinstance(node, EventPredicate):
            return self.event_truth(node, wide[values[i]])
        if isinstance(node, SegmentPredicate | LookalikePredicate | ClusterPredicate):
            return wide[values[i]].notnull()
        if isinstance(node, SamplePredicate):
            bucket = sample_bucket(wide.customer_key, node.seed)
            return bucket < round(node.percent * SAMPLE_BUCKETS / 100)
        if isinstance(node, AnniversaryPredicate):
            column = wide[node.column]
            if self.catalog.columns.get(node.column) is Kind.TIMESTAMP:
                column = column.date()
            days = anniversary_days(self.as_of.day, node.days)
            month_day = column.month() * 100 + column.day()
            return month_day.isin(days)
        raise AssertionError(f"no truth for {node!r}")

    def event_truth(self, node: EventPredicate, value: ir.Value) -> ir.BooleanValue:
        compare = node.compare
        assert compare is not None
        if node.measure is Measure.COUNT:
            return _compare(value.fill_null(0), compare, Kind.NUMBER)
        if node.measure in TIME_MEASURES:
            day = self.as_of.day
            if compare.field.endswith("_date"):
                return _compare(value, compare, Kind.DATE)
            unit, n = compare.value
            window = Window(days=n) if unit == "days" else Window(months=n)
            start, _ = window.bounds(day)
            recent = value >= ibis.literal(start, type="date")
            if compare.field.endswith("_not_within"):
                return ~recent
            return recent
        return _compare(value, compare, Kind.NUMBER)


def _negated(nodes: Sequence[Node]) -> set[int]:
    """Indices of the nodes that have a ``not`` above them."""
    out: set[int] = set()
    for j in range(len(nodes)):
        parent = _parent(nodes, j)
        while parent is not None:
            if isinstance(nodes[parent], NotOf):
                out.add(j)
                break
            parent = _parent(nodes, parent)
    return out


def _parent(nodes: Sequence[Node], j: int) -> int | None:
    """Index of the node's parent in the depth-first list."""
    target = nodes[j]
    for i in range(j - 1, -1, -1):
        node = nodes[i]
        if isinstance(node, AllOf | AnyOf) and any(c is target for c in node.rules):
            return i
        if isinstance(node, NotOf) and node.rule is target:
            return i
    return None


def _depth(root: Node, target: Node, depth: int = 0) -> int:
    if root is target:
        return depth
    children: Sequence[Node] = ()
    if isinstance(root, AllOf | AnyOf):
        children = root.rules
    elif isinstance(root, NotOf) and root.rule is not None:
        children = (root.rule,)
    for child in children:
        found = _depth(child, target, depth + 1)
        if found >= 0:
            return found
    return -1


def _fold(values: Sequence[ir.BooleanValue], *, all_of: bool) -> ir.BooleanValue:
    if not values:
        return ibis.literal(all_of)
    out = values[0]
    for v in values[1:]:
        out = (out & v) if all_of else (out | v)
    return out


def _empty_events(engine: Engine, properties: Mapping[str, Kind]) -> ir.Table:
    """No rows (the warehouse has no such table yet), registered with the engine."""
    types = {Kind.NUMBER: pa.float64(), Kind.STRING: pa.string()}
    fields = [("customer_key", pa.string()), ("_jz_day", pa.date32())]
    fields += [(name, types.get(kind, pa.string())) for name, kind in properties.items()]
    fields += [(c, pa.string()) for c in ("sku", "channel", "properties") if c not in properties]
    schema = pa.schema(fields)
    name = "_jz_no_events_" + hashlib.sha256(str(schema).encode()).hexdigest()[:8]
    return engine.register(name, schema.empty_table())


def _is_number_condition(condition: Condition) -> bool:
    values = condition.value if isinstance(condition.value, tuple) else (condition.value,)
    numeric = [isinstance(v, int | float) and not isinstance(v, bool) for v in values]
    return bool(numeric) and all(numeric) and condition.op is not Op.CONTAINS


def _fits(value: Any, kind: Kind) -> bool:
    if kind is Kind.BOOLEAN:
        return isinstance(value, bool)
    if kind is Kind.NUMBER:
        return isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    if kind is Kind.STRING:
        return isinstance(value, str)
    if isinstance(value, dt.date):
        return True
    if isinstance(value, str):
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            return False
        return True
    return False


def _literal(value: Any, kind: Kind) -> Any:
    if kind in (Kind.DATE, Kind.TIMESTAMP) and isinstance(value, str):
        value = dt.date.fromisoformat(value)
    if kind is Kind.DATE and isinstance(value, dt.date):
        return ibis.literal(value, type="date")
    if kind is Kind.TIMESTAMP and isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time())
        return ibis.literal(moment, type="timestamp")
    if kind is Kind.NUMBER:
        # the column keeps its own type (a cast of every row costs more than the comparison)
        return ibis.literal(value, type="int64" if isinstance(value, int) else "float64")
    return ibis.literal(value)


def _compare(column: ir.Value, condition: Condition, kind: Kind) -> ir.BooleanValue:
    """``column op value`` as an Ibis boolean (null when the column is null)."""
    op, value = condition.op, condition.value
    if kind is Kind.TIMESTAMP and isinstance(value, str | dt.date):
        # a date compared with an instant means its day (UTC)
        column = column.date()
        kind = Kind.DATE
    if op is Op.IS_NULL:
        return column.isnull()
    if op is Op.NOT_NULL:
        return column.notnull()
    if op in (Op.IN, Op.NOT_IN):
        inside = column.isin([_literal(v, kind) for v in value])
        return inside if op is Op.IN else ~inside
    if op is Op.BETWEEN:
        low, high = value
        return column.between(_literal(low, kind), _literal(high, kind))
    if op is Op.CONTAINS:
        return column.lower().contains(str(value).lower())
    literal = _literal(value, kind)
    return {
        Op.EQ: lambda: column == literal,
        Op.NE: lambda: column != literal,
        Op.LT: lambda: column < literal,
        Op.LE: lambda: column <= literal,
        Op.GT: lambda: column > literal,
        Op.GE: lambda: column >= literal,
    }[op]()


def sample_bucket(customer_key: ir.StringValue, seed: int) -> ir.IntegerValue:
    """A number in [0, 10000) from the MD5 of ``seed:customer_key``: the same on every engine
    and every build, so ``sample: 10%`` keeps the same customers.
    """
    digest = (ibis.literal(f"{seed}:") + customer_key).hexdigest("md5")
    value: ir.IntegerValue = ibis.literal(0)
    # the first 7 hex digits (28 bits) as a number, digit by digit (portable across engines)
    for position in range(7):
        digit = ibis.literal(_HEX).find(digit_at(digest, position))
        value = value * 16 + digit
    return value % SAMPLE_BUCKETS


def digit_at(text: ir.StringValue, position: int) -> ir.StringValue:
    """The character at ``position`` (0-based)."""
    return text.substr(position, 1)


def anniversary_days(as_of: dt.date, days: int) -> list[int]:
    """``month * 100 + day`` of every date in ``as_of`` … ``as_of + days - 1``; 29 February
    is celebrated on 28 February in years without one.
    """
    out: list[int] = []
    for offset in range(days):
        day = as_of + dt.timedelta(days=offset)
        out.append(day.month * 100 + day.day)
        leap = day.year % 4 == 0 and (day.year % 100 != 0 or day.year % 400 == 0)
        if day.month == 2 and day.day == 28 and not leap:
            out.append(229)
    return sorted(set(out))


def compile_segment(
    engine: Engine,
    spec: SegmentSpec,
    *,
    as_of: dt.date,
    specs: Mapping[str, SegmentSpec] | None = None,
    include_late_loads: bool = False,
    catalog: Catalog | None = None,
) -> CompiledSegment:
    """Compile one segment on ``engine`` for ``as_of``; ``specs`` are the segments it may
    refer to. Unknown names and wrong types raise one ``SpecError`` listing every problem.
    """
    compiler = _Compiler(
        engine,
        catalog or Catalog.from_engine(engine),
        AsOf(as_of, include_late_loads),
        {**(specs or {}), spec.name: spec},
    )
    return compiler.compile(spec)
