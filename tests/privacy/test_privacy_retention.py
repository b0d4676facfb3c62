"""Retention (issue 11, item 4): rows older than a table's ``days`` in ``privacy.yml`` are
purged from the warehouse and the operational store; a dry run only counts them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from privacy_helpers import crm_project

from jingzhun.core import SpecError, load_project
from jingzhun.privacy import PrivacyService
from jingzhun.store import OperationalStore, Suppression
from jingzhun.workspace import Workspace

RULES = """\
retention:
  raw_events: {days: 30, column: occurred_at}
  quarantine: {days: 90}
  suppressions: {days: 365, column: created_at}
"""


def _events(days_ago: list[int], today: date) -> pa.Table:
    at = [datetime.combine(today, datetime.min.time(), UTC) - timedelta(days=d) for d in days_ago]
    return pa.table(
        {
            "event_id": [f"e{i}" for i in range(len(at))],
            "event_type": ["page"] * len(at),
            "occurred_at": pa.array(at, pa.timestamp("us", tz="UTC")),
            "_source": ["web"] * len(at),
            "_loaded_at": pa.array(at, pa.timestamp("us", tz="UTC")),
        }
    )


def test_retention_purges_old_rows_of_each_table(tmp_path: Path) -> None:
    root = crm_project(tmp_path / "crm", ["C-1,a@b.test,,true,,"])
    (root / "privacy.yml").write_text(RULES, encoding="utf-8")
    today = date(2024, 6, 30)
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
        events = _events([1, 10, 29, 31, 400], today)
        ws.engine.write("raw_events", events)
        with ws.store.session(write=True) as session:
            for days in (10, 400):
                session.add(
                    Suppression(
                        channel="email",
                        address=f"x{days}@b.test",
                        reason="bounce",
                        source="test",
                        created_at=datetime(2024, 6, 30, tzinfo=UTC) - timedelta(days=days),
                    )
                )
    project = load_project(root)
    with OperationalStore.open(project.settings.stores.operational, root) as store:
        store.migrate()
        service = PrivacyService(project, store)
        dry = service.retention(as_of=today, dry_run=True)
        assert dry.rows == {"raw_events": 2, "quarantine": 0, "suppressions": 1}
        assert service.requests() == []  # a dry run changes nothing and records nothing
        done = service.retention(as_of=today, by="ops")
        assert done.rows == dry.rows and done.request_id
        again = service.retention(as_of=today, dry_run=True)
        assert again.rows == {"raw_events": 0, "quarantine": 0, "suppressions": 0}
        with store.session() as session:
            assert [s.address for s in session.query(Suppression).all()] == ["x10@b.test"]
    with Workspace.open(root) as ws:
        kept = ws.engine.execute(ws.engine.read("raw_events")).column("event_id").to_pylist()
    assert sorted(kept) == ["e0", "e1", "e2"]


def test_retention_errors_name_the_table_and_column(tmp_path: Path) -> None:
    root = crm_project(tmp_path / "crm", ["C-1,a@b.test,,true,,"])
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
    project = load_project(root)
    with OperationalStore.open(project.settings.stores.operational, root) as store:
        store.migrate()
        (root / "privacy.yml").write_text("retention:\n  raw_customers: {days: 5, column: nope}\n")
        with pytest.raises(SpecError, match="raw_customers has no column 'nope'"):
            PrivacyService(project, store).retention(as_of=date(2024, 1, 1))
        (root / "privacy.yml").write_text("retention:\n  no_such_table: {days: 5}\n")
        with pytest.raises(SpecError, match="no table 'no_such_table'"):
            PrivacyService(project, store).retention(as_of=date(2024, 1, 1))
        (root / "privacy.yml").write_text("retention:\n  raw_events: {days: 0}\n")
        with pytest.raises(SpecError, match=r"privacy.yml:2"):
            PrivacyService(project, store).retention(as_of=date(2024, 1, 1))
