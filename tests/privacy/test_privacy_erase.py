"""Erasure (issue 11, item 1): a customer of the demo (loaded, resolved, profiled, scored,
recommended, segmented, e-mailed through a real SMTP server) is erased; afterwards no table and
no file under the project holds any of their identifiers, and loading the same source data
again does not bring them back.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import sqlite3
import zipfile
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from privacy_helpers import CRM_HEADER, crm_project
from sqlalchemy import select

from jingzhun.core import NotFoundError, load_project
from jingzhun.demo._demo import DEMO_AS_OF
from jingzhun.ingest import TOMBSTONES_TABLE
from jingzhun.privacy import PrivacyService
from jingzhun.store import Delivery, OperationalStore
from jingzhun.workspace import Workspace

GENERATED = Path("data") / "generated"


def _pattern(identifier: str) -> re.Pattern[str]:
    if "@" in identifier:
        left, right = r"(?<![A-Za-z0-9._%+-])", r"(?![A-Za-z0-9-])"
    elif identifier.isdigit():
        left, right = r"(?<!\d)", r"(?!\d)"
    else:
        left, right = r"(?<![A-Za-z0-9])", r"(?![A-Za-z0-9])"
    return re.compile(left + re.escape(identifier) + right, re.IGNORECASE)


def _identifiers(root: Path) -> tuple[str, dict[str, str]]:
    """The first e-mailed customer and every identifier of theirs, read from the stores and the
    generator's files (not through the privacy package).
    """
    # the address is sealed at rest: read it through the workspace, which has the store's key
    with Workspace.open(root) as ws, ws.store.session() as session:
        first = session.scalars(select(Delivery).order_by(Delivery.id).limit(1)).one()
        key, address, status = first.customer_key, first.address, first.status
    assert status == "sent" and "@" in address
    con = duckdb.connect(str(root / "warehouse" / "warehouse.duckdb"), read_only=True)
    nodes = con.execute(
        "SELECT DISTINCT node_id, node_kind FROM identity_map WHERE customer_key = ?", [key]
    ).fetchall()
    con.close()
    ids = sorted({n for n, kind in nodes if kind == "customer"})
    devices = sorted({n for n, kind in nodes if kind == "anonymous"})
    customers = pq.read_table(root / GENERATED / "customers.parquet").to_pylist()
    records = [c for c in customers if c["customer_id"] in ids]
    orders = pq.read_table(root / GENERATED / "order_lines.parquet").to_pylist()
    found: dict[str, str] = {"customer_key": key, "address": address}
    for i, value in enumerate(ids):
        found[f"customer_id_{i}"] = value
    for i, value in enumerate(devices):
        found[f"device_{i}"] = value
    for i, record in enumerate(records):
        if record["email"]:
            found[f"email_{i}"] = record["email"]
        if record["phone"]:
            found[f"phone_{i}"] = record["phone"]
            found[f"phone_digits_{i}"] = re.sub(r"\D", "", record["phone"])
    for i, value in enumerate(sorted({o["order_id"] for o in orders if o["customer_id"] in ids})):
        found[f"order_{i}"] = value
    assert ids and devices and any(k.startswith("phone_") for k in found), found
    return key, found


def _texts_of_file(path: Path) -> list[str]:
    """The file's raw bytes and every decoded view of it (gzip, zip members, Parquet rows,
    SQLite and DuckDB rows), as text to search.
    """
    data = path.read_bytes()
    texts = [data.decode("latin-1")]
    if data[:2] == b"\x1f\x8b":
        texts.append(gzip.decompress(data).decode("latin-1"))
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            texts += [archive.read(n).decode("latin-1") for n in archive.namelist()]
    if data[:4] == b"PAR1":
        texts.append(json.dumps(pq.read_table(path).to_pylist(), default=str))
    if data.startswith(b"SQLite format 3\x00"):
        with sqlite3.connect(path) as db:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                rows = db.execute(f'SELECT * FROM "{table}"').fetchall()
                texts.append(repr(rows))
    if data[8:12] == b"DUCK":
        con = duckdb.connect(str(path), read_only=True)
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
            texts.append(
                repr(con.execute(f'SELECT CAST(COLUMNS(*) AS VARCHAR) FROM "{table}"').fetchall())
            )
        con.close()
    return texts


def _hits(root: Path, identifiers: dict[str, str], *, files: bool = True) -> list[str]:
    """Where any identifier is found: warehouse tables, store tables, every file's bytes."""
    patterns = {name: (value.lower(), _pattern(value)) for name, value in identifiers.items()}
    found: list[str] = []

    def look(where: str, text: str) -> None:
        lowered = text.lower()  # a plain substring test first: the boundary regex only on a hit
        found.extend(
            f"{name} in {where}"
            for name, (needle, pattern) in patterns.items()
            if needle in lowered and pattern.search(text)
        )

    con = duckdb.connect(str(root / "warehouse" / "warehouse.duckdb"), read_only=True)
    for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
        look(
            f"warehouse.{table}",
            repr(con.execute(f'SELECT CAST(COLUMNS(*) AS VARCHAR) FROM "{table}"').fetchall()),
        )
    con.close()
    with sqlite3.connect(root / "state" / "operational.db") as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            look(f"store.{table}", repr(db.execute(f'SELECT * FROM "{table}"').fetchall()))
    if files:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            for text in _texts_of_file(path):
                look(str(path.relative_to(root)), text)
    return sorted(set(found))


