"""API keys with scopes, users with roles, sessions, PII masking and the audit log."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from api_support import bearer
from sqlalchemy import text
from typer.testing import CliRunner

from jingzhun.api import check_password, hash_password
from jingzhun.cli._serve import register
from jingzhun.core import EngineError, SpecError


def test_scrypt_password_hashes_check_and_differ_by_salt() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("scrypt$16384$8$1$") and first != second
    assert check_password("correct horse", first)
    assert not check_password("correct hors", first)
    assert not check_password("x", "not-a-hash")


def test_keys_are_stored_hashed_and_a_revoked_key_stops_working(bare_project: Path, serve) -> None:
    served = serve(bare_project)
    key = served.key("read")
    assert served.client.get("/api/v1/me", headers=bearer(key)).json()["scopes"] == ["read"]
    with served.context.store.session() as session:
        stored = session.execute(text("SELECT key_hash, prefix FROM api_keys")).all()
    assert all(key not in row.key_hash and len(row.key_hash) == 64 for row in stored)
    served.context.access.revoke_api_key("k1-read")
    assert served.client.get("/api/v1/me", headers=bearer(key)).status_code == 401
    assert served.client.get("/api/v1/me", headers=bearer(key[:-1] + "x")).status_code == 401
    assert served.client.get("/api/v1/me").status_code == 401


def test_scopes_decide_what_a_key_may_do(bare_project: Path, serve) -> None:
    served = serve(bare_project)
    collect, read, admin = served.key("collect"), served.key("read"), served.key("admin")
    assert served.client.get("/api/v1/collect/status", headers=bearer(collect)).status_code == 403
    assert served.client.get("/api/v1/collect/status", headers=bearer(read)).status_code == 200
    assert served.client.get("/api/v1/audit-log", headers=bearer(read)).status_code == 403
    assert served.client.get("/api/v1/audit-log", headers=bearer(admin)).status_code == 200
    with pytest.raises(SpecError, match="unknown scope"):
        served.context.access.create_api_key("bad", ["root"], created_by="t")


def test_users_log_in_with_a_session_cookie_and_log_out(bare_project: Path, serve) -> None:
    served = serve(bare_project)
    served.context.access.add_user("ana", "analyst", "s3cret-pass")
    wrong = served.client.post("/api/v1/login", json={"name": "ana", "password": "nope-nope"})
    assert wrong.status_code == 401
    ok = served.client.post("/api/v1/login", json={"name": "ana", "password": "s3cret-pass"})
    assert ok.status_code == 200 and ok.json()["sees_pii"] is False
    assert "jingzhun_session" in served.client.cookies
    me = served.client.get("/api/v1/me").json()
    assert (me["name"], me["role"]) == ("ana", "analyst")
    token = served.client.cookies["jingzhun_session"]
    assert served.client.post("/api/v1/logout").status_code == 204
    served.client.cookies.set("jingzhun_session", token)  # a stolen cookie after logout
    assert served.client.get("/api/v1/me").status_code == 401


def test_the_console_login_page_redirects_only_within_the_server(bare_project: Path, serve) -> None:
    served = serve(bare_project)
    served.context.access.add_user("mia", "marketer", "another-pass")
    answer = served.client.post(
        "/login",
        data={"name": "mia", "password": "another-pass", "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console/"
    bad = served.client.post(
        "/login", data={"name": "mia", "password": "x"}, follow_redirects=False
    )
    assert bad.status_code == 401


def test_pii_is_masked_without_pii_read_and_every_unmasked_read_is_audited(
    bank: Path, serve
) -> None:
    served = serve(bank)
    reader, admin = served.key("read"), served.key("admin")
    masked = served.client.get("/api/v1/profiles/c1@example.cn", headers=bearer(reader)).json()
    assert "masked" in masked, masked
    clear = served.client.get("/api/v1/profiles/c1@example.cn", headers=bearer(admin)).json()
    assert masked["masked"] is True and clear["masked"] is False
    email = clear["view"]["attributes"]["email"]
    assert "@" in email and email != masked["view"]["attributes"]["email"]
    assert "*" in masked["view"]["attributes"]["email"]
    rows = served.context.access.audit_log()
    assert [(r["principal"], r["action"]) for r in rows] == [("k2-admin", "pii_read")]
    assert rows[0]["resource"] == f"profile {clear['customer_key']}"

    served.context.access.add_user("mark", "marketer", "marketer-pass")
    served.context.access.add_user("vic", "viewer", "viewer-pass")
    for name, password, sees in (("vic", "viewer-pass", False), ("mark", "marketer-pass", True)):
        served.client.post("/api/v1/login", json={"name": name, "password": password})
        view = served.client.get("/api/v1/segments/credit_card_offer/preview").json()
        assert view["masked"] is (not sees)
    assert served.context.access.audit_log()[0]["principal"] == "mark"


def test_the_audit_log_is_append_only(bare_project: Path, serve) -> None:
    served = serve(bare_project)
    principal = served.context.access.principal_for_key(served.key("admin"))
    assert principal is not None
    served.context.access.audit(principal, "export", "segment vips")
    for statement in ("UPDATE audit_log SET principal = 'x'", "DELETE FROM audit_log"):
        with (
            pytest.raises(EngineError, match="append-only"),
            served.context.store.session() as session,
        ):
            session.execute(text(statement))
    assert len(served.context.access.audit_log()) == 1


def test_cli_creates_users_and_keys_the_key_is_shown_once(bare_project: Path, serve) -> None:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    made = runner.invoke(
        app, ["apikey", "create", "web", "--scopes", "collect,read", "-p", str(bare_project)]
    )
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    assert key.startswith("jz_")
    added = runner.invoke(
        app,
        ["user", "add", "eve", "--role", "viewer", "--password-stdin", "-p", str(bare_project)],
        input="long-enough-pw\n",
    )
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["apikey", "list", "--json", "-p", str(bare_project)])
    assert key not in listed.output and '"web"' in listed.output
    served = serve(bare_project)
    assert served.client.get("/api/v1/me", headers=bearer(key)).json()["scopes"] == [
        "collect",
        "read",
    ]
    assert served.context.access.authenticate("eve", "long-enough-pw") is not None
    duplicate = runner.invoke(
        app, ["apikey", "create", "web", "--scopes", "read", "-p", str(bare_project)]
    )
    assert duplicate.exit_code == 2
