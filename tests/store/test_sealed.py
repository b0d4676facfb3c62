"""Addresses and consent subjects sealed at rest in the operational store (issue 11, item 2):
the database file holds no address in clear, lookups by equality and the unique constraint on
suppressions still work on sealed values, and a connection without the key refuses to hand
out sealed text as an address.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from jingzhun.core import EngineError
from jingzhun.store import Consent, OperationalStore, StoreCipher, Suppression

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ADDRESSES = ["ann.lee@shop.test", "bob.wu@shop.test", "447911123456"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[OperationalStore]:
    opened = OperationalStore.open("sqlite:///state/operational.db", tmp_path)
    opened.migrate()
    yield opened
    opened.close()


def _suppress(store: OperationalStore, address: str, channel: str = "email") -> None:
    with store.session(write=True) as session:
        session.add(
            Suppression(
                channel=channel,
                address=address,
                reason="unsubscribe",
                source="test",
                created_at=NOW,
            )
        )


def _consent(store: OperationalStore, subject: str) -> None:
    with store.session(write=True) as session:
        session.add(
            Consent(
                subject_kind="email",
                subject=subject,
                subject_source="",
                purpose="marketing",
                channel="email",
                status="granted",
                recorded_at=NOW,
                legal_basis="consent",
                source="test",
                recorded_by="test",
            )
        )


def _raw(tmp_path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(tmp_path / "state" / "operational.db") as db:
        return db.execute(sql).fetchall()


def test_sealed_on_disk_and_found_by_equality(store: OperationalStore, tmp_path: Path) -> None:
    store.seal_with(StoreCipher(secrets.token_bytes(32)))
    for address in ADDRESSES:
        _suppress(store, address)
        _consent(store, address)
    stored = [a for (a,) in _raw(tmp_path, "SELECT address FROM suppressions")]
    stored += [s for (s,) in _raw(tmp_path, "SELECT subject FROM consents")]
    assert len(stored) == 6 and all(str(v).startswith("jzs1:") for v in stored)
    with store.session() as session:
        found = session.scalars(
            select(Suppression.address).where(Suppression.address == "bob.wu@shop.test")
        ).all()
        subjects = session.scalars(
            select(Consent.subject).where(Consent.subject.in_(ADDRESSES[:2]))
        ).all()
    assert found == ["bob.wu@shop.test"]
    assert sorted(subjects) == ADDRESSES[:2]
    with pytest.raises(EngineError, match=r"UNIQUE"):
        _suppress(store, "ann.lee@shop.test")  # deterministic: the same address, the same text
    store.engine.dispose()
    with sqlite3.connect(tmp_path / "state" / "operational.db") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "state").iterdir())
    assert not [a for a in ADDRESSES if a.encode() in on_disk]


def test_without_the_key_sealed_values_are_refused(store: OperationalStore) -> None:
    store.seal_with(StoreCipher(secrets.token_bytes(32)))
    _suppress(store, "ann.lee@shop.test")
    store.seal_with(None)
    with store.session() as session, pytest.raises(EngineError, match="no key"):
        session.scalars(select(Suppression.address)).all()
    store.seal_with(StoreCipher(secrets.token_bytes(32)))  # someone else's key
    with store.session() as session, pytest.raises(EngineError, match="does not open"):
        session.scalars(select(Suppression.address)).all()


def test_clear_values_from_before_are_counted_and_sealed(
    store: OperationalStore, tmp_path: Path
) -> None:
    _suppress(store, "ann.lee@shop.test")
    _consent(store, "bob.wu@shop.test")
    cipher = StoreCipher(secrets.token_bytes(32))
    store.seal_with(cipher)
    assert store.clear_values() == {"consents.subject": 1, "suppressions.address": 1}
    with store.session() as session:  # clear values still read as they are
        assert session.scalars(select(Suppression.address)).all() == ["ann.lee@shop.test"]
    assert store.clear_values(seal=True) == {"consents.subject": 1, "suppressions.address": 1}
    assert store.clear_values() == {}
    assert _raw(tmp_path, "SELECT address FROM suppressions")[0][0] == cipher.seal(
        "ann.lee@shop.test"
    )
    with store.session() as session:
        assert session.scalars(
            select(Suppression.id).where(Suppression.address == "ann.lee@shop.test")
        ).all() == [1]