@pytest.mark.slow
def test_erase_leaves_no_trace_and_tombstones_stop_reingest(
    demo_copy: Path, tmp_path: Path
) -> None:
    root = demo_copy
    key, identifiers = _identifiers(root)
    before = _hits(root, identifiers)
    # the search can fail: every kind of identifier is there before the erasure
    for kind in ("customer_key", "address", "customer_id_0", "device_0", "phone_0", "order_0"):
        assert any(h.startswith(f"{kind} in ") for h in before), (kind, before)
    assert any(" in warehouse.recommendations" in h for h in before)
    assert any(" in store.deliveries" in h for h in before)
    originals = tmp_path / "originals"
    shutil.copytree(root / GENERATED, originals)

    project = load_project(root)
    with OperationalStore.open(project.settings.stores.operational, root) as store:
        store.migrate()
        service = PrivacyService(project, store)
        archive = service.archive_export(service.export(identifiers["address"], by="dpo"))
        report = service.erase(identifiers["address"], by="dpo")
        with pytest.raises(Exception, match="shredded"):
            service.read_archive(archive)  # crypto-shredded: the archived export is unreadable
        trail = service.requests()
    assert report.complete, report.to_dict()
    assert report.warehouse["raw_customers"] >= 1 and report.warehouse["recommendations"] >= 1
    assert report.store["deliveries"] == {"deleted": 1}
    assert report.tombstones >= len(identifiers) - 3
    assert [r["kind"] for r in trail[:2]] == ["erase", "export"]
    assert all(r["status"] == "ok" and key not in json.dumps(r) for r in trail)

    after = _hits(root, identifiers)
    assert after == [], after

    # The source system delivers the same records again (new files, same rows).
    for name in ("customers", "events", "order_lines"):
        table = pq.read_table(originals / f"{name}.parquet")
        pq.write_table(table, root / GENERATED / f"{name}.parquet", compression="gzip")
    with Workspace.open(root) as ws:
        load = ws.ingest.run()
        suppressed: dict[str, int] = {}
        for file in load.files:  # a source may read several files
            suppressed[file.source] = suppressed.get(file.source, 0) + file.rows_suppressed
        stones = ws.engine.execute(ws.engine.read(TOMBSTONES_TABLE)).to_pylist()
        ws.build(DEMO_AS_OF, probabilistic=False)
    assert load.ok
    files = [(f.source, f.status.value, f.rows_suppressed, f.tables) for f in load.files]
    assert suppressed["gen_customers"] >= 1 and suppressed["gen_events"] >= 1, files
    assert suppressed["gen_order_lines"] >= 1, files
    # tombstones hold keyed hashes, never the identifiers
    assert all(re.fullmatch(r"[0-9a-f]{64}", s["value_hash"]) for s in stones)
    assert (
        _hits(root, {k: v for k, v in identifiers.items() if k != "customer_key"}, files=False)
        == []
    )
    with Workspace.open(root) as ws:
        profiles = ws.engine.count("profiles")
    assert profiles > 0  # everybody else is back


