"""Personal data encrypted at rest (issue 11, item 2): after a load and a build, the warehouse
file holds no customer's e-mail, phone or name in clear, while every stage (identity joins on
e-mails, the 360° view) sees them; a project that had encryption off gets its clear values
sealed by ``jingzhun privacy encrypt``; the warehouse key travels with master-key rotation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from privacy_helpers import crm_project
from typer.testing import CliRunner

from jingzhun.cli._privacy import privacy_app
from jingzhun.core import RefusedError
from jingzhun.privacy import MASTER_KEY_ENV, NEW_MASTER_KEY_ENV
from jingzhun.workspace import Workspace

runner = CliRunner()
PEOPLE = [
    "C-100001,ann.lee@shop.test,+44 7911 123456,true,Lodnon,",
    "C-100002,bob.wu@shop.test,,true,Leeds,",
    # the same e-mail under another id of the same source: identity weighs it the same way
    # whether the column is sealed or not
    "C-100003,ANN.LEE@shop.test,,true,London,",
]
CLEAR = [b"ann.lee@shop.test", b"bob.wu@shop.test", b"7911123456", b"7911 123456"]


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(privacy_app, list(args))
    return result.exit_code, result.output


def _warehouse_bytes(root: Path) -> bytes:
    folder = root / "warehouse"
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


def _load_and_build(root: Path) -> None:
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
        ws.build()


@pytest.fixture(autouse=True)
def _keys_from_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    monkeypatch.delenv(NEW_MASTER_KEY_ENV, raising=False)


def _built(root: Path) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    with Workspace.open(root) as ws:
        keys = ws.engine.read("identity_map").select("node_id", "customer_key")
        profiles = ws.engine.read("profiles").drop("as_of", "first_seen", "last_seen")
        return (
            sorted(ws.engine.execute(keys).to_pylist(), key=str),
            sorted(ws.engine.execute(profiles).to_pylist(), key=str),
        )


def test_a_built_warehouse_holds_no_personal_value_in_clear(tmp_path: Path) -> None:
    root = crm_project(tmp_path / "crm", PEOPLE)
    _load_and_build(root)
    on_disk = _warehouse_bytes(root)
    assert not [c for c in CLEAR if c in on_disk]
    with Workspace.open(root) as ws:
        view = ws.profiles.show("bob.wu@shop.test", mask_pii=False)
    assert view["attributes"]["email"] == "bob.wu@shop.test"
    # every stage sees the same data as without encryption: identity, profiles
    clear = crm_project(tmp_path / "clear", PEOPLE)
    (clear / "privacy.yml").write_text("encrypt_at_rest: false\n")
    _load_and_build(clear)
    assert [c for c in CLEAR if c in _warehouse_bytes(clear)]
    assert _built(root) == _built(clear)
    code, output = _run("encrypt", "--check", "--project", str(root), "--json")
    assert code == 0, output
    assert json.loads(output)["unsealed"] == {}


def test_encrypt_seals_what_was_written_in_clear(tmp_path: Path) -> None:
    root = crm_project(tmp_path / "crm", PEOPLE)
    (root / "privacy.yml").write_text("encrypt_at_rest: false\n")
    _load_and_build(root)
    assert [c for c in CLEAR if c in _warehouse_bytes(root)]
    (root / "privacy.yml").unlink()  # the default: on
    code, output = _run("encrypt", "--check", "--project", str(root), "--json")
    assert code == 1
    unsealed = json.loads(output)["unsealed"]
    assert unsealed["raw_customers.email"] == 3 and unsealed["profiles.email"] == 3
    assert unsealed["identifiers.value"] >= 3
    code, output = _run("encrypt", "--project", str(root), "--json")
    assert code == 0, output
    result = json.loads(output)
    assert result["unsealed"] == {} and "raw_customers" in result["tables_rewritten"]
    assert result["compacted"]  # no clear copy left in the file's free blocks
    assert not [c for c in CLEAR if c in _warehouse_bytes(root)]
    with Workspace.open(root) as ws:
        assert (
            ws.profiles.show("C-100002", mask_pii=False)["attributes"]["email"]
            == "bob.wu@shop.test"
        )
    code, output = _run("encrypt", "--project", str(root))
    assert code == 0 and "already encrypted" in output


def test_the_warehouse_key_follows_the_master_key(tmp_path: Path) -> None:
    root = crm_project(tmp_path / "crm", PEOPLE)
    _load_and_build(root)
    code, output = _run("keys", "rotate", "--project", str(root), "--json")
    assert code == 0 and json.loads(output)["keys_rewrapped"] >= 1
    with Workspace.open(root) as ws:
        assert (
            ws.profiles.show("C-100002", mask_pii=False)["attributes"]["email"]
            == "bob.wu@shop.test"
        )
    # someone else's master key: refused with what to do, never garbage
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MASTER_KEY_ENV, "11" * 32)
        with Workspace.open(root) as ws, pytest.raises(RefusedError, match="master key"):
            ws.profiles.show("C-100002")
