"""Access and portability (issue 11, item 1): ``export`` returns everything held about a
person, found from any one identifier, as JSON and as a zip of CSVs; it is audited.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from pathlib import Path

import pytest
from privacy_helpers import crm_project
from test_privacy_erase import _identifiers

from jingzhun.campaigns import Channel, ConsentLedger, ConsentRecord, Purpose, Status
from jingzhun.core import Principal, RefusedError, load_project
from jingzhun.privacy import PrivacyService
from jingzhun.store import OperationalStore
from jingzhun.workspace import Workspace


def test_export_from_any_identifier(tmp_path: Path) -> None:
    root = crm_project(
        tmp_path / "crm",
        [
            "C-100001,Ann.Lee@shop.test,+44 7911 123456,true,London,1990-05-17",
            "C-100002,bob.wu@shop.test,,false,Leeds,",
        ],
    )
    (root / "reports").mkdir()
    (root / "reports" / "call_list.txt").write_text("call ann.lee@shop.test today\nbob: later\n")
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
        ws.identity.build(probabilistic=False)
        ConsentLedger(ws.store).record(
            [
                ConsentRecord(
                    "phone",
                    "07911 123456",
                    Purpose.MARKETING,
                    Channel.SMS,
                    Status.WITHDRAWN,
                    dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
                )
            ]
        )
    project = load_project(root)
    with OperationalStore.open(project.settings.stores.operational, root) as store:
        store.migrate()
        service = PrivacyService(project, store)
        by_email = service.export("ann.lee@SHOP.test ", by="dpo")
        by_phone = service.export("+447911123456", by="dpo")
        by_id = service.export("C-100001", by="dpo")
        with pytest.raises(RefusedError, match="privacy:admin"):
            service.export("C-100001", by="ana", principal=Principal.user("ana", "analyst"))
        trail = service.requests()
    assert by_email.customer_keys == by_phone.customer_keys == by_id.customer_keys
    assert len(by_email.customer_keys) == 1
    document = by_id.to_dict()
    raw = document["warehouse"]["raw_customers"]
    assert [r["customer_id"] for r in raw] == ["C-100001"] and raw[0]["city"] == "London"
    assert {r["kind"] for r in document["warehouse"]["identifiers"]} >= {"email", "phone"}
    assert document["operational_store"]["consents"][0]["status"] == "withdrawn"
    assert [f["path"] for f in document["files"]] == ["data/crm.csv", "reports/call_list.txt"]
    assert "bob.wu" not in json.dumps(document)
    assert [r["kind"] for r in trail] == ["export"] * 3
    assert all("ann" not in json.dumps(r).lower() for r in trail)  # the subject is a hash
    with zipfile.ZipFile(io.BytesIO(by_id.zip_bytes())) as archive:
        names = set(archive.namelist())
        customers = archive.read("warehouse/raw_customers.csv").decode()
    assert {"export.json", "warehouse/raw_customers.csv", "store/consents.csv"} <= names
    assert "Ann.Lee@shop.test" in customers and "bob" not in customers


@pytest.mark.slow
def test_demo_export_has_every_stage(demo_copy: Path) -> None:
    key, identifiers = _identifiers(demo_copy)
    project = load_project(demo_copy)
    with OperationalStore.open(project.settings.stores.operational, demo_copy) as store:
        store.migrate()
        export = PrivacyService(project, store).export(identifiers["customer_id_0"], by="dpo")
    assert export.customer_keys == [key]
    every_stage = {"raw_customers", "raw_events", "raw_orders", "raw_order_items", "identity_map"}
    every_stage |= {"merge_log", "profiles", "tag_history", "segment_members", "scores"}
    every_stage |= {"recommendations", "send_plan"}
    assert every_stage <= set(export.warehouse)
    assert {"deliveries", "delivery_queue"} <= set(export.store)
    with zipfile.ZipFile(io.BytesIO(export.zip_bytes())) as archive:
        names = set(archive.namelist())
        profile = archive.read("warehouse/profiles.csv").decode()
    assert {"export.json", "warehouse/raw_customers.csv", "store/deliveries.csv"} <= names
    assert identifiers["email_0"] in profile
