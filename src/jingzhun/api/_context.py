"""What one server process holds, and the FastAPI dependencies that hand it to routes.

Built in ``create_app(settings)`` (never at import time) and kept on ``app.state.jingzhun``;
routes get it and the caller's ``Principal`` through ``Annotated[..., Depends()]`` aliases.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, status

from jingzhun.api._auth import SESSION_COOKIE, AccessControl
from jingzhun.api._collect import CollectionLog, GroupCommitter
from jingzhun.api._loader import Loader
from jingzhun.api._settings import ApiSettings
from jingzhun.api._warehouse import Warehouse
from jingzhun.core import Permission, Principal
from jingzhun.store import OperationalStore


@dataclass
class ApiContext:
    """The server's settings, stores, access control, collection log and warehouse access."""

    settings: ApiSettings
    store: OperationalStore
    access: AccessControl
    log: CollectionLog
    committer: GroupCommitter
    warehouse: Warehouse
    loader: Loader
    tracking_secret: str | None

    def close(self) -> None:
        """Finish pending writes, close every snapshot reader and the store."""
        self.committer.stop()
        self.warehouse.close()
        self.store.close()


def get_context(request: Request) -> ApiContext:
    """The server's ``ApiContext`` (set by ``create_app``)."""
    context: ApiContext = request.app.state.jingzhun
    return context


Context = Annotated[ApiContext, Depends(get_context)]


def _unauthorized(detail: str, scheme: str = "Bearer") -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": scheme}
    )


def principal_from_request(request: Request, context: ApiContext) -> Principal | None:
    """Who sends the request: ``Authorization: Bearer <API key>``, Basic with an API key as
    the user name (Segment's write key), or the console's session cookie. None: nobody.
    """
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and value:
        return context.access.principal_for_key(value)
    if scheme == "basic" and value:
        key = basic_user(value)
        return context.access.principal_for_key(key) if key else None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        return context.access.principal_for_session(token)
    return None


def basic_user(value: str) -> str | None:
    """The user-name part of a Basic credential (Segment puts the write key there)."""
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _ = decoded.partition(":")
    return user or None


def current_principal(request: Request, context: Context) -> Principal:
    """The caller (API key or logged-in user); 401 when there is none or it is not valid.

    The console's routes use it as ``Annotated[Principal, Depends(current_principal)]``.
    """
    principal = principal_from_request(request, context)
    if principal is None:
        raise _unauthorized(
            "authenticate with 'Authorization: Bearer <API key>' or log in (POST /api/v1/login)"
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def console_principal(request: Request, context: Context) -> Principal:
    """Like ``current_principal``, but a visitor without a session is sent to ``/login``
    (303) and comes back to the page afterwards: the dependency the console's pages use.
    """
    principal = principal_from_request(request, context)
    if principal is None:
        target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        raise HTTPException(
            status.HTTP_303_SEE_OTHER, headers={"Location": f"/login?next={target}"}
        )
    return principal


def require(permission: Permission) -> Callable[[Principal], Principal]:
    """A dependency that lets through only principals with ``permission`` (else 403)."""

    def check(principal: CurrentPrincipal) -> Principal:
        if not principal.can(permission):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"{principal.kind} '{principal.name}' lacks the permission "
                f"'{permission.value}'",
            )
        return principal

    return check


Reader = Annotated[Principal, Depends(require(Permission.READ))]
