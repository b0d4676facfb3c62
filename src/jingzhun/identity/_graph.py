"""The deterministic identity graph: edges from shared identifiers and events, connected
components computed in the warehouse, and the guards that keep different people apart.

Everything here is an Ibis expression run through the engine seam, so it runs unchanged on
DuckDB and Spark; each propagation step is written to a table, so Spark never holds a long
lineage in memory.

Guards, in order:

1. A value held by more than ``max_nodes_per_identifier`` distinct customer ids does not link
   (shared shop address, staff placeholder); blocklisted values never reach the graph.
2. An anonymous id identified as more customers than that links none of them (a kiosk).
3. Edges that directly join two different customer ids of one customer source, or two nodes
   a person split apart (``identity_splits``), are dropped before components are computed.
4. A component that still holds such a pair, through a chain of other nodes, is taken apart
   (``resolve_conflicts``): its weakest evidence goes first, and a node that ties together
   several customers at that level (a hub) loses its edges before anything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from jingzhun.core import EngineError
from jingzhun.engine import Engine
from jingzhun.identity._identifiers import (
    IdentifierKind,
    IdentitySettings,
    NodeKind,
    Reason,
    key_expr,
    mask_expr,
    write_table,
)

EDGE_SCHEMA = pa.schema(
    [
        ("node_a", pa.string()),
        ("node_b", pa.string()),
        ("reason", pa.string()),
        ("evidence", pa.string()),
    ]
)
NODE_SCHEMA = pa.schema(
    [
        ("node", pa.string()),
        ("node_source", pa.string()),
        ("node_id", pa.string()),
        ("node_kind", pa.string()),
        ("guarded", pa.bool_()),  # a customer record of a customer source
        ("anchor", pa.string()),  # same anchor: a person accepted them as one customer
    ]
)
LABEL_SCHEMA = pa.schema([("node", pa.string()), ("label", pa.string())])
_BAD_SCHEMA = pa.schema([("label", pa.string())])

# Evidence from weakest to strongest: a conflict is resolved by giving up the weakest first.
# A reviewer's accept is the strongest; a split (never together) beats every edge.
TIERS: tuple[tuple[Reason, ...], ...] = (
    (Reason.PROBABILISTIC,),
    (Reason.ALIAS_EVENT, Reason.IDENTIFY_EVENT),
    (Reason.SHARED_PHONE,),
    (Reason.SHARED_EMAIL,),
    (Reason.SHARED_ID,),
    (Reason.REVIEW_ACCEPT,),
)
_SHARED_REASONS = {
    IdentifierKind.EMAIL.value: Reason.SHARED_EMAIL.value,
    IdentifierKind.PHONE.value: Reason.SHARED_PHONE.value,
    IdentifierKind.ID_HASH.value: Reason.SHARED_ID.value,
}
MAX_ITERATIONS = 64


def _pair(a: ir.StringValue, b: ir.StringValue) -> tuple[ir.StringValue, ir.StringValue]:
    return ibis.least(a, b), ibis.greatest(a, b)


def _edge(
    a: ir.StringValue, b: ir.StringValue, reason: ir.StringValue | str, evidence: ir.StringValue
) -> dict[str, ir.Value]:
    low, high = _pair(a, b)
    return {
        "node_a": low,
        "node_b": high,
        "reason": reason if isinstance(reason, ir.Value) else ibis.literal(reason),
        "evidence": evidence.cast("string"),
    }


# -- nodes and candidate edges --------------------------------------------------------------------


def nodes_expr(identifiers: ir.Table, guarded_sources: Sequence[str]) -> ir.Table:
    """One row per node, with its key and whether the same-source guard covers it."""
    nodes = identifiers.select("node_source", "node_id", "node_kind").distinct()
    guarded = (nodes.node_kind == NodeKind.CUSTOMER.value) & nodes.node_source.isin(
        list(guarded_sources) or [""]
    )
    key = key_expr(nodes.node_kind, nodes.node_source, nodes.node_id)
    return nodes.select(
        node=key,
        node_source=nodes.node_source,
        node_id=nodes.node_id,
        node_kind=nodes.node_kind,
        guarded=guarded,
        anchor=key,
    )


def shared_identifier_edges(
    identifiers: ir.Table, settings: IdentitySettings, customer_sources: list[str]
) -> tuple[list[ir.Table], ir.Table]:
    """Edges between nodes that hold the same e-mail, phone, ID hash, customer or device id;
    and the (kind, value) pairs held by too many customer ids to link.

    ``customer_sources`` own their customer ids; other sources' customer ids refer to them.
    """
    ids = identifiers.mutate(node=key_expr(identifiers.node_kind, identifiers.node_source,
                                           identifiers.node_id))  # fmt: skip
    edges: list[ir.Table] = []

    # E-mail, phone, ID hash: unless too many distinct customer ids hold the value.
    contact = ids.filter(ids.kind.isin(list(_SHARED_REASONS)))
    holders = contact.group_by(["kind", "value"]).agg(records=contact.node_id.nunique())
    too_shared = holders.filter(holders.records > settings.max_nodes_per_identifier)
    linkable = contact.anti_join(too_shared, ["kind", "value"])
    a, b = linkable.view(), linkable.view()
    joined = a.join(b, [a.kind == b.kind, a.value == b.value, a.node < b.node])
    edges.append(
        joined.select(
            **_edge(
                a.node,
                b.node,
                a.kind.substitute(_SHARED_REASONS),
                a.kind.substitute({"id_hash": "id "}, else_=a.kind + " ") + mask_expr(a.value),
            )
        )
    )

    # Customer ids: a source that loads customers owns its ids; events and orders refer to
    # them. References link to each other and to the one customer source holding the id. Two
    # customer sources with the same id do not link (numbering is per system), and a reference
    # to an id that several customer sources hold links to none of them: it is ambiguous.
    customer_ids = ids.filter(
        (ids.kind == IdentifierKind.CUSTOMER_ID.value) & (ids.node_kind == NodeKind.CUSTOMER.value)
    )
    owned = customer_ids.node_source.isin(customer_sources or [""])
    records, references = customer_ids.filter(owned), customer_ids.filter(~owned)
    owners = records.group_by("value").agg(sources=records.node_source.nunique())
    unique_records = records.semi_join(owners.filter(owners.sources == 1), "value")
    r1, r2 = references.view(), references.view()
    same_ref = r1.join(r2, [r1.value == r2.value, r1.node < r2.node])
    edges.append(
        same_ref.select(
            **_edge(r1.node, r2.node, Reason.SHARED_ID.value, "customer_id " + mask_expr(r1.value))
        )
    )
    ref, rec = references.view(), unique_records.view()
    to_record = ref.join(rec, ref.value == rec.value)
    edges.append(
        to_record.select(
            **_edge(
                ref.node, rec.node, Reason.SHARED_ID.value, "customer_id " + mask_expr(ref.value)
            )
        )
    )

    # The same device id seen by two event sources (web collector and a file export, say).
    devices = ids.filter(ids.kind == IdentifierKind.ANONYMOUS_ID.value)
    d1, d2 = devices.view(), devices.view()
    same_device = d1.join(d2, [d1.value == d2.value, d1.node < d2.node])
    edges.append(
        same_device.select(
            **_edge(d1.node, d2.node, Reason.SHARED_ID.value, "anonymous_id " + mask_expr(d1.value))
        )
    )
    return edges, too_shared.select("kind", "value")


def event_edges(links: ir.Table, settings: IdentitySettings) -> tuple[ir.Table, ir.Table]:
    """Links from events, except those of an anonymous id identified as too many customers;
    and those anonymous nodes.
    """
    identified = links.filter(links.node_b.startswith("c:"))
    per_device = identified.group_by("node_a").agg(customers=identified.node_b.nunique())
    shared = per_device.filter(per_device.customers > settings.max_nodes_per_identifier)
    kept = links.anti_join(shared, "node_a")
    as_b = shared.select(node_b="node_a").view()
    kept = kept.anti_join(as_b, "node_b")
    edges = kept.select(**_edge(kept.node_a, kept.node_b, kept.reason, "event " + kept.evidence))
    return edges, shared.select("node_a")


def dedupe_edges(edges: Sequence[ir.Table]) -> ir.Table:
    """One row per node pair and reason (the smallest evidence), no self-loops."""
    union = edges[0].union(*edges[1:]) if len(edges) > 1 else edges[0]
    union = union.filter(union.node_a != union.node_b)
    return union.group_by(["node_a", "node_b", "reason"]).agg(evidence=union.evidence.min())


def guard_edges(edges: ir.Table, nodes: ir.Table, splits: ir.Table | None) -> ir.Table:
    """Drop edges joining two customer ids of one customer source (unless a person accepted
    them as one), and edges joining a pair that was split apart.
    """
    na, nb = nodes.view(), nodes.view()
    same_source = (
        edges.join(na, edges.node_a == na.node)
        .join(nb, edges.node_b == nb.node)
        .filter(
            na.guarded
            & nb.guarded
            & (na.node_source == nb.node_source)
            & (na.anchor != nb.anchor)
            & (edges.reason != Reason.REVIEW_ACCEPT.value)
        )
        .select(edges.node_a, edges.node_b)
    )
    kept = edges.anti_join(same_source, ["node_a", "node_b"])
    if splits is not None:
        kept = kept.anti_join(splits, ["node_a", "node_b"])
    return kept


# -- connected components ---------------------------------------------------------------------


@dataclass
class Components:
    """Labels of every node that has an edge: the smallest node key of its component."""

    table: str
    iterations: int


def connected_components(engine: Engine, edges: ir.Table, name: str) -> Components:
    """Label every node with the smallest node key of its component, in the warehouse.

    Min-label propagation: each round, every node takes the smallest label among its own and
    its neighbours', then jumps to its label's label (pointer jumping: a chain shortens by
    half each round instead of by one step). Each round is written to a table; the loop stops
    when a count finds no edge whose two ends carry different labels. Then every component
    carries one label, and it is its smallest node, whose label never changes. Nodes without
    edges get no row. Most identity graphs are shallow and need one or two rounds.
    """
    pairs = edges.select("node_a", "node_b").view()
    adjacency = pairs.select(node=pairs.node_a, neighbour=pairs.node_b).union(
        pairs.select(node=pairs.node_b, neighbour=pairs.node_a)
    )
    current: str | None = None
    for iteration in range(1, MAX_ITERATIONS + 1):
        if current is None:  # every node starts as its own label
            offered = adjacency.select("node", label=adjacency.neighbour).union(
                adjacency.select("node", label=adjacency.node)
            )
        else:
            labels = engine.read(current)
            via = adjacency.join(labels, adjacency.neighbour == labels.node).select(
                node=adjacency.node, label=labels.label
            )
            offered = via.union(labels.select("node", "label"))
        step = offered.group_by("node").agg(label=offered.label.min())
        up = step.view()
        jumped = step.join(up, step.label == up.node).select(
            node=step.node, label=ibis.least(step.label, up.label)
        )
        following = f"{name}_{iteration}"
        written = write_table(engine, following, LABEL_SCHEMA, jumped)
        if current is not None:
            engine.drop(current)
        current = following
        if not written:
            return Components(current, iteration)
        la, lb = engine.read(current).view(), engine.read(current).view()
        apart = (
            pairs.join(la, pairs.node_a == la.node)
            .join(lb, pairs.node_b == lb.node)
            .filter(la.label != lb.label)
            .count()
        )
        if not engine.scalar(apart):
            return Components(current, iteration)
    raise EngineError(  # pragma: no cover - pointer jumping converges in O(log n) rounds
        f"connected components did not converge in {MAX_ITERATIONS} rounds"
    )


# -- conflicts ----------------------------------------------------------------------------------


def conflicts(nodes: ir.Table, labels: ir.Table, splits: ir.Table | None) -> ir.Table:
    """Labels of components that hold two customer ids of one customer source (counted by
    anchor) or both nodes of a split pair.
    """
    guarded = nodes.filter(nodes.guarded)
    placed = guarded.join(labels, guarded.node == labels.node).select(
        label=labels.label, node_source=guarded.node_source, anchor=guarded.anchor
    )
    per_source = placed.group_by(["label", "node_source"]).agg(ids=placed.anchor.nunique())
    bad = per_source.filter(per_source.ids > 1).select("label")
    if splits is not None:
        # select() first: view() of a view is the same relation, and the join needs two.
        la, lb = labels.select("node", "label").view(), labels.select("node", "label").view()
        split_together = (
            splits.join(la, splits.node_a == la.node)
            .join(lb, splits.node_b == lb.node)
            .filter(la.label == lb.label)
            .select(label=la.label)
        )
        bad = bad.union(split_together)
    return bad.distinct()


def _hubs(tier_edges: ir.Table, nodes: ir.Table) -> ir.Table:
    """Nodes whose edges of this tier reach two or more different customer ids."""
    directed = tier_edges.select(node=tier_edges.node_a, other=tier_edges.node_b).union(
        tier_edges.select(node=tier_edges.node_b, other=tier_edges.node_a)
    )
    customers = nodes.filter(nodes.node_kind == NodeKind.CUSTOMER.value)
    reached = directed.join(customers, directed.other == customers.node).select(
        node=directed.node, customer_id=customers.node_id
    )
    per_node = reached.group_by("node").agg(customers=reached.customer_id.nunique())
    return per_node.filter(per_node.customers >= 2).select("node")


@dataclass
class Resolution:
    """The components after every guard: final labels, the edges kept, what was given up."""

    labels: str
    edges: str
    iterations: int
    components_split: int = 0


class _Rebuild:
    """Scratch state of ``resolve_conflicts``: the labels of the edges kept so far (over the
    nodes they touch), the kept edges tier by tier, and the rounds run.
    """

    def __init__(self, engine: Engine, nodes: ir.Table, splits: ir.Table | None, prefix: str):
        self.engine = engine
        self.nodes = nodes
        self.splits = splits
        self.prefix = prefix
        self.step = 0
        self.iterations = 0
        self.labels: str | None = None  # node -> label under the kept edges
        self.kept: list[ir.Table] = []
        self.scratch: list[str] = []

    def attempt(self, tier_edges: ir.Table) -> tuple[ir.Table, Components, ir.Table]:
        """Components of the kept edges plus ``tier_edges``; returns the labels of every
        touched node, the components of the contracted tier edges, and the conflicting labels.

        The tier's edges are drawn between the components the kept edges formed, so the
        propagation runs on a small, shallow graph.
        """
        engine = self.engine
        self.step += 1
        edges = tier_edges.view()
        touched = edges.select(node=edges.node_a).union(edges.select(node=edges.node_b))
        if self.labels is None:
            contracted = edges.select("node_a", "node_b")
            base = touched.distinct().select("node", label=touched.node)
        else:
            kept = engine.read(self.labels)
            ka, kb = kept.view(), kept.view()
            joined = edges.left_join(ka, edges.node_a == ka.node).left_join(
                kb, edges.node_b == kb.node
            )
            contracted = joined.select(
                node_a=ibis.coalesce(ka.label, edges.node_a),
                node_b=ibis.coalesce(kb.label, edges.node_b),
            )
            every = touched.union(kept.select("node")).distinct()
            known = kept.view()
            with_kept = every.left_join(known, every.node == known.node)
            base = with_kept.select(node=every.node, label=ibis.coalesce(known.label, every.node))
        contracted = contracted.filter(contracted.node_a != contracted.node_b)
        found = connected_components(engine, contracted, f"{self.prefix}_try_{self.step}")
        self.iterations += found.iterations
        base = base.view()
        merged = engine.read(found.table)
        relabelled = (
            base.left_join(merged, base.label == merged.node)
            .select(node=base.node, label=ibis.coalesce(merged.label, base.label))
            .view()
        )
        return relabelled, found, conflicts(self.nodes, relabelled, self.splits)

    def keep(self, labels: ir.Table, found: Components, edges: ir.Table) -> None:
        """Make an attempt's labels the kept state, and ``edges`` part of the kept edges."""
        self.step += 1
        name = f"{self.prefix}_labels_{self.step}"
        write_table(self.engine, name, LABEL_SCHEMA, labels)
        self.engine.drop(found.table)
        if self.labels is not None:
            self.engine.drop(self.labels)
        self.labels = name
        self.kept.append(edges)

    def materialise(self, edges: ir.Table) -> ir.Table:
        """Write edges that depend on scratch tables, so those can go."""
        self.step += 1
        name = f"{self.prefix}_tier_{self.step}"
        write_table(self.engine, name, EDGE_SCHEMA, edges)
        self.scratch.append(name)
        return self.engine.read(name)


