"""``jingzhun privacy``: export, correct, erase, retention, requests and keys rotate, with
``--json`` and exit codes that mean something.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from privacy_helpers import crm_project, write_crm
from typer.testing import CliRunner

from jingzhun.cli._privacy import privacy_app
from jingzhun.core import ExitCode
from jingzhun.privacy import MASTER_KEY_ENV, NEW_MASTER_KEY_ENV
from jingzhun.workspace import Workspace

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(privacy_app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def crm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    monkeypatch.delenv(NEW_MASTER_KEY_ENV, raising=False)
    root = crm_project(
        tmp_path / "crm",
        [
            "C-100001,ann.lee@shop.test,+44 7911 123456,true,Lodnon,",
            "C-100002,bob.wu@shop.test,,true,Leeds,",
        ],
    )
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
    return root


def test_export_correct_erase_and_the_trail(crm: Path, tmp_path: Path) -> None:
    p = str(crm)
    code, output = _run("export", "ann.lee@shop.test", "--project", p, "--json")
    assert code == 0, output
    document = json.loads(output)
    assert document["warehouse"]["raw_customers"][0]["customer_id"] == "C-100001"

    out = tmp_path / "out"
    code, output = _run(
        "export", "C-100001", "--out", str(out), "--zip", "--archive", "--project", p
    )
    assert code == 0, output
    files = sorted(x.name for x in out.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".zip")
    with zipfile.ZipFile(out / files[1]) as archive:
        assert "warehouse/raw_customers.csv" in archive.namelist()
    archived = list((crm / "state" / "privacy" / "exports").glob("*.zip.enc"))
    assert len(archived) == 1 and b"ann.lee" not in archived[0].read_bytes()

    code, output = _run(
        "correct", "C-100001", "--field", "city", "--value", "London", "--project", p, "--json"
    )
    assert code == 0, output
    assert json.loads(output)["records"] == 1
    code, output = _run("correct", "C-100001", "--field", "nope", "--value", "x", "--project", p)
    assert code == ExitCode.SPEC_ERROR and "cannot be corrected" in output

    code, output = _run("erase", "C-100001", "--project", p, "--json")
    assert code == ExitCode.REFUSED  # no --yes: nothing erased
    code, output = _run("erase", "C-100001", "--yes", "--by", "dpo", "--project", p, "--json")
    assert code == 0, output
    report = json.loads(output)
    assert report["complete"] and report["key_shredded"]
    assert report["warehouse"]["raw_customers"] == 2  # the record and its corrected version
    assert "ann.lee" not in (crm / "data" / "crm.csv").read_text()

    code, output = _run("export", "C-100001", "--project", p, "--json")
    assert code == ExitCode.NOT_FOUND and "no customer found" in output

    code, output = _run("requests", "--project", p, "--json")
    trail = json.loads(output)
    assert [r["kind"] for r in trail] == ["erase", "correct", "export", "export"]
    assert {r["requested_by"] for r in trail[:1]} == {"dpo"}
    assert "ann" not in output.lower() and "C-100001" not in output

    write_crm(crm, "crm-2.csv", ["C-100001,ann.lee@shop.test,+44 7911 123456,true,Lodnon,"])
    with Workspace.open(crm) as ws:
        load = ws.ingest.run()
        assert ws.engine.count("raw_customers") == 1  # only Bob
    assert sum(f.rows_suppressed for f in load.files) == 1


def test_retention_and_keys_rotate(crm: Path) -> None:
    p = str(crm)
    code, output = _run("retention", "--dry-run", "--project", p)
    assert code == 0 and "no retention rules" in output
    (crm / "privacy.yml").write_text("retention:\n  raw_customers: {days: 1}\n")
    code, output = _run("retention", "--dry-run", "--as-of", "2999-01-01", "--project", p, "--json")
    assert code == 0, output
    assert json.loads(output)["rows"] == {"raw_customers": 2}
    code, output = _run("retention", "--as-of", "not-a-date", "--project", p)
    assert code == ExitCode.SPEC_ERROR and "--as-of" in output
    code, output = _run("keys", "rotate", "--project", p, "--json")
    assert code == 0, output
    result = json.loads(output)
    # the data keys so far: the warehouse's and the store's (personal data encrypted at rest)
    assert result["keys_rewrapped"] == 2 and result["old_master_id"] != result["new_master_id"]
    code, output = _run("export", "C-100002", "--project", p, "--json")
    assert code == 0 and "bob.wu@shop.test" in output  # readable under the new master key
    (crm / "privacy.yml").write_text("on_return: maybe\n")
    code, output = _run("erase", "C-100002", "--yes", "--project", p)
    assert code == ExitCode.SPEC_ERROR and "privacy.yml" in output and "on_return" in output