def test_new_customer_with_consent_mode_lets_the_person_start_again(tmp_path: Path) -> None:
    root = crm_project(
        tmp_path / "crm",
        ["C-100001,ann.lee@shop.test,+44 7700 900123,true,,", "C-100002,bob.wu@shop.test,,true,,"],
    )
    (root / "privacy.yml").write_text("on_return: new_customer_with_consent\n", encoding="utf-8")
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
    project = load_project(root)
    with OperationalStore.open(project.settings.stores.operational, root) as store:
        store.migrate()
        report = PrivacyService(project, store).erase("ann.lee@shop.test", by="dpo")
    assert report.on_return == "new_customer_with_consent"
    assert report.warehouse["raw_customers"] == 1
    assert [f["path"] for f in report.files] == ["data/crm.csv"]
    assert "ann.lee" not in (root / "data" / "crm.csv").read_text()
    # the CRM sends her again, with a different phone format
    (root / "data" / "crm-2.csv").write_text(
        CRM_HEADER + "C-100001,Ann.Lee@shop.test,07700 900123,true,,\n", encoding="utf-8"
    )
    with Workspace.open(root) as ws:
        load = ws.ingest.run()
        rows = ws.engine.execute(ws.engine.read("raw_customers")).to_pylist()
    assert sum(f.rows_suppressed for f in load.files) == 0
    ann = [r for r in rows if r["customer_id"] == "C-100001"]
    assert len(ann) == 1 and ann[0]["email_consent"] is False  # back, but not contactable
    assert [r["email_consent"] for r in rows if r["customer_id"] == "C-100002"] == [True]


def test_suppress_mode_drops_a_returning_phone_in_another_format(tmp_path: Path) -> None:
    root = crm_project(tmp_path / "crm", ["C-100001,ann.lee@shop.test,+44 7700 900123,true,,"])
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
    project = load_project(root)
    with OperationalStore.open(project.settings.stores.operational, root) as store:
        store.migrate()
        PrivacyService(project, store).erase("C-100001", by="dpo")
    # a new record id, a new e-mail, but the same phone written nationally
    (root / "data" / "crm-2.csv").write_text(
        CRM_HEADER + "C-200002,ann@elsewhere.test,07700 900123,true,,\n", encoding="utf-8"
    )
    with Workspace.open(root) as ws:
        load = ws.ingest.run()
        assert ws.engine.count("raw_customers") == 0
    assert [f.rows_suppressed for f in load.files if f.file.endswith("crm-2.csv")] == [1]


def test_erase_of_an_unknown_identifier_is_a_clear_error(tmp_path: Path) -> None:
    root = crm_project(tmp_path / "crm", ["C-100001,ann.lee@shop.test,,true,,"])
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
    project = load_project(root)
    with OperationalStore.open(project.settings.stores.operational, root) as store:
        store.migrate()
        with pytest.raises(NotFoundError, match="no customer found"):
            PrivacyService(project, store).erase("W-nobody", by="dpo")


def test_store_rows_are_deleted_or_anonymised_and_the_audit_log_stays_append_only(
    tmp_path: Path,
) -> None:
    import datetime as dt

    from sqlalchemy import text

    from jingzhun.campaigns import Channel, ConsentLedger, ConsentRecord, Purpose, Status
    from jingzhun.store import AuditEntry, Consent, DataSubjectRequest

    root = crm_project(
        tmp_path / "crm",
        ["C-100001,ann.lee@shop.test,+44 7911 123456,true,,", "C-100002,bob.wu@shop.test,,true,,"],
    )
    now = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
        ConsentLedger(ws.store).record(
            [
                ConsentRecord("email", who, Purpose.MARKETING, Channel.EMAIL, Status.GRANTED, now)
                for who in ("Ann.Lee@shop.test", "bob.wu@shop.test")
            ]
        )
        with ws.store.session(write=True) as session:
            session.add(
                AuditEntry(
                    at=now,
                    principal="mo",
                    principal_kind="user",
                    action="pii_read",
                    resource="profile C-100001",
                    detail={"email": "ann.lee@shop.test", "fields": ["email"]},
                )
            )
            session.add(
                DataSubjectRequest(
                    kind="erase",
                    subject="ann.lee@shop.test",
                    customer_key=None,
                    status="pending",
                    requested_by="api",
                    requested_at=now,
                    note="",
                )
            )
        store_url = ws.project.settings.stores.operational
    project = load_project(root)
    with OperationalStore.open(store_url, root) as store:
        store.migrate()
        report = PrivacyService(project, store).erase("+44 7911 123456", by="dpo")
        assert report.store["consents"] == {"deleted": 1}
        assert report.store["audit_log"] == {"anonymised": 1}
        assert report.store["data_subject_requests"] == {"anonymised": 1}
        with store.session() as session:
            audit = session.query(AuditEntry).one()
            request = session.query(DataSubjectRequest).one()
            subjects = [c.subject for c in session.query(Consent)]
        marker = f"[erased:{report.request_id[:8]}]"
        assert audit.resource == f"profile {marker}" and audit.detail["email"] == marker
        assert audit.detail["fields"] == ["email"] and request.subject == marker
        assert subjects == ["bob.wu@shop.test"]
        with pytest.raises(Exception, match="append-only"), store.session(write=True) as session:
            session.execute(text("UPDATE audit_log SET principal = 'x'"))