def resolve_conflicts(
    engine: Engine, *, nodes: str, edges: str, splits: ir.Table | None, prefix: str
) -> Resolution:
    """Components of ``edges``; components that break a guard are rebuilt so they do not.

    A component breaks a guard when it holds two customer ids of one customer source or a
    split pair. Only such components are rebuilt, from their own edges, tier by tier from the
    strongest evidence down (reviewer accepts, shared ids, e-mail, phone, events,
    probabilities): a tier whose edges create no conflict is kept whole. Where a tier does
    create one, its edges from hub nodes (a node whose edges of that tier reach two or more
    customer ids: a device identified as two people, a record sharing one address with two)
    inside the conflicting components are dropped; if a conflict remains, that tier's edges
    inside those components are dropped, so they stay as the stronger evidence left them.
    The conflict is thus settled at the weakest evidence that causes it, and merging two
    people is never the outcome.
    """
    node_table = engine.read(nodes)
    main = connected_components(engine, engine.read(edges), f"{prefix}_cc")
    bad_name = f"{prefix}_bad"
    bad_count = write_table(
        engine, bad_name, _BAD_SCHEMA, conflicts(node_table, engine.read(main.table), splits)
    )
    if not bad_count:
        engine.drop(bad_name)
        return Resolution(main.table, edges, main.iterations)

    labels = engine.read(main.table)
    in_bad = labels.semi_join(engine.read(bad_name), "label").select("node")
    all_edges = engine.read(edges)
    rework = f"{prefix}_rework"
    write_table(
        engine, rework, EDGE_SCHEMA, all_edges.semi_join(in_bad, all_edges.node_a == in_bad.node)
    )
    state = _Rebuild(engine, node_table, splits, prefix)
    state.iterations = main.iterations
    pending = engine.read(rework)
    present = set(engine.execute(pending.select("reason").distinct())["reason"].to_pylist())
    for tier in reversed(TIERS):
        reasons = [r.value for r in tier]
        if not present.intersection(reasons):
            continue
        pending = engine.read(rework)
        tier_edges = pending.filter(pending.reason.isin(reasons))
        relabelled, found, bad = state.attempt(tier_edges)
        if not engine.scalar(bad.count()):
            state.keep(relabelled, found, tier_edges)
            continue
        # Hubs of this tier inside the conflicting components lose this tier's edges.
        broken = relabelled.view().semi_join(bad.view(), "label").select("node")
        in_broken = tier_edges.node_a.isin(broken.node)
        hubs = _hubs(tier_edges.filter(in_broken), node_table)
        is_hub_edge = in_broken & (
            tier_edges.node_a.isin(hubs.node) | tier_edges.node_b.isin(hubs.node)
        )
        if engine.scalar(tier_edges.filter(is_hub_edge).count()):
            without_hubs = state.materialise(tier_edges.filter(~is_hub_edge))
            engine.drop(found.table)
            relabelled, found, bad = state.attempt(without_hubs)
            if not engine.scalar(bad.count()):
                state.keep(relabelled, found, without_hubs)
                continue
            tier_edges = without_hubs
        # Still in conflict: the tier's edges inside those components go.
        broken = relabelled.view().semi_join(bad.view(), "label").select("node")
        settled = state.materialise(tier_edges.filter(~tier_edges.node_a.isin(broken.node)))
        engine.drop(found.table)
        relabelled, found, _ = state.attempt(settled)
        state.keep(relabelled, found, settled)

    final_edges = f"{prefix}_final_edges"
    write_table(
        engine,
        final_edges,
        EDGE_SCHEMA,
        all_edges.anti_join(in_bad, all_edges.node_a == in_bad.node),
        *state.kept,
    )
    final_labels = f"{prefix}_final_labels"
    parts: list[ir.Table] = [labels.anti_join(in_bad, "node")]
    if state.labels is not None:
        parts.append(engine.read(state.labels))
    write_table(engine, final_labels, LABEL_SCHEMA, *parts)
    for name in (rework, bad_name, main.table, *state.scratch):
        engine.drop(name)
    if state.labels is not None:
        engine.drop(state.labels)
    return Resolution(final_labels, final_edges, state.iterations, bad_count)
