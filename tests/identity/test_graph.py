"""The identity graph: components in the warehouse, guards, conflicts settled at the weakest
evidence.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from jingzhun.core import EngineKind, EngineSettings
from jingzhun.engine import Engine, connect
from jingzhun.identity import connected_components, parse_node_key
from jingzhun.identity._graph import (
    EDGE_SCHEMA,
    NODE_SCHEMA,
    guard_edges,
    resolve_conflicts,
)


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[Engine]:
    with connect(EngineSettings(kind=EngineKind.DUCKDB), tmp_path) as engine:
        yield engine


def labels_of(engine: Engine, table: str) -> dict[str, str]:
    rows = engine.execute(engine.read(table)).to_pylist()
    return {r["node"]: r["label"] for r in rows}


def test_connected_components_in_the_warehouse(engine: Engine) -> None:
    # A chain of 17 nodes listed in random order (many rounds without pointer jumping), a star,
    # a pair, and two edges repeated in both directions.
    chain = [f"c:src:n{i:02d}" for i in range(17)]
    pairs = list(itertools.pairwise(chain))
    random.Random(3).shuffle(pairs)
    pairs += [("c:src:s0", f"a:web:s{i}") for i in range(1, 6)]
    pairs += [("a:web:x", "a:web:y"), ("a:web:y", "a:web:x"), (chain[3], chain[2])]
    edges = pa.table(
        {
            "node_a": [a for a, _ in pairs],
            "node_b": [b for _, b in pairs],
            "reason": ["shared_id"] * len(pairs),
            "evidence": [""] * len(pairs),
        },
        schema=EDGE_SCHEMA,
    )
    engine.create("edges", EDGE_SCHEMA)
    engine.write("edges", edges)
    found = connected_components(engine, engine.read("edges"), "cc")
    labels = labels_of(engine, found.table)
    assert {n: labels[n] for n in chain} == dict.fromkeys(chain, "c:src:n00")
    assert {labels[f"a:web:s{i}"] for i in range(1, 6)} == {"a:web:s1"}  # smallest key wins
    assert labels["c:src:s0"] == "a:web:s1"
    assert labels["a:web:x"] == labels["a:web:y"] == "a:web:x"
    assert len(labels) == 17 + 6 + 2
    # Pointer jumping: a 17-node chain needs far fewer than 16 rounds.
    assert 2 <= found.iterations <= 5
    assert [t for t in engine.tables() if t.startswith("cc")] == [found.table]


def test_components_of_nothing(duck: Engine) -> None:
    duck.create("edges", EDGE_SCHEMA)
    found = connected_components(duck, duck.read("edges"), "cc")
    assert (found.iterations, duck.count(found.table)) == (1, 0)


# -- guards and conflicts -------------------------------------------------------------------------


def write_graph(
    engine: Engine, edges: list[tuple[str, str, str]], guarded: set[str] = frozenset()
) -> None:
    """Nodes from the edges' keys; customer sources in ``guarded``."""
    keys = sorted({k for a, b, _ in edges for k in (a, b)})
    rows = []
    for key in keys:
        source, node_id, kind = parse_node_key(key)
        rows.append(
            {
                "node": key,
                "node_source": source,
                "node_id": node_id,
                "node_kind": kind.value,
                "guarded": kind.value == "customer" and source in guarded,
                "anchor": key,
            }
        )
    engine.create("nodes", NODE_SCHEMA)
    engine.write("nodes", pa.Table.from_pylist(rows, schema=NODE_SCHEMA))
    engine.create("edges", EDGE_SCHEMA)
    engine.write(
        "edges",
        pa.Table.from_pylist(
            [
                {"node_a": min(a, b), "node_b": max(a, b), "reason": r, "evidence": ""}
                for a, b, r in edges
            ],
            schema=EDGE_SCHEMA,
        ),
    )


def groups(engine: Engine, labels: str, nodes: str = "nodes") -> set[frozenset[str]]:
    """Components as sets of node keys, nodes without edges included."""
    found = labels_of(engine, labels)
    every = engine.execute(engine.read(nodes))["node"].to_pylist()
    by_label: dict[str, set[str]] = {}
    for node in every:
        by_label.setdefault(found.get(node, node), set()).add(node)
    return {frozenset(g) for g in by_label.values()}


def kept_edges(engine: Engine, table: str) -> set[tuple[str, str, str]]:
    rows = engine.execute(engine.read(table)).to_pylist()
    return {(r["node_a"], r["node_b"], r["reason"]) for r in rows}


