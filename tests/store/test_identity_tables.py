"""Migration 0002: the identity decision and split tables keep their promises."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from jingzhun.core import EngineError
from jingzhun.store import IdentityDecision, IdentitySplit, OperationalStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[OperationalStore]:
    with OperationalStore.open("sqlite:///state/operational.db", tmp_path) as opened:
        opened.migrate()
        yield opened


def _decision(decision: str, a: str = "c:crm:1", b: str = "c:web:W1") -> IdentityDecision:
    return IdentityDecision(
        node_a=a,
        node_b=b,
        decision=decision,
        decided_by="analyst",
        decided_at=datetime.now(UTC),
        match_weight=7.5,
    )


def test_migrations_reach_head_and_decisions_round_trip(store: OperationalStore) -> None:
    assert store.current_revision() == store.head_revision()
    with store.session(write=True) as session:
        session.add_all([_decision("reject"), _decision("accept")])
    with store.session() as session:
        rows = session.execute(
            select(IdentityDecision.decision, IdentityDecision.decided_at).order_by(
                IdentityDecision.id
            )
        ).all()
    assert [r.decision for r in rows] == ["reject", "accept"]  # history is kept
    assert all(r.decided_at.tzinfo is UTC for r in rows)


@pytest.mark.parametrize(
    "row",
    [_decision("maybe"), _decision("accept", a="c:crm:1", b="c:crm:1")],
    ids=["unknown decision", "a node with itself"],
)
def test_decisions_refuse_nonsense(store: OperationalStore, row: IdentityDecision) -> None:
    with pytest.raises(EngineError, match="CHECK constraint failed"), store.session() as session:
        session.add(row)


def test_a_split_is_recorded_once(store: OperationalStore) -> None:
    def split() -> IdentitySplit:
        return IdentitySplit(
            node_a="c:crm:1",
            node_b="c:web:W1",
            reason="unmerge",
            created_by="analyst",
            created_at=datetime.now(UTC),
        )

    with store.session(write=True) as session:
        session.add(split())
    with pytest.raises(EngineError, match="UNIQUE"), store.session(write=True) as session:
        session.add(split())
