"""Resources over the built bank example: segments, reports, consent, data-subject requests,
and answers while another process holds the warehouse.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml
from api_support import bearer

RULE = {"all": ["has_valid_phone", "sms_consent = true"]}


def test_segments_list_count_preview_explain(bank: Path, serve) -> None:
    served = serve(bank)
    headers = bearer(served.key("read"))
    listed = served.client.get("/api/v1/segments", headers=headers).json()
    assert listed["count"] == 4
    names = {s["name"] for s in listed["data"]}
    assert "credit_card_offer" in names
    # README of jingzhun.segments: `jingzhun segment count credit_card_offer` → 9
    count = served.client.get("/api/v1/segments/credit_card_offer/count", headers=headers).json()
    assert count == {"segment": "credit_card_offer", "as_of": "2024-06-30", "count": 9}
    small = served.client.get("/api/v1/segments/birthday_week/count", headers=headers).json()
    assert small["count"] == "<5"  # one member, shown as <5 without pii:read
    preview = served.client.get(
        "/api/v1/segments/credit_card_offer/preview?limit=3", headers=headers
    ).json()
    assert preview["count"] == 3 and preview["masked"] is True
    key = preview["data"][0]["customer_key"]
    explained = served.client.get(
        f"/api/v1/segments/credit_card_offer/explain/{key}", headers=headers
    ).json()
    assert explained["member"] is True and explained["steps"][0]["result"] is True
    assert len(explained["steps"]) > 3
    missing = served.client.get("/api/v1/segments/nope/count", headers=headers)
    assert missing.status_code == 404 and "credit_card_offer" in missing.json()["detail"]


def test_create_a_segment_from_rule_json(bank: Path, serve) -> None:
    served = serve(bank)
    writer, reader = bearer(served.key("write")), bearer(served.key("read"))
    body = {"name": "sms_reachable", "description": "phone and consent", "rule": RULE}
    assert served.client.post("/api/v1/segments", json=body, headers=reader).status_code == 403
    made = served.client.post("/api/v1/segments", json=body, headers=writer)
    assert made.status_code == 201
    saved = yaml.safe_load((bank / "segments" / "sms_reachable.yml").read_text())
    assert saved["rule"] == RULE
    counted = served.client.post("/api/v1/segments/count", json=body, headers=reader).json()
    stored = served.client.get("/api/v1/segments/sms_reachable/count", headers=reader).json()
    assert counted["count"] == stored["count"]
    again = served.client.post("/api/v1/segments", json=body, headers=writer)
    assert again.status_code == 409
    shape = {"name": "bad_one", "rule": {"event": "card_payment", "within": "0d"}}
    refused = served.client.post("/api/v1/segments", json=shape, headers=writer)
    assert refused.status_code == 422 and "0d" in refused.json()["problems"][0]
    unknown = {"name": "bad_one", "rule": {"all": ["frequencyy >= 2"]}}
    refused = served.client.post("/api/v1/segments", json=unknown, headers=writer)
    assert refused.status_code == 422 and "frequency" in refused.json()["detail"]
    assert not (bank / "segments" / "bad_one.yml").exists()


def test_reports_models_and_campaigns(bank: Path, serve) -> None:
    served = serve(bank)
    headers = bearer(served.key("read"))
    overview = served.client.get("/api/v1/reports/overview", headers=headers).json()
    assert overview["figures"]["customers"] == 60
    assert served.client.get("/api/v1/models", headers=headers).json() == {"data": [], "count": 0}
    assert served.client.get("/api/v1/campaigns", headers=headers).json()["count"] == 0
    assert served.client.get("/api/v1/models/nope", headers=headers).status_code == 404


def test_consent_and_data_subject_export_are_audited(bank: Path, serve) -> None:
    served = serve(bank)
    admin, writer = bearer(served.key("admin")), bearer(served.key("write"))
    consent = {
        "subject_kind": "email",
        "subject": "C1@example.cn",
        "channel": "email",
        "status": "withdrawn",
    }
    assert served.client.post("/api/v1/consent", json=consent, headers=writer).status_code == 201
    history = served.client.get(
        "/api/v1/consent",
        params={"subject_kind": "email", "subject": "c1@example.cn"},
        headers=admin,
    ).json()
    assert [r["status"] for r in history["data"]] == ["withdrawn"]
    exported = served.client.post(
        "/api/v1/data-subject-requests",
        json={"kind": "export", "subject": "c1@example.cn"},
        headers=admin,
    ).json()
    assert exported["status"] == "completed"
    assert exported["data"]["profile"]["attributes"]["email"] == "c1@example.cn"
    erase = served.client.post(
        "/api/v1/data-subject-requests",
        json={"kind": "erase", "subject": "c1@example.cn"},
        headers=admin,
    ).json()
    assert erase["status"] == "completed"  # an admin's erasure runs at once
    actions = [r["action"] for r in served.context.access.audit_log()]
    assert sorted(actions) == ["erase", "export", "pii_read"]
    forbidden = served.client.post(
        "/api/v1/data-subject-requests", json={"kind": "export", "subject": "x"}, headers=writer
    )
    assert forbidden.status_code == 403


HOLD = """
import sys, time
from pathlib import Path
from jingzhun.engine import DuckDBEngine
engine = DuckDBEngine(Path(sys.argv[1]))   # a build holds the warehouse file
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_reads_keep_answering_while_another_process_holds_the_warehouse(bank: Path, serve) -> None:
    served = serve(bank)
    headers = bearer(served.key("admin"))
    assert (
        served.client.get("/api/v1/segments/credit_card_offer/count", headers=headers).json()[
            "count"
        ]
        == 9
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(bank / "warehouse" / "warehouse.duckdb"), "60"],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"holding\n"
        started = time.monotonic()
        for _ in range(3):
            answer = served.client.get("/api/v1/segments/credit_card_offer/count", headers=headers)
            assert answer.status_code == 200 and answer.json()["count"] == 9
        assert time.monotonic() - started < 10
        profile = served.client.get("/api/v1/profiles/c1@example.cn", headers=headers)
        assert profile.status_code == 200
        # a flush waits briefly for the warehouse and reports it busy; events stay queued
        result = served.context.loader.run_once(wait_seconds=0.5)
        assert result.busy is True or result.messages == 0
    finally:
        holder.kill()
        holder.wait()
