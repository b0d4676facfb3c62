"""Rectification (issue 11, item 1): ``correct`` fixes an attribute at the source layer, so
rebuilds and later exports from the source system keep the corrected value.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from privacy_helpers import crm_project, write_crm

from jingzhun.core import Principal, RefusedError, SpecError, load_project
from jingzhun.ingest import CORRECTIONS_TABLE
from jingzhun.privacy import PrivacyService
from jingzhun.store import OperationalStore
from jingzhun.workspace import Workspace


def _profile(ws: Workspace, customer_id: str) -> dict[str, object]:
    view = ws.profiles.show(customer_id, mask_pii=False)
    return dict(view["attributes"])


def test_a_correction_survives_rebuilds_and_reloads(tmp_path: Path) -> None:
    root = crm_project(
        tmp_path / "crm",
        [
            "C-100001,ann.lee@shop.test,,true,Lodnon,1990-05-17",
            "C-100002,bob.wu@shop.test,,true,Leeds,1985-01-02",
        ],
    )
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
    project = load_project(root)
    with OperationalStore.open(project.settings.stores.operational, root) as store:
        store.migrate()
        service = PrivacyService(project, store)
        report = service.correct("ann.lee@shop.test", "city", "London", by="dpo")
        service.correct("C-100001", "birth_date", "1990-05-18", by="dpo")
        with pytest.raises(SpecError, match="cannot be corrected"):
            service.correct("C-100001", "customer_id", "C-9", by="dpo")
        with pytest.raises(SpecError, match="not a date"):
            service.correct("C-100001", "birth_date", "17/05/1990", by="dpo")
        with pytest.raises(RefusedError, match="privacy:admin"):
            service.correct(
                "C-100001", "city", "X", by="ana", principal=Principal.user("ana", "analyst")
            )
    assert report.records == 1
    with Workspace.open(root) as ws:
        ws.build(date.today(), probabilistic=False)
        attributes = _profile(ws, "C-100001")
        assert attributes["city"] == "London"
        assert attributes["birth_date"] == "1990-05-18"
        assert _profile(ws, "C-100002")["city"] == "Leeds"
        # the CRM exports the old record again, and a newer version with another change
        write_crm(
            root,
            "crm-2.csv",
            [
                "C-100001,ann.lee@shop.test,,true,Lodnon,1990-05-17",
                "C-100001,ann.lee@shop.test,+44 7700 900123,true,Lodnon,1990-05-17",
            ],
        )
        assert ws.ingest.run().ok
        ws.build(date.today(), probabilistic=False)
        attributes = _profile(ws, "C-100001")
        assert attributes["city"] == "London" and attributes["birth_date"] == "1990-05-18"
        assert attributes["phone"] == "+44 7700 900123"  # the newer version's change arrived
        assert ws.engine.count(CORRECTIONS_TABLE) == 2