def test_a_device_identified_as_two_customers_links_neither(duck: Engine) -> None:
    write_graph(
        duck,
        [
            ("a:web:kiosk", "c:web:W1", "identify_event"),
            ("a:web:kiosk", "c:web:W2", "identify_event"),
            ("a:web:phone1", "c:web:W1", "identify_event"),
            ("a:web:phone1", "a:web:tablet1", "alias_event"),
            ("c:web:W2", "c:shop:W2", "shared_id"),
        ],
        guarded={"web"},
    )
    done = resolve_conflicts(duck, nodes="nodes", edges="edges", splits=None, prefix="t")
    assert groups(duck, done.labels) == {
        frozenset({"c:web:W1", "a:web:phone1", "a:web:tablet1"}),
        frozenset({"c:web:W2", "c:shop:W2"}),
        frozenset({"a:web:kiosk"}),
    }
    assert done.components_split == 1
    assert ("a:web:kiosk", "c:web:W1", "identify_event") not in kept_edges(duck, done.edges)
    assert not [
        t for t in duck.tables() if t.startswith("t_") and t not in (done.labels, done.edges)
    ]


def test_a_conflict_is_settled_at_the_weakest_evidence(duck: Engine) -> None:
    # A CRM record shares an e-mail with web customer W1 and a phone with web customer W2:
    # the e-mail is the stronger evidence, so the record goes with W1; W2 keeps its device.
    write_graph(
        duck,
        [
            ("c:crm:7", "c:web:W1", "shared_email"),
            ("c:crm:7", "c:web:W2", "shared_phone"),
            ("a:web:A2", "c:web:W2", "identify_event"),
        ],
        guarded={"web", "crm"},
    )
    done = resolve_conflicts(duck, nodes="nodes", edges="edges", splits=None, prefix="t")
    assert groups(duck, done.labels) == {
        frozenset({"c:crm:7", "c:web:W1"}),
        frozenset({"c:web:W2", "a:web:A2"}),
    }
    assert kept_edges(duck, done.edges) == {
        ("c:crm:7", "c:web:W1", "shared_email"),
        ("a:web:A2", "c:web:W2", "identify_event"),
    }


def test_a_record_sharing_one_address_with_two_customers_joins_neither(duck: Engine) -> None:
    write_graph(
        duck,
        [
            ("c:crm:7", "c:web:W1", "shared_email"),
            ("c:crm:7", "c:web:W2", "shared_email"),
            ("c:shop:W1", "c:web:W1", "shared_id"),
        ],
        guarded={"web"},
    )
    done = resolve_conflicts(duck, nodes="nodes", edges="edges", splits=None, prefix="t")
    assert groups(duck, done.labels) == {
        frozenset({"c:crm:7"}),
        frozenset({"c:web:W1", "c:shop:W1"}),
        frozenset({"c:web:W2"}),
    }


def test_components_without_conflict_are_left_alone(duck: Engine) -> None:
    write_graph(
        duck,
        [("c:crm:1", "c:web:W1", "shared_phone"), ("a:web:A", "c:web:W1", "identify_event")],
        guarded={"web", "crm"},
    )
    done = resolve_conflicts(duck, nodes="nodes", edges="edges", splits=None, prefix="t")
    assert done.components_split == 0
    assert done.edges == "edges"
    assert groups(duck, done.labels) == {frozenset({"c:crm:1", "c:web:W1", "a:web:A"})}


def test_a_split_pair_stays_apart_even_through_a_chain(duck: Engine) -> None:
    write_graph(
        duck,
        [
            ("c:crm:1", "c:shop:7", "shared_email"),
            ("c:shop:7", "c:web:W1", "shared_phone"),
            ("c:crm:1", "c:web:W1", "probabilistic"),
        ],
    )
    splits = pa.table({"node_a": ["c:crm:1"], "node_b": ["c:web:W1"]})
    registered = duck.register("splits", splits)
    guarded = guard_edges(duck.read("edges"), duck.read("nodes"), registered)
    duck.create("guarded", EDGE_SCHEMA)
    duck.write("guarded", guarded)
    assert ("c:crm:1", "c:web:W1", "probabilistic") not in kept_edges(duck, "guarded")
    done = resolve_conflicts(duck, nodes="nodes", edges="guarded", splits=registered, prefix="t")
    assert groups(duck, done.labels) == {
        frozenset({"c:crm:1", "c:shop:7"}),  # the e-mail outranks the phone
        frozenset({"c:web:W1"}),
    }


def test_guard_drops_same_source_edges_unless_accepted(duck: Engine) -> None:
    write_graph(
        duck,
        [
            ("c:crm:1", "c:crm:2", "shared_email"),
            ("c:crm:1", "c:crm:3", "review_accept"),
            ("c:crm:1", "c:web:W1", "shared_email"),
            ("c:shop:1", "c:shop:2", "shared_phone"),  # not a customer source: references
        ],
        guarded={"crm"},
    )
    kept = guard_edges(duck.read("edges"), duck.read("nodes"), None)
    assert {(r["node_a"], r["node_b"]) for r in duck.execute(kept).to_pylist()} == {
        ("c:crm:1", "c:crm:3"),
        ("c:crm:1", "c:web:W1"),
        ("c:shop:1", "c:shop:2"),
    }