def test_files_of_every_kind_are_cleaned_or_listed(tmp_path: Path) -> None:
    from jingzhun.core import EngineKind, EngineSettings
    from jingzhun.engine import connect

    root = crm_project(
        tmp_path / "crm",
        ["C-100001,ann.lee@shop.test,+44 7911 123456,true,,", "C-100002,bob.wu@shop.test,,true,,"],
    )
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
        customers = ws.engine.execute(ws.engine.read("raw_customers"))
    state = root / "state"
    (state / "collect").mkdir(parents=True)
    with sqlite3.connect(state / "collect" / "events.db") as db:  # the API's collection log
        db.execute("CREATE TABLE messages (seq INTEGER PRIMARY KEY, body TEXT)")
        for body in (
            {"type": "identify", "userId": "C-100001", "traits": {"email": "ANN.LEE@shop.test"}},
            {"type": "track", "userId": "C-100002", "event": "page"},
        ):
            db.execute("INSERT INTO messages (body) VALUES (?)", (json.dumps(body),))
    snapshot = EngineSettings(kind=EngineKind.DUCKDB, path="state/api/warehouse.snapshot.duckdb")
    with connect(snapshot, root) as copy:  # a server's read snapshot of the warehouse
        copy.create("raw_customers", customers.schema)
        copy.write("raw_customers", customers)
    (root / "reports").mkdir()
    (root / "reports" / "sends.ndjson").write_text(
        json.dumps({"to": "ann.lee@shop.test", "ok": True})
        + "\n"
        + json.dumps({"to": "bob.wu@shop.test", "ok": True})
        + "\n"
    )
    with gzip.open(root / "reports" / "calls.csv.gz", "wt") as handle:
        handle.write("customer_id,phone\nC-100001,07911 123456\nC-100002,\n")
    (root / "reports" / "summary.json").write_text(
        json.dumps({"top": [{"customer_id": "C-100001"}, {"customer_id": "C-100002"}], "n": 2})
    )
    (root / "segments" / "vip.yml").write_text("name: vip\nrule: email = 'ann.lee@shop.test'\n")
    project = load_project(root)
    with OperationalStore.open(project.settings.stores.operational, root) as store:
        store.migrate()
        report = PrivacyService(project, store).erase("C-100001", by="dpo")
    actions = {f["path"]: f["action"] for f in report.files}
    assert actions == {
        "data/crm.csv": "rewritten",
        "reports/calls.csv.gz": "rewritten",
        "reports/sends.ndjson": "rewritten",
        "reports/summary.json": "redacted",
        "segments/vip.yml": "needs_review",
        "state/api/warehouse.snapshot.duckdb": "rewritten",
        "state/collect/events.db": "rewritten",
    }
    assert report.needs_review == ["segments/vip.yml"] and not report.complete
    for path in root.rglob("*"):
        if path.is_file() and path.name != "vip.yml":
            for text in _texts_of_file(path):
                assert "ann.lee" not in text.lower() and "7911 123456" not in text, path
                assert "C-100001" not in text, path
    assert "bob.wu" in (root / "reports" / "sends.ndjson").read_text()
    assert json.loads((root / "reports" / "summary.json").read_text())["top"] == [
        {"customer_id": "C-100002"}
    ]
    with sqlite3.connect(state / "collect" / "events.db") as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (1,)
