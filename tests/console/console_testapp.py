"""The console's test app: FastAPI, the console router and a login read from cookies."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from fastapi import FastAPI, HTTPException, Request

from jingzhun.console import console_router
from jingzhun.core import Principal, Scope
from jingzhun.workspace import Workspace

ROLE_COOKIE = "test_role"
USER_COOKIE = "test_user"
API_KEY_ROLE = "collect-key"  # a principal that may only collect events (no "read")


def login_principal(request: Request) -> Principal:
    """The test login: role and name from cookies; no role cookie is no session (401)."""
    role = request.cookies.get(ROLE_COOKIE)
    if not role:
        raise HTTPException(401, "not logged in")
    name = request.cookies.get(USER_COOKIE) or role
    if role == API_KEY_ROLE:
        return Principal.api_key(name, {Scope.COLLECT})
    return Principal.user(name, role)


class LiveWorkspace:
    """Stands in for the API's ``Warehouse.live``: counts the writes that open it."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.opened = 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[Workspace]:
        self.opened += 1
        yield self.ws


def make_app(ws: Workspace) -> FastAPI:
    """FastAPI with the console mounted the way the API mounts it (``app.state.live``
    counts the writes that went through ``live``).
    """
    app = FastAPI()
    app.state.live = LiveWorkspace(ws)
    app.include_router(console_router(lambda: ws, login_principal, live=app.state.live))
    return app


def csrf_token(html: str) -> str:
    """The CSRF token a console page carries in its <meta> tag."""
    found = re.search(r'<meta name="csrf-token" content="([^"]*)">', html)
    assert found, "the page has no csrf-token meta tag"
    return found.group(1)
