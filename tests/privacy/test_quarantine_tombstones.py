"""Quarantine and tombstones (issue 11): a re-delivered file's bad rows of an erased person do
not bring their identifiers back through the ``quarantine`` table, in either ``on_return``
mode, while other people's bad rows are still quarantined.

The source names its columns differently from the canonical fields, so the hook must read the
quarantined ``record`` through the spec's column mapping.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jingzhun.core import init_project, load_project
from jingzhun.privacy import PrivacyService
from jingzhun.store import OperationalStore
from jingzhun.workspace import Workspace

HEADER = "Kundennr,E-Mail,Telefon,Newsletter,Geburtstag\n"
SPEC = """\
name: shop_crm
path: data/*.csv
target: customers
max_bad_fraction: 0.9
columns:
  customer_id: Kundennr
  email: E-Mail
  phone: Telefon
  email_consent: {from: Newsletter, type: boolean}
  birth_date: {from: Geburtstag, type: date}
"""


def _project(root: Path, on_return: str) -> Path:
    init_project(root, name="crm_shop", region="GB")
    (root / "data").mkdir()
    (root / "sources" / "shop_crm.yml").write_text(SPEC, encoding="utf-8")
    (root / "privacy.yml").write_text(f"on_return: {on_return}\n", encoding="utf-8")
    _write(
        root,
        "crm-1.csv",
        [
            "C-100001,ann.lee@shop.test,+44 7700 900123,true,1990-04-01",
            "C-100002,bob.wu@shop.test,,true,1985-11-30",
        ],
    )
    return root


def _write(root: Path, name: str, lines: list[str]) -> None:
    text = HEADER + "".join(f"{line}\n" for line in lines)
    (root / "data" / name).write_text(text, encoding="utf-8")


def _quarantine(root: Path) -> list[dict[str, object]]:
    with Workspace.open(root) as ws:
        return ws.engine.execute(ws.engine.read("quarantine")).to_pylist()


@pytest.mark.parametrize("on_return", ["suppress", "new_customer_with_consent"])
def test_bad_rows_of_an_erased_person_are_not_quarantined(tmp_path: Path, on_return: str) -> None:
    root = _project(tmp_path / "crm", on_return)
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
    project = load_project(root)
    with OperationalStore.open(project.settings.stores.operational, root) as store:
        store.migrate()
        PrivacyService(project, store).erase("ann.lee@shop.test", by="dpo")
    # the CRM delivers again: Ann twice with unreadable birth dates (once under her old id,
    # once under a new id and e-mail but her phone written nationally), Bob with one too
    _write(
        root,
        "crm-2.csv",
        [
            "C-100001,Ann.Lee@shop.test,+44 7700 900123,true,31/02/1990",
            "C-300003,ann@elsewhere.test,07700 900123,true,not a date",
            "C-100002,bob.wu@shop.test,,true,yesterday",
            "C-100004,cy.chen@shop.test,,true,1970-01-01",
        ],
    )
    with Workspace.open(root) as ws:
        load = ws.ingest.run()
    assert load.ok, load.to_dict()
    [second] = [f for f in load.files if f.file.endswith("crm-2.csv")]
    assert (second.rows_quarantined, second.rows_suppressed, second.rows_loaded) == (1, 2, 1)
    assert second.rows_duplicate == 0

    rows = _quarantine(root)
    text = json.dumps(rows, default=str).lower()
    for value in ("ann.lee", "ann@elsewhere", "900123", "c-100001", "c-300003", "31/02/1990"):
        assert value not in text, value
    [bob] = rows
    assert (bob["column"], bob["value"], bob["_row"]) == ("Geburtstag", "yesterday", 3)
    assert json.loads(str(bob["record"]))["E-Mail"] == "bob.wu@shop.test"


def test_without_tombstones_bad_rows_are_quarantined_as_before(tmp_path: Path) -> None:
    root = _project(tmp_path / "crm", "suppress")
    _write(
        root,
        "crm-2.csv",
        [
            "C-100001,ann.lee@shop.test,+44 7700 900123,true,31/02/1990",
            "C-100004,cy.chen@shop.test,,true,1970-01-01",
        ],
    )
    with Workspace.open(root) as ws:
        load = ws.ingest.run()
    [second] = [f for f in load.files if f.file.endswith("crm-2.csv")]
    assert (second.rows_quarantined, second.rows_suppressed) == (1, 0)
    [ann] = _quarantine(root)
    assert json.loads(str(ann["record"]))["Kundennr"] == "C-100001"
