"""``IdentityResolver``: build ``identity_map`` and ``merge_log`` from the raw tables, take in
probabilistic pairs, and keep people's review decisions and splits in the operational store.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select

from jingzhun.core import NotFoundError
from jingzhun.engine import Engine
from jingzhun.identity._graph import (
    EDGE_SCHEMA,
    NODE_SCHEMA,
    connected_components,
    dedupe_edges,
    event_edges,
    guard_edges,
    nodes_expr,
    resolve_conflicts,
    shared_identifier_edges,
)
from jingzhun.identity._identifiers import (
    IDENTIFIERS_TABLE,
    LINKS_TABLE,
    IdentitySettings,
    NodeKind,
    Reason,
    customer_sources,
    extract_identifiers,
    key_expr,
    parse_node_key,
    registered,
    replace_tables,
    write_table,
)
from jingzhun.store import (
    IdentityDecision,
    IdentityDecisionKind,
    IdentitySplit,
    OperationalStore,
)

IDENTITY_MAP_TABLE = "identity_map"
MERGE_LOG_TABLE = "merge_log"
REVIEW_QUEUE_TABLE = "identity_review_queue"
_TMP = "identity_tmp"

IDENTITY_MAP_SCHEMA = pa.schema(
    [
        ("node_source", pa.string()),
        ("node_id", pa.string()),
        ("node_kind", pa.string()),
        ("customer_key", pa.string()),
        ("built_at", pa.timestamp("us", tz="UTC")),
        ("as_of", pa.date32()),
    ]
)
MERGE_LOG_SCHEMA = pa.schema(
    [
        ("customer_key", pa.string()),
        ("node_a", pa.string()),
        ("node_b", pa.string()),
        ("reason", pa.string()),
        ("evidence", pa.string()),
        ("built_at", pa.timestamp("us", tz="UTC")),
    ]
)
REVIEW_QUEUE_SCHEMA = pa.schema(
    [
        ("node_a", pa.string()),
        ("node_b", pa.string()),
        ("match_weight", pa.float64()),
        ("match_probability", pa.float64()),
        ("why", pa.string()),
        ("built_at", pa.timestamp("us", tz="UTC")),
    ]
)
PROBABILISTIC_COLUMNS = (
    "node_a_source",
    "node_a_id",
    "node_b_source",
    "node_b_id",
    "match_weight",
    "match_probability",
)
_PAIR_SCHEMA = pa.schema([("node_a", pa.string()), ("node_b", pa.string())])
_DECISION_SCHEMA = pa.schema(
    [
        ("node_a", pa.string()),
        ("node_b", pa.string()),
        ("decision", pa.string()),
        ("match_weight", pa.float64()),
    ]
)
_PROBABLE_SCHEMA = pa.schema(
    [
        ("node_a", pa.string()),
        ("node_b", pa.string()),
        ("match_weight", pa.float64()),
        ("match_probability", pa.float64()),
        ("held", pa.bool_()),  # the matcher's own rules kept it from merging (household, ...)
    ]
)
WHY_BETWEEN = "between the review and merge thresholds"
WHY_SAME_SOURCE = "two customer ids of one source: a person decides"


@dataclass
class IdentityReport:
    """What one identity build did."""

    nodes: int = 0
    customers: int = 0
    anonymous_visitors: int = 0
    identifiers: dict[str, int] = field(default_factory=dict)
    identifiers_rejected: int = 0
    values_too_shared: int = 0
    anonymous_ids_too_shared: int = 0
    merges: dict[str, int] = field(default_factory=dict)
    edges_dropped_by_guards: dict[str, int] = field(default_factory=dict)
    components_split: int = 0
    review_queue: int = 0
    iterations: int = 0
    as_of: date | None = None
    built_at: datetime | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``--json``."""
        out = asdict(self)
        out["as_of"] = self.as_of.isoformat() if self.as_of else None
        out["built_at"] = self.built_at.isoformat() if self.built_at else None
        return out


def ordered(a: str, b: str) -> tuple[str, str]:
    """A node pair in the order the store keeps it (smaller key first)."""
    return (a, b) if a < b else (b, a)


def _check_key(key: str) -> str:
    parse_node_key(key)
    return key


