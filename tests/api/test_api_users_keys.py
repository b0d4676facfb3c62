"""Users and API keys over HTTP (issue 10): admin only, every change audited, no secret or
password hash in any answer, and changes that take effect at once.
"""

from __future__ import annotations

from pathlib import Path

from api_support import bearer
from sqlalchemy import text


def _secrets(served) -> list[str]:
    """Every password hash and key hash the store holds."""
    with served.context.store.session() as session:
        hashes = [r[0] for r in session.execute(text("SELECT password_hash FROM api_users"))]
        hashes += [r[0] for r in session.execute(text("SELECT key_hash FROM api_keys"))]
    return hashes


def test_an_admin_manages_users_and_changes_apply_at_once(bare_project: Path, serve) -> None:
    served = serve(bare_project)
    client = served.client
    admin = bearer(served.key("admin"))
    new = {"name": "mei", "role": "viewer", "password": "s3cret-pass"}
    created = client.post("/api/v1/users", json=new, headers=admin)
    assert created.status_code == 201
    assert created.json() == {
        "name": "mei",
        "role": "viewer",
        "created_at": created.json()["created_at"],
        "disabled": False,
    }
    assert client.post("/api/v1/users", json=new, headers=admin).status_code == 409
    short = {**new, "name": "kai", "password": "short"}
    assert client.post("/api/v1/users", json=short, headers=admin).status_code == 422

    # mei logs in (session cookie; the admin's requests carry a Bearer key, which wins)
    login = client.post("/api/v1/login", json={"name": "mei", "password": "s3cret-pass"})
    assert login.status_code == 200 and login.json()["role"] == "viewer"
    assert client.get("/api/v1/users").status_code == 403  # not an admin
    assert client.post("/api/v1/users", json={**new, "name": "x1"}).status_code == 403

    changed = client.patch("/api/v1/users/mei", json={"role": "admin"}, headers=admin)
    assert changed.status_code == 200 and changed.json()["role"] == "admin"
    assert client.get("/api/v1/me").json()["role"] == "admin"  # the live session too
    assert client.get("/api/v1/users").status_code == 200
    # an admin may not lock themselves out
    assert client.patch("/api/v1/users/mei", json={"role": "viewer"}).status_code == 409
    assert client.delete("/api/v1/users/mei").status_code == 409

    # a new password ends her sessions; the old one stops working
    new_password = {"password": "another-pass"}
    assert client.patch("/api/v1/users/mei", json=new_password, headers=admin).status_code == 200
    assert client.get("/api/v1/me").status_code == 401
    old = client.post("/api/v1/login", json={"name": "mei", "password": "s3cret-pass"})
    assert old.status_code == 401
    again = client.post("/api/v1/login", json={"name": "mei", "password": "another-pass"})
    assert again.status_code == 200

    # deleting disables (the audit log names her): session ended, login refused
    disabled = client.delete("/api/v1/users/mei", headers=admin)
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert client.get("/api/v1/me").status_code == 401
    refused = client.post("/api/v1/login", json={"name": "mei", "password": "another-pass"})
    assert refused.status_code == 401
    enabled = client.patch("/api/v1/users/mei", json={"disabled": False}, headers=admin)
    assert enabled.json()["disabled"] is False
    back = client.post("/api/v1/login", json={"name": "mei", "password": "another-pass"})
    assert back.status_code == 200

    assert client.patch("/api/v1/users/nobody", json={}, headers=admin).status_code == 404
    assert client.delete("/api/v1/users/nobody", headers=admin).status_code == 404
    bad_role = client.patch("/api/v1/users/mei", json={"role": "root"}, headers=admin)
    assert bad_role.status_code == 422

    listed = client.get("/api/v1/users", headers=admin)
    assert listed.json()["count"] == 1 and listed.json()["data"][0]["name"] == "mei"
    answers = [created.text, changed.text, disabled.text, enabled.text, listed.text]
    for secret in _secrets(served):
        assert all(secret not in answer for answer in answers)
    assert all("password" not in answer and "scrypt" not in answer for answer in answers)

    audit = served.context.access.audit_log()
    actions = [(r["action"], r["resource"]) for r in reversed(audit)]
    assert actions == [
        ("user_create", "user mei"),
        ("user_update", "user mei"),
        ("user_update", "user mei"),
        ("user_disable", "user mei"),
        ("user_update", "user mei"),
    ]
    assert "another-pass" not in str(audit) and "s3cret-pass" not in str(audit)


def test_an_admin_makes_and_revokes_api_keys(bare_project: Path, serve) -> None:
    served = serve(bare_project)
    client = served.client
    admin_key = served.key("admin")
    admin, reader = bearer(admin_key), bearer(served.key("read"))
    body = {"name": "reporting", "scopes": ["read", "collect"]}
    created = client.post("/api/v1/api-keys", json=body, headers=admin)
    assert created.status_code == 201
    made = created.json()
    key = made.pop("key")
    assert key.startswith(f"jz_{made['prefix']}_")
    assert made["scopes"] == ["collect", "read"] and made["revoked"] is False
    assert made["created_by"] == "k1-admin"
    assert client.post("/api/v1/api-keys", json=body, headers=admin).status_code == 409
    unknown = client.post("/api/v1/api-keys", json={"name": "x", "scopes": ["root"]}, headers=admin)
    assert unknown.status_code == 422
    assert (
        client.post("/api/v1/api-keys", json={"name": "x", "scopes": []}, headers=admin).status_code
        == 422
    )

    me = client.get("/api/v1/me", headers=bearer(key)).json()
    assert (me["name"], me["scopes"]) == ("reporting", ["collect", "read"])
    listed = client.get("/api/v1/api-keys", headers=admin)
    assert [k["name"] for k in listed.json()["data"]] == ["k1-admin", "k2-read", "reporting"]
    for secret in [key, admin_key, *_secrets(served)]:
        assert secret not in listed.text
        assert secret.split("_")[-1] not in listed.text

    # nobody but an admin
    for method, path in (
        ("GET", "/api/v1/api-keys"),
        ("POST", "/api/v1/api-keys"),
        ("DELETE", "/api/v1/api-keys/reporting"),
        ("GET", "/api/v1/users"),
    ):
        json = {"name": "sneaky", "scopes": ["admin"]} if method == "POST" else None
        assert client.request(method, path, json=json, headers=reader).status_code == 403
        assert client.request(method, path, json=json, headers=bearer(key)).status_code == 403
        assert client.request(method, path, json=json).status_code == 401

    revoked = client.delete("/api/v1/api-keys/reporting", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert "key" not in revoked.json()
    assert client.get("/api/v1/me", headers=bearer(key)).status_code == 401
    assert client.delete("/api/v1/api-keys/nothing", headers=admin).status_code == 404
    after = client.get("/api/v1/api-keys", headers=admin).json()
    assert {k["name"]: k["revoked"] for k in after["data"]}["reporting"] is True

    actions = [(r["action"], r["resource"]) for r in reversed(served.context.access.audit_log())]
    assert actions == [
        ("apikey_create", "api key reporting"),
        ("apikey_revoke", "api key reporting"),
    ]
    assert key not in str(served.context.access.audit_log())
