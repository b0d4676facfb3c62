"""Encryption at rest (issue 11, item 2): AES-GCM with per-person data keys wrapped by a master
key, crypto-shredding, master-key rotation, keyed pseudonyms; masking and small counts.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from privacy_helpers import crm_project

from jingzhun.core import NotFoundError, Principal, RefusedError, load_project
from jingzhun.privacy import (
    MASTER_KEY_ENV,
    NEW_MASTER_KEY_ENV,
    PrivacyService,
    Vault,
    group_counts,
    key_id,
    mask_record,
    parse_key,
    rotate_master_key,
)
from jingzhun.store import OperationalStore, PrivacyKey


@pytest.fixture
def store(tmp_path: Path) -> OperationalStore:
    with OperationalStore.open("sqlite:///state/operational.db", tmp_path) as opened:
        opened.migrate()
        yield opened


def test_encrypt_decrypt_and_tamper(store: OperationalStore) -> None:
    vault = Vault(store, secrets.token_bytes(32))
    blob = vault.encrypt(b"ann.lee@shop.test bought 3 lamps", "subject:abc")
    assert b"ann.lee" not in blob and blob.startswith(b"JZV1subject:abc\n")
    assert vault.decrypt(blob) == b"ann.lee@shop.test bought 3 lamps"
    assert vault.encrypt(b"x", "subject:abc") != vault.encrypt(b"x", "subject:abc")  # nonces
    broken = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(RefusedError, match="changed"):
        vault.decrypt(broken)
    with pytest.raises(RefusedError, match=r"does not open|wrapped with master"):
        Vault(store, secrets.token_bytes(32)).decrypt(blob)  # another master key


def test_crypto_shredding(store: OperationalStore) -> None:
    vault = Vault(store, secrets.token_bytes(32))
    blob = vault.encrypt(b"archive", "subject:ann")
    other = vault.encrypt(b"kept", "subject:bob")
    assert vault.shred("subject:ann") is True
    assert vault.shred("subject:ann") is False
    with pytest.raises(NotFoundError, match="shredded"):
        vault.decrypt(blob)
    assert vault.decrypt(other) == b"kept"


def test_data_keys_are_stored_wrapped(store: OperationalStore) -> None:
    vault = Vault(store, secrets.token_bytes(32))
    key = vault.data_key("subject:ann")
    with store.session() as session:
        row = session.query(PrivacyKey).one()
        assert row.master_id == vault.master_id and key.hex() not in row.wrapped
        assert bytes(key) not in row.wrapped.encode()


def test_rotation_rewraps_every_key_and_retires_the_old_master(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    monkeypatch.delenv(NEW_MASTER_KEY_ENV, raising=False)
    root = crm_project(tmp_path / "crm", ["C-1,a@b.test,,true,,"])
    project = load_project(root)
    with OperationalStore.open(project.settings.stores.operational, root) as store:
        store.migrate()
        service = PrivacyService(project, store)
        old_vault = service.vault
        blobs = [old_vault.encrypt(f"data {i}".encode(), f"subject:{i}") for i in range(3)]
        pseudonym = service.pseudonymise("Ann.Lee@shop.test", "email")
        result = service.rotate_keys(by="admin")
        assert result["keys_rewrapped"] == 5  # three subjects, the pseudonym and the store keys
        assert (root / "state" / "keys" / "master.key").read_bytes() != old_vault.master_key
        new_vault = service.vault
        assert new_vault.master_id == result["new_master_id"] != result["old_master_id"]
        assert [new_vault.decrypt(b) for b in blobs] == [b"data 0", b"data 1", b"data 2"]
        assert service.pseudonymise("ann.lee@shop.test ", "email") == pseudonym  # stable
        with pytest.raises(RefusedError, match="wrapped with master key"):
            old_vault.decrypt(blobs[0])
        assert [r["kind"] for r in service.requests()] == ["keys_rotate"]


def test_rotation_with_keys_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = crm_project(tmp_path / "crm", ["C-1,a@b.test,,true,,"])
    project = load_project(root)
    old, new = secrets.token_hex(32), secrets.token_hex(32)
    monkeypatch.setenv(MASTER_KEY_ENV, old)
    monkeypatch.delenv(NEW_MASTER_KEY_ENV, raising=False)
    with OperationalStore.open(project.settings.stores.operational, root) as store:
        store.migrate()
        blob = Vault(store, parse_key(old, "old")).encrypt(b"x", "subject:1")
        with pytest.raises(RefusedError, match=NEW_MASTER_KEY_ENV):
            rotate_master_key(project, store, "state/keys/master.key")
        monkeypatch.setenv(NEW_MASTER_KEY_ENV, new)
        result = rotate_master_key(project, store, "state/keys/master.key")
        assert result["new_master_id"] == key_id(bytes.fromhex(new))
        assert "set JINGZHUN_MASTER_KEY" in str(result["next_step"])
        assert Vault(store, bytes.fromhex(new)).decrypt(blob) == b"x"
    assert not (root / "state" / "keys" / "master.key").exists()


def test_bad_master_key_is_named() -> None:
    with pytest.raises(RefusedError, match="JINGZHUN_MASTER_KEY is not a 32-byte key"):
        parse_key("too-short", "JINGZHUN_MASTER_KEY")


def test_masking_by_role_and_minimum_group_size() -> None:
    analyst = Principal.user("ana", "analyst")
    marketer = Principal.user("mo", "marketer")
    row = {
        "customer_id": "W-00000140",
        "email": "emily.kowalski627087@gmail.com",
        "phone": "+447867812549",
        "first_name": "Emily",
        "address": "emily.kowalski627087@gmail.com",
        "revenue": 12.5,
    }
    masked = mask_record(row, analyst)
    assert masked["email"] == "em***@gmail.com" and masked["address"] == "em***@gmail.com"
    assert masked["phone"] == "+44 786****2549" and masked["first_name"] == "E***"
    assert masked["customer_id"] == "W-***40" and masked["revenue"] == 12.5
    assert mask_record(row, marketer) == row
    counts = {"London": 120, "Leeds": 3, "Hull": 0}
    assert group_counts(counts, analyst) == {"London": 120, "Leeds": "<5", "Hull": 0}
    assert group_counts(counts, marketer) == counts