class IdentityResolver:
    """Resolve records into customers: ``build``, review queue, ``decide``, ``unmerge``.

    Parameters
    ----------
    engine
        The warehouse with the raw tables.
    store
        The migrated operational store that keeps decisions and splits.
    settings
        Guards, thresholds, region and keys (``IdentitySettings.from_project`` in a project).
    """

    def __init__(
        self, engine: Engine, store: OperationalStore, settings: IdentitySettings | None = None
    ) -> None:
        self.engine = engine
        self.store = store
        self.settings = settings or IdentitySettings()

    # -- store: decisions and splits -------------------------------------------------------------

    def decisions(self) -> pa.Table:
        """The latest decision per pair: node_a, node_b, decision, match_weight."""
        with self.store.session() as session:
            rows = session.execute(
                select(
                    IdentityDecision.node_a,
                    IdentityDecision.node_b,
                    IdentityDecision.decision,
                    IdentityDecision.match_weight,
                ).order_by(IdentityDecision.id)
            ).all()
        latest = {(a, b): (decision, weight) for a, b, decision, weight in rows}
        return pa.table(
            {
                "node_a": [a for a, _ in latest],
                "node_b": [b for _, b in latest],
                "decision": [d for d, _ in latest.values()],
                "match_weight": [w for _, w in latest.values()],
            },
            schema=_DECISION_SCHEMA,
        )

    def splits(self) -> pa.Table:
        """Every recorded split: node_a, node_b (ordered)."""
        with self.store.session() as session:
            rows = session.execute(select(IdentitySplit.node_a, IdentitySplit.node_b)).all()
        return pa.table(
            {"node_a": [a for a, _ in rows], "node_b": [b for _, b in rows]}, schema=_PAIR_SCHEMA
        )

    def decide(self, node_a: str, node_b: str, accept: bool, by: str) -> None:
        """Record a reviewer's decision on a pair; the next build uses it (the latest counts).

        Parameters
        ----------
        node_a, node_b
            Node keys as the review queue shows them (``c:<source>:<id>``).
        accept
            True: they are one customer; False: never merge them on a probability.
        by
            Who decided (user name or e-mail), for the audit trail.
        """
        a, b = ordered(_check_key(node_a), _check_key(node_b))
        if a == b:
            raise ValueError(f"a decision needs two different nodes, got {a} twice")
        weight = None
        if self.engine.exists(REVIEW_QUEUE_TABLE):
            queue = self.engine.read(REVIEW_QUEUE_TABLE)
            found = self.engine.execute(
                queue.filter((queue.node_a == a) & (queue.node_b == b)).select("match_weight")
            )
            if found.num_rows:
                weight = found["match_weight"][0].as_py()
        with self.store.session(write=True) as session:
            session.add(
                IdentityDecision(
                    node_a=a,
                    node_b=b,
                    decision=(
                        IdentityDecisionKind.ACCEPT if accept else IdentityDecisionKind.REJECT
                    ).value,
                    decided_by=by,
                    decided_at=datetime.now(UTC),
                    match_weight=weight,
                )
            )

    def unmerge(self, customer: str, node: str, by: str, reason: str = "unmerge") -> int:
        """Split ``node`` off its customer; later builds keep it apart. Returns splits added.

        A split is recorded between the separated node and every customer record of the rest
        of the customer, except records with the same customer id in other sources (the same
        record seen by events and orders), which go with it. Anonymous ids are not split: the
        next build attaches each to the side its events name, and drops those that name both.

        Parameters
        ----------
        customer
            The ``customer_key`` (``ck_...``) or the key of any node of that customer.
        node
            The node key to separate.
        by
            Who asked, for the audit trail.
        """
        _check_key(node)
        if not self.engine.exists(IDENTITY_MAP_TABLE):
            raise NotFoundError("no identity_map yet: run an identity build first")
        id_map = self.engine.read(IDENTITY_MAP_TABLE)
        keyed = id_map.mutate(node=key_expr(id_map.node_kind, id_map.node_source, id_map.node_id))
        if customer.startswith(("ck_", "an_")):
            key = customer
        else:
            _check_key(customer)
            found = self.engine.execute(keyed.filter(keyed.node == customer).select("customer_key"))
            if not found.num_rows:
                raise NotFoundError(f"node {customer} is not in identity_map")
            key = found["customer_key"][0].as_py()
        members = self.engine.execute(
            keyed.filter(keyed.customer_key == key).select("node", "node_id", "node_kind")
        )
        if not members.num_rows:
            raise NotFoundError(f"no customer {key} in identity_map")
        rows = members.to_pylist()
        target = next((r for r in rows if r["node"] == node), None)
        if target is None:
            raise NotFoundError(
                f"node {node} does not belong to customer {key}; nothing to split off"
            )
        customer_kind = NodeKind.CUSTOMER.value
        if target["node_kind"] == customer_kind:
            moving = {
                r["node"]
                for r in rows
                if r["node_kind"] == customer_kind and r["node_id"] == target["node_id"]
            }
        else:
            moving = {node}
        staying = {r["node"] for r in rows if r["node_kind"] == customer_kind} - moving
        if not staying:
            raise ValueError(
                f"customer {key} has no other customer record than {node}; nothing to split"
            )
        pairs = {ordered(a, b) for a in moving for b in staying}
        with self.store.session(write=True) as session:
            known = set(session.execute(select(IdentitySplit.node_a, IdentitySplit.node_b)).all())
            fresh = sorted(p for p in pairs if p not in {tuple(k) for k in known})
            now = datetime.now(UTC)
            session.add_all(
                IdentitySplit(node_a=a, node_b=b, reason=reason, created_by=by, created_at=now)
                for a, b in fresh
            )
        return len(fresh)

    def pending_reviews(self) -> pa.Table:
        """Pairs waiting for a person, most probable first; pairs decided since the build are
        left out.
        """
        if not self.engine.exists(REVIEW_QUEUE_TABLE):
            return REVIEW_QUEUE_SCHEMA.empty_table()
        queue = self.engine.execute(self.engine.read(REVIEW_QUEUE_TABLE))
        decided = self.decisions().select(["node_a", "node_b"])
        if decided.num_rows:
            queue = queue.join(decided, ["node_a", "node_b"], join_type="left anti")
        queue = queue.select(REVIEW_QUEUE_SCHEMA.names)
        return queue.sort_by(
            [("match_probability", "descending"), ("node_a", "ascending"), ("node_b", "ascending")]
        )

    # -- build -----------------------------------------------------------------------------------

    def _drop_scratch(self) -> None:
        for name in self.engine.tables():
            if name.startswith(_TMP):
                self.engine.drop(name)

    def build(
        self, as_of: date | None = None, probabilistic_pairs: pa.Table | None = None
    ) -> IdentityReport:
        """Rebuild ``identity_map``, ``merge_log`` and ``identity_review_queue`` (replaced as a
        whole) from the raw tables known at ``as_of``, the pairs and the store's decisions.
        """
        started = time.perf_counter()
        built_at = datetime.now(UTC).replace(microsecond=0)
        report = IdentityReport(as_of=as_of, built_at=built_at)
        settings = self.settings
        engine = self.engine
        self._drop_scratch()
        tables = extract_identifiers(
            engine,
            region=settings.region,
            hash_key=settings.hash_key,
            as_of=as_of,
            settings=settings,
            count=False,  # counted with the rest of the report, in one query
        )
        report.identifiers = dict(tables.counts)
        report.identifiers_rejected = tables.rejected
        cutoff = settings.cutoff(as_of)
        owners = sorted(customer_sources(engine, settings, cutoff))
        guarded = [] if settings.allow_same_source_merge else owners
        nodes = f"{_TMP}_nodes"
        write_table(engine, nodes, NODE_SCHEMA, nodes_expr(engine.read(IDENTIFIERS_TABLE), guarded))

        staged_map = f"{IDENTITY_MAP_TABLE}_next"
        staged_log = f"{MERGE_LOG_TABLE}_next"
        staged_queue = f"{REVIEW_QUEUE_TABLE}_next"
        decisions = self.decisions()
        splits = self.splits()
        pairs = _probable_pairs(probabilistic_pairs)
        with (
            registered(engine, f"{_TMP}_decisions", decisions) as decided,
            registered(engine, f"{_TMP}_splits", splits) as split_pairs,
            registered(engine, f"{_TMP}_pairs", pairs) as probable,
        ):
            node_table = engine.read(nodes)
            accepted = _both_known(
                decided.filter(decided.decision == IdentityDecisionKind.ACCEPT.value), node_table
            ).anti_join(split_pairs, ["node_a", "node_b"])
            split_table = split_pairs if splits.num_rows else None
            if decisions.num_rows and engine.scalar(accepted.count()):
                self._anchor_accepted(nodes, accepted)
                node_table = engine.read(nodes)

            edges, too_shared = shared_identifier_edges(
                engine.read(IDENTIFIERS_TABLE), settings, owners
            )
            links, busy_devices = event_edges(engine.read(LINKS_TABLE), settings)
            edges.append(links)
            if decisions.num_rows:
                edges.append(_accepted_edges(accepted))
            queue: ir.Table | None = None
            if pairs.num_rows:
                merge, queue = _route_pairs(probable, node_table, decided, split_pairs, settings)
                edges.append(merge)
            candidates = f"{_TMP}_candidates"
            write_table(engine, candidates, EDGE_SCHEMA, dedupe_edges(edges))
            guarded_edges = f"{_TMP}_edges"
            write_table(
                engine,
                guarded_edges,
                EDGE_SCHEMA,
                guard_edges(engine.read(candidates), node_table, split_table),
            )
            resolution = resolve_conflicts(
                engine, nodes=nodes, edges=guarded_edges, splits=split_table, prefix=_TMP
            )
            report.components_split = resolution.components_split
            report.iterations = resolution.iterations

            labels = engine.read(resolution.labels)
            report.nodes = write_table(
                engine,
                staged_map,
                IDENTITY_MAP_SCHEMA,
                _identity_map(_members(node_table, labels), built_at, as_of),
            )
            write_table(
                engine,
                staged_log,
                MERGE_LOG_SCHEMA,
                _merge_log(engine.read(resolution.edges), engine.read(staged_map), built_at),
            )
            report.review_queue = write_table(
                engine,
                staged_queue,
                REVIEW_QUEUE_SCHEMA,
                *(() if queue is None else (_queue(queue, labels, built_at),)),
            )
            lost = engine.read(candidates).anti_join(
                engine.read(resolution.edges), ["node_a", "node_b", "reason"]
            )
            _tally(
                engine,
                report,
                [engine.read(staged_map), engine.read(staged_log), engine.read(IDENTIFIERS_TABLE)],
                lost,
                too_shared,
                busy_devices,
            )
        replace_tables(
            engine,
            {
                IDENTITY_MAP_TABLE: (staged_map, IDENTITY_MAP_SCHEMA),
                MERGE_LOG_TABLE: (staged_log, MERGE_LOG_SCHEMA),
                REVIEW_QUEUE_TABLE: (staged_queue, REVIEW_QUEUE_SCHEMA),
            },
        )
        self._drop_scratch()
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _anchor_accepted(self, nodes: str, accepted: ir.Table) -> None:
        """Records a person accepted as one share an anchor: the same-source guard lets them be."""
        engine = self.engine
        anchors = connected_components(engine, accepted, f"{_TMP}_anchor")
        staged = f"{_TMP}_nodes_anchored"
        node_table, labels = engine.read(nodes), engine.read(anchors.table)
        joined = node_table.left_join(labels, node_table.node == labels.node)
        write_table(
            engine,
            staged,
            NODE_SCHEMA,
            joined.select(
                node=node_table.node,
                node_source=node_table.node_source,
                node_id=node_table.node_id,
                node_kind=node_table.node_kind,
                guarded=node_table.guarded,
                anchor=ibis.coalesce(labels.label, node_table.anchor),
            ),
        )
        write_table(engine, nodes, NODE_SCHEMA, engine.read(staged))
        engine.drop(staged)
        engine.drop(anchors.table)


