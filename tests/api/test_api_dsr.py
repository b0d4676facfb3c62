"""Data-subject erasure through the API (issues 10/11): a principal with ``privacy:admin``
erases a person of the built bank example while the server runs; afterwards the API's reads
(a fresh snapshot) do not find them, and a new export finds nothing. Without
``privacy:admin`` an erasure request waits, pending, for an administrator.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from api_support import bearer

from jingzhun.core import NotFoundError, load_project
from jingzhun.privacy import PrivacyService

ANN = "c1@example.cn"  # customer B0001 of examples/bank: a customer record and card events


def _erase(served, headers: dict[str, str], subject: str) -> dict:
    answer = served.client.post(
        "/api/v1/data-subject-requests", json={"kind": "erase", "subject": subject}, headers=headers
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_an_admin_erases_a_person_and_the_api_no_longer_finds_them(bank: Path, serve) -> None:
    served = serve(bank)
    client = served.client
    admin = bearer(served.key("admin"))
    profile = client.get(f"/api/v1/profiles/{ANN}", headers=admin)
    assert profile.status_code == 200
    key = profile.json()["customer_key"]
    taken = served.context.warehouse.describe()["snapshot_taken_at"]

    done = _erase(served, admin, ANN)
    assert done["status"] == "completed", done["note"]
    assert done["completed_at"] is not None
    report = done["data"]["erasure"]
    assert report["warehouse"]["raw_customers"] == 1
    assert report["warehouse"]["raw_events"] > 0 and report["tombstones"] > 0
    assert report["compacted"] and report["needs_review"] == []
    assert "data/customers.csv" in [f["path"] for f in report["files"]]
    assert ANN not in done["subject"] and done["subject"].startswith("[erased:")  # anonymised
    total = sum(report["warehouse"].values())
    assert done["note"].startswith(f"erased: {total} warehouse rows in {len(report['warehouse'])}")

    # reads come from a fresh snapshot without her
    assert served.context.warehouse.describe()["snapshot"] is True
    for wanted in (ANN, "B0001", key):
        assert client.get(f"/api/v1/profiles/{wanted}", headers=admin).status_code == 404
    listed = client.get("/api/v1/profiles", params={"limit": 500}, headers=admin)
    assert listed.json()["count"] == 59
    assert key not in listed.text and ANN not in listed.text
    engine = served.context.warehouse.reader()
    assert engine is not None
    customers = engine.execute(engine.read("raw_customers")).to_pylist()
    assert len(customers) == 59 and "B0001" not in {c["customer_id"] for c in customers}
    assert served.context.warehouse.describe()["snapshot_taken_at"] >= taken
    assert client.get("/api/v1/profiles/c3@example.cn", headers=admin).status_code == 200

    # a new export finds nothing: through the API and through the privacy stage
    by_id = client.post(
        "/api/v1/data-subject-requests", json={"kind": "export", "subject": "B0001"}, headers=admin
    ).json()
    assert by_id["status"] == "failed" and by_id["data"] is None
    assert "no customer found" in by_id["note"]
    by_email = client.post(
        "/api/v1/data-subject-requests", json={"kind": "export", "subject": ANN}, headers=admin
    ).json()
    assert by_email["status"] == "completed" and "nothing is held" in by_email["note"]
    assert set(by_email["data"]) == {"export"}  # no profile
    nothing = by_email["data"]["export"]
    assert nothing["customer_keys"] == [] and nothing["warehouse"] == {}
    assert nothing["operational_store"] == {} and nothing["files"] == []
    project = load_project(bank)
    privacy = PrivacyService(project, served.context.store)
    with pytest.raises(NotFoundError, match="no customer found"):
        privacy.export("B0001", by="test")
    again = privacy.export(ANN, by="test")
    assert (again.warehouse, again.files, again.customer_keys) == ({}, [], [])
    assert set(again.store) <= {"data_subject_requests"}  # the export request just made

    # the request list, the audit log: no identifier of hers
    requests = client.get("/api/v1/data-subject-requests", headers=admin)
    audit = client.get("/api/v1/audit-log", headers=admin)
    erased = [r for r in requests.json()["data"] if r["kind"] == "erase"]
    assert ANN not in str(erased) and key not in str(erased)
    assert ANN not in audit.text and key not in audit.text
    assert "erase" in [r["action"] for r in audit.json()["data"]]


def test_an_export_by_an_admin_runs_the_privacy_export(bank: Path, serve) -> None:
    served = serve(bank)
    admin = bearer(served.key("admin"))
    answer = served.client.post(
        "/api/v1/data-subject-requests",
        json={"kind": "export", "subject": "B0003"},
        headers=admin,
    ).json()
    assert answer["status"] == "completed"
    export = answer["data"]["export"]
    assert "core_banking:B0003" in export["identifiers"]["customer_records"]
    assert export["identifiers"]["emails"] == ["c3@example.cn"]
    assert [r["customer_id"] for r in export["warehouse"]["raw_customers"]] == ["B0003"]
    assert answer["data"]["profile"]["attributes"]["email"] == "c3@example.cn"
    assert "state/api/warehouse.snapshot.duckdb" not in [f["path"] for f in export["files"]]


def test_without_privacy_admin_an_erasure_waits_for_an_admin(bank: Path, serve) -> None:
    served = serve(bank)
    client = served.client
    admin, writer = bearer(served.key("admin")), bearer(served.key("write"))
    filed = _erase(served, writer, "c3@example.cn")
    assert filed["status"] == "pending" and filed["customer_key"] is None
    assert filed["requested_by"] == "k2-write"
    assert "/run" in filed["note"]
    assert client.get("/api/v1/profiles/c3@example.cn", headers=admin).status_code == 200
    assert client.get("/api/v1/data-subject-requests", headers=writer).status_code == 403
    run = f"/api/v1/data-subject-requests/{filed['id']}/run"
    assert client.post(run, headers=writer).status_code == 403
    export = client.post(
        "/api/v1/data-subject-requests",
        json={"kind": "export", "subject": "c3@example.cn"},
        headers=writer,
    )
    assert export.status_code == 403

    done = client.post(run, headers=admin)
    assert done.status_code == 200 and done.json()["status"] == "completed"
    assert done.json()["id"] == filed["id"]
    assert client.get("/api/v1/profiles/c3@example.cn", headers=admin).status_code == 404
    assert client.post(run, headers=admin).status_code == 409  # not pending any more
    assert client.post("/api/v1/data-subject-requests/999/run", headers=admin).status_code == 404


def test_erasing_nobody_fails_and_reads_go_on(bank: Path, serve) -> None:
    served = serve(bank)
    admin = bearer(served.key("admin"))
    failed = _erase(served, admin, "W-nobody")  # an e-mail found nowhere is still erased
    assert failed["status"] == "failed" and "no customer found" in failed["note"]
    listed = served.client.get("/api/v1/profiles", headers=admin)
    assert listed.status_code == 200 and listed.json()["count"] == 60
