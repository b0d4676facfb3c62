"""The collection fast path (``CollectFastPath``): it answers ``POST /v1/*`` below FastAPI,
exactly as the FastAPI routes do, and passes everything else through.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from api_support import basic, bearer
from fastapi import FastAPI
from fastapi.testclient import TestClient

from jingzhun.api import _routes_collect
from jingzhun.api._collect_asgi import COLLECT_PATHS, CollectFastPath

_HEADERS = ("content-type", "content-length", "www-authenticate")


def _routes_only(served: Any) -> TestClient:
    """The FastAPI routes alone, over the same context (no fast path in front)."""
    app = FastAPI()
    app.include_router(_routes_collect.router)
    app.state.jingzhun = served.context
    return TestClient(app)


def _cases(collect: str, reader: str) -> list[tuple[str, dict[str, Any]]]:
    big = "x" * (33 * 1024)
    track = {"userId": "u1", "event": "Signed Up"}
    packed = gzip.compress(json.dumps({"batch": [{"type": "track", **track}]}).encode())
    return [
        ("/v1/track", {"json": track, "headers": basic(collect)}),
        ("/v1/identify", {"json": {"userId": "u1", "traits": {"a": 1}}, "headers": basic(collect)}),
        ("/v1/page", {"json": {"anonymousId": "a1", "name": 3}, "headers": basic(collect)}),
        ("/v1/alias", {"json": {"userId": "u1"}, "headers": bearer(collect)}),
        ("/v1/group", {"json": {"userId": "u1", "type": "track"}, "headers": basic(collect)}),
        ("/v1/screen", {"json": {"anonymousId": "a1"}, "headers": basic(collect)}),
        ("/v1/track", {"json": track}),  # no key
        ("/v1/track", {"json": track, "headers": basic(reader)}),  # wrong scope
        ("/v1/track", {"json": track, "headers": basic("jz_00000000_" + "x" * 32)}),
        ("/v1/track", {"json": track, "headers": {"Authorization": "Basic %%%"}}),
        ("/v1/track", {"json": {**track, "writeKey": collect}}),
        ("/v1/track", {"json": {**track, "properties": {"p": big}}, "headers": basic(collect)}),
        ("/v1/track", {"content": b"{", "headers": basic(collect)}),
        ("/v1/track", {"content": b"[" * 100_000, "headers": basic(collect)}),
        ("/v1/track", {"content": b"x" * 40_000, "headers": basic(collect)}),
        ("/v1/batch", {"json": {"batch": 3}, "headers": basic(collect)}),
        ("/v1/batch", {"json": {"batch": []}, "headers": basic(collect)}),
        (
            "/v1/batch",
            {
                "json": {
                    "batch": [{"type": "track", **track}, {"type": "wave", "userId": "u"}],
                    "context": {"ip": "1.2.3.4"},
                },
                "headers": basic(collect),
            },
        ),
        ("/v1/import", {"json": {"batch": [{"type": "identify", "userId": "u"}]}}),
        (
            "/v1/batch",
            {
                "content": packed,
                "headers": {**basic(collect), "Content-Encoding": "gzip"},
            },
        ),
        (
            "/v1/batch",
            {"content": b"not gzip", "headers": {**basic(collect), "Content-Encoding": "gzip"}},
        ),
        (
            "/v1/batch",
            {
                "content": gzip.compress(b" " * 600_000),
                "headers": {**basic(collect), "Content-Encoding": "gzip"},
            },
        ),
    ]


def test_the_fast_path_answers_exactly_as_the_fastapi_routes(bare_project: Path, serve) -> None:
    served = serve(bare_project)
    collect, reader = served.key("collect"), served.key("read")
    routes = _routes_only(served)
    for path, request in _cases(collect, reader):
        fast = served.client.post(path, **request)
        slow = routes.post(path, **request)
        assert (fast.status_code, fast.content) == (slow.status_code, slow.content), path
        for header in _HEADERS:
            assert fast.headers.get(header) == slow.headers.get(header), (path, header)


def test_the_fast_path_serves_collection_without_the_routes(
    bare_project: Path, serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> None:
        raise AssertionError("the FastAPI route was used")

    monkeypatch.setattr(_routes_collect, "_collect", broken)
    served = serve(bare_project)
    key = served.key("collect")
    for n, path in enumerate(COLLECT_PATHS):
        kind = path.rsplit("/", 1)[1]
        message = {"userId": "u", "event": "E", "previousId": "p", "groupId": "g"}
        message["messageId"] = f"f-{n}"
        body = {"batch": [{"type": "track", **message}]} if kind in ("batch", "import") else message
        answer = served.client.post(path, json=body, headers=basic(key))
        assert (answer.status_code, answer.json()) == (200, {"success": True}), path
    assert served.context.log.stats()["stored"] == len(COLLECT_PATHS)


def test_everything_else_passes_through_and_openapi_lists_the_endpoints(
    bare_project: Path, serve
) -> None:
    served = serve(bare_project)
    assert served.client.get("/healthz").json() == {"ok": True}
    assert served.client.get("/v1/track").status_code == 405
    assert served.client.post("/v1/nothing", json={}).status_code == 404
    paths = served.client.get("/openapi.json").json()["paths"]
    assert {p for p in paths if p.startswith("/v1/")} == set(COLLECT_PATHS)


def test_a_session_cookie_is_a_caller_too_and_a_revoked_key_stops(
    bare_project: Path, serve
) -> None:
    served = serve(bare_project)  # key_cache_seconds=0 in the tests: revocation at once
    access = served.context.access
    access.add_user("root", "admin", "s3cret-pass")
    access.add_user("ana", "analyst", "s3cret-pass")
    track = {"userId": "u1", "event": "E"}
    for name, status in (("root", 200), ("ana", 403)):
        served.client.cookies.clear()
        login = served.client.post("/api/v1/login", json={"name": name, "password": "s3cret-pass"})
        assert login.status_code == 200
        assert served.client.post("/v1/track", json=track).status_code == status
    served.client.cookies.clear()
    key = served.key("collect")
    assert served.client.post("/v1/track", json=track, headers=basic(key)).status_code == 200
    access.revoke_api_key("k1-collect")
    assert served.client.post("/v1/track", json=track, headers=basic(key)).status_code == 401


def test_a_client_gone_before_its_body_gets_no_answer_and_nothing_is_stored(
    bare_project: Path, serve
) -> None:
    served = serve(bare_project)

    async def unreachable(scope: object, receive: object, send: object) -> None:
        raise AssertionError("passed on")

    sent: list[object] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def send(message: object) -> None:
        sent.append(message)

    fast = CollectFastPath(unreachable, served.context)
    scope = {"type": "http", "method": "POST", "path": "/v1/track", "headers": []}
    asyncio.run(fast(scope, receive, send))
    assert sent == []
    assert served.context.log.stats()["stored"] == 0