# -- pieces of the build --------------------------------------------------------------------


def _probable_pairs(pairs: pa.Table | None) -> pa.Table:
    """The matcher's pairs as ordered node keys with weight and probability."""
    if pairs is None or pairs.num_rows == 0:
        return _PROBABLE_SCHEMA.empty_table()
    missing = [c for c in PROBABILISTIC_COLUMNS if c not in pairs.column_names]
    if missing:
        raise ValueError(
            f"probabilistic_pairs lacks column(s) {', '.join(missing)}; expected "
            f"{', '.join(PROBABILISTIC_COLUMNS)}"
        )
    # The matcher compares customer records, so both sides are customer nodes: c:<source>:<id>.
    a, b = (
        pc.binary_join_element_wise(
            "c",
            pairs[f"node_{s}_source"].cast(pa.string()),
            pairs[f"node_{s}_id"].cast(pa.string()),
            ":",
        )
        for s in "ab"
    )
    low = pc.min_element_wise(a, b)
    high = pc.max_element_wise(a, b)
    # A matcher that decides per pair (jingzhun's splink matcher does) may hold a pair back
    # from merging whatever its probability: such a pair can reach review, never a merge.
    if "decision" in pairs.column_names:
        decision = pairs["decision"].cast(pa.string())
        held = pc.fill_null(pc.not_equal(decision, "merge"), True)
    else:
        held = pa.repeat(pa.scalar(False), pairs.num_rows)
    out = pa.table(
        {
            "node_a": low,
            "node_b": high,
            "match_weight": pairs["match_weight"].cast(pa.float64()),
            "match_probability": pairs["match_probability"].cast(pa.float64()),
            "held": held,
        },
        schema=_PROBABLE_SCHEMA,
    )
    keep = pc.not_equal(low, high)
    if "decision" in pairs.column_names:
        keep = pc.and_(
            keep, pc.fill_null(pc.not_equal(pairs["decision"].cast(pa.string()), "no"), True)
        )
    return out.filter(keep)


def _both_known(pairs: ir.Table, nodes: ir.Table) -> ir.Table:
    """Pairs whose two nodes are in the graph (a pair about records not loaded yet waits)."""
    first, second = nodes.select("node").view(), nodes.select("node").view()
    pairs = pairs.semi_join(first, pairs.node_a == first.node)
    return pairs.semi_join(second, pairs.node_b == second.node)


def _route_pairs(
    probable: ir.Table,
    nodes: ir.Table,
    decided: ir.Table,
    splits: ir.Table,
    settings: IdentitySettings,
) -> tuple[ir.Table, ir.Table]:
    """Split the matcher's pairs into merge edges and review candidates.

    Pairs that a person decided (either way) or split never come back: an accept is already
    an edge, a reject or split forbids one. Pairs of two customer ids of one customer source
    go to review even above the merge threshold, unless same-source merges are allowed.
    """
    pairs = _both_known(probable, nodes)
    pairs = pairs.anti_join(decided, ["node_a", "node_b"]).anti_join(splits, ["node_a", "node_b"])
    pairs = pairs.view()  # a fresh relation, so that the joins below can name its columns
    na, nb = nodes.view(), nodes.view()
    joined = pairs.join(na, pairs.node_a == na.node).join(nb, pairs.node_b == nb.node)
    same_source = na.guarded & nb.guarded & (na.node_source == nb.node_source)
    strong = (pairs.match_probability >= settings.merge_threshold) & ~pairs.held
    weight = pairs.match_weight.round(2).cast("string")
    merge = joined.filter(strong & ~same_source).select(
        node_a=pairs.node_a,
        node_b=pairs.node_b,
        reason=ibis.literal(Reason.PROBABILISTIC.value),
        evidence="weight " + weight,
    )
    review = joined.filter(
        (pairs.match_probability >= settings.review_threshold) & (~strong | same_source)
    ).select(
        node_a=pairs.node_a,
        node_b=pairs.node_b,
        match_weight=pairs.match_weight,
        match_probability=pairs.match_probability,
        why=ibis.cases((strong, WHY_SAME_SOURCE), else_=WHY_BETWEEN),
    )
    return merge, review


def _accepted_edges(accepted: ir.Table) -> ir.Table:
    weight = accepted.match_weight.round(2).cast("string")
    return accepted.select(
        node_a=accepted.node_a,
        node_b=accepted.node_b,
        reason=ibis.literal(Reason.REVIEW_ACCEPT.value),
        evidence=ibis.cases(
            (accepted.match_weight.notnull(), "weight " + weight),
            else_="accepted by a reviewer",
        ),
    )


def _tally(
    engine: Engine,
    report: IdentityReport,
    outputs: list[ir.Table],
    lost: ir.Table,
    too_shared: ir.Table,
    busy_devices: ir.Table,
) -> None:
    """Fill the report's counts with one query (each query is a job on Spark)."""

    def rows(metric: str, key: ir.StringValue | str, n: ir.IntegerValue) -> dict[str, ir.Value]:
        return {
            "metric": ibis.literal(metric),
            "key": key if isinstance(key, ir.Value) else ibis.literal(key),
            "n": n.cast("int64"),
        }

    id_map, log, identifiers = outputs
    prefix = id_map.customer_key.substr(0, 3)
    keys = id_map.group_by(prefix=prefix).agg(n=id_map.customer_key.nunique())
    merges = log.group_by("reason").agg(n=log.count())
    dropped = lost.group_by("reason").agg(n=lost.count())
    kinds = identifiers.group_by("kind").agg(n=identifiers.count())
    parts = [
        kinds.select(**rows("identifiers", kinds.kind, kinds.n)),
        keys.select(**rows("keys", keys.prefix, keys.n)),
        merges.select(**rows("merges", merges.reason, merges.n)),
        dropped.select(**rows("dropped", dropped.reason, dropped.n)),
        too_shared.agg(**rows("too_shared", "", too_shared.count())),
        busy_devices.agg(**rows("busy_devices", "", busy_devices.count())),
    ]
    found: dict[str, dict[str, int]] = {}
    for row in engine.execute(ibis.union(*parts)).to_pylist():
        found.setdefault(row["metric"], {})[row["key"]] = int(row["n"])
    report.identifiers = {**found.get("identifiers", {}), **report.identifiers}
    report.customers = found.get("keys", {}).get("ck_", 0)
    report.anonymous_visitors = found.get("keys", {}).get("an_", 0)
    report.merges = dict(sorted(found.get("merges", {}).items()))
    report.edges_dropped_by_guards = dict(sorted(found.get("dropped", {}).items()))
    report.values_too_shared = found.get("too_shared", {}).get("", 0)
    report.anonymous_ids_too_shared = found.get("busy_devices", {}).get("", 0)


def _members(nodes: ir.Table, labels: ir.Table) -> ir.Table:
    """Every node with its component label (a node without edges is its own component)."""
    joined = nodes.left_join(labels, nodes.node == labels.node)
    return joined.select(
        node=nodes.node,
        node_source=nodes.node_source,
        node_id=nodes.node_id,
        node_kind=nodes.node_kind,
        label=ibis.coalesce(labels.label, nodes.node),
    )


def _identity_map(members: ir.Table, built_at: datetime, as_of: date | None) -> ir.Table:
    """customer_key per node: ``ck_`` + 16 hex of sha256 of the component's smallest customer
    node key, so a rebuild gives the same keys; ``an_`` + the same of the smallest anonymous
    node for visitors never identified.
    """
    members = members.view()
    is_customer = members.node_kind == NodeKind.CUSTOMER.value
    per_label = members.group_by("label").agg(
        first_customer=members.node.min(where=is_customer), first_node=members.node.min()
    )
    key = ibis.cases(
        (
            per_label.first_customer.notnull(),
            "ck_" + per_label.first_customer.hexdigest("sha256").substr(0, 16),
        ),
        else_="an_" + per_label.first_node.hexdigest("sha256").substr(0, 16),
    )
    keyed = per_label.select("label", customer_key=key).view()
    joined = members.join(keyed, members.label == keyed.label)
    return joined.select(
        node_source=members.node_source,
        node_id=members.node_id,
        node_kind=members.node_kind,
        customer_key=keyed.customer_key,
        built_at=ibis.literal(built_at),
        as_of=ibis.literal(as_of, type="date") if as_of else ibis.null().cast("date"),
    )


def _merge_log(edges: ir.Table, id_map: ir.Table, built_at: datetime) -> ir.Table:
    keyed = id_map.select(
        node=key_expr(id_map.node_kind, id_map.node_source, id_map.node_id),
        customer_key=id_map.customer_key,
    )
    joined = edges.join(keyed, edges.node_a == keyed.node)
    return joined.select(
        customer_key=keyed.customer_key,
        node_a=edges.node_a,
        node_b=edges.node_b,
        reason=edges.reason,
        evidence=edges.evidence,
        built_at=ibis.literal(built_at),
    )


def _queue(review: ir.Table, labels: ir.Table, built_at: datetime) -> ir.Table:
    """Review candidates that the build did not already put together."""
    review, la, lb = review.view(), labels.view(), labels.view()
    together = (
        review.join(la, review.node_a == la.node)
        .join(lb, review.node_b == lb.node)
        .filter(la.label == lb.label)
        .select(review.node_a, review.node_b)
    )
    waiting = review.anti_join(together, ["node_a", "node_b"])
    return waiting.select(
        "node_a",
        "node_b",
        "match_weight",
        "match_probability",
        "why",
        built_at=ibis.literal(built_at),
    )
