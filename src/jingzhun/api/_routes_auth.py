"""Console login and logout: a session cookie for users (API keys need none); users and API
keys managed over HTTP (``users:admin``: the admin role or an ``admin`` key).

``log_in`` and ``log_out`` are what the console's own login form calls, so both the JSON API
and the console pages share one session mechanism. The user and key endpoints call the same
``AccessControl`` methods as ``jingzhun user`` and ``jingzhun apikey``, and append every change
to the audit log (never a password or a key).
"""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from jingzhun.api._auth import SESSION_COOKIE
from jingzhun.api._context import ApiContext, Context, get_context, require
from jingzhun.api._schemas import (
    ApiKeyCreate,
    ApiKeyCreatedPublic,
    ApiKeyPublic,
    ApiKeysPublic,
    LoginCreate,
    PrincipalPublic,
    UserCreate,
    UserPublic,
    UsersPublic,
    UserUpdate,
)
from jingzhun.core import Permission, Principal, RefusedError, Role

router = APIRouter(prefix="/api/v1", tags=["auth"])

UsersAdmin = Annotated[Principal, Depends(require(Permission.USERS_ADMIN))]
Name = Annotated[str, Path(min_length=1, max_length=80)]


def log_in(request: Request, response: Response, name: str, password: str) -> Principal | None:
    """Check a user's name and password; on success start a session and set its cookie
    (HttpOnly, SameSite=Lax, Secure when the server is configured so). None when wrong.
    """
    context: ApiContext = get_context(request)
    principal = context.access.authenticate(name, password)
    if principal is None:
        return None
    token = context.access.start_session(principal)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(context.settings.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=context.settings.secure_cookies,
        path="/",
    )
    return principal


def log_out(request: Request, response: Response) -> None:
    """End the caller's session (if any) on the server and clear the cookie."""
    context: ApiContext = get_context(request)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        context.access.end_session(token)
    response.delete_cookie(SESSION_COOKIE, path="/")


def _public(principal: Principal) -> PrincipalPublic:
    return PrincipalPublic(
        name=principal.name,
        kind=principal.kind,
        role=principal.role.value if principal.role else None,
        scopes=sorted(s.value for s in principal.scopes),
        permissions=sorted(p.value for p in principal.permissions),
        sees_pii=principal.sees_pii,
    )


@router.post("/login", operation_id="auth-login", response_model=PrincipalPublic)
def login(body: LoginCreate, request: Request, response: Response) -> PrincipalPublic:
    """Log a user in (JSON body); sets the session cookie."""
    principal = log_in(request, response, body.name, body.password)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="wrong user name or password")
    return _public(principal)


@router.post("/login/form", operation_id="auth-login_form", response_model=PrincipalPublic)
def login_form(
    name: Annotated[str, Form(min_length=1, max_length=120)],
    password: Annotated[str, Form(min_length=1, max_length=200)],
    request: Request,
    response: Response,
) -> PrincipalPublic:
    """Log a user in from an HTML form; sets the session cookie."""
    principal = log_in(request, response, name, password)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="wrong user name or password")
    return _public(principal)


pages = APIRouter(include_in_schema=False)

_LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>jingzhun — log in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem}}
label,input,button{{display:block;width:100%;margin:.3rem 0}}input,button{{padding:.5rem}}
.error{{color:#b00020}}</style></head><body><h1>jingzhun</h1>{error}
<form method="post" action="/login"><input type="hidden" name="next" value="{next}">
<label>User <input name="name" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required>
</label><button type="submit">Log in</button></form></body></html>"""


def _local(target: str) -> str:
    """Only paths on this server are followed after login (no open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/console/"
    return target


@pages.get("/login")
def login_page(next: str = "/console/") -> HTMLResponse:
    """The login form of the console."""
    return HTMLResponse(_LOGIN_PAGE.format(error="", next=html.escape(_local(next), quote=True)))


@pages.post("/login", response_model=None)
def login_page_post(
    request: Request,
    name: Annotated[str, Form(max_length=120)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/console/",
) -> Response:
    """Log in from the form and go back to the page asked for."""
    redirect = RedirectResponse(_local(next), status_code=303)
    if log_in(request, redirect, name, password) is None:
        page = _LOGIN_PAGE.format(
            error='<p class="error">Wrong user name or password.</p>',
            next=html.escape(_local(next), quote=True),
        )
        return HTMLResponse(page, status_code=401)
    return redirect


@router.post("/logout", operation_id="auth-logout", status_code=204)
def logout(request: Request, response: Response, context: Context) -> None:
    """End the session."""
    log_out(request, response)


# -- users and API keys (users:admin) ------------------------------------------------------


@router.get("/users", tags=["users"], operation_id="users-list", response_model=UsersPublic)
def list_users(context: Context, principal: UsersAdmin) -> UsersPublic:
    """Every console user with role and state (never a password hash)."""
    users = [UserPublic(**u) for u in context.access.users()]
    return UsersPublic(data=users, count=len(users))


@router.post(
    "/users",
    tags=["users"],
    operation_id="users-create",
    response_model=UserPublic,
    status_code=status.HTTP_201_CREATED,
)
def create_user(body: UserCreate, context: Context, principal: UsersAdmin) -> UserPublic:
    """Add a console user (``jingzhun user add``); 409 when the name is taken."""
    if any(u["name"] == body.name for u in context.access.users()):
        raise HTTPException(409, detail=f"a user named '{body.name}' exists already")
    context.access.add_user(body.name, body.role, body.password)
    context.access.audit(principal, "user_create", f"user {body.name}", {"role": body.role.value})
    return UserPublic(**context.access.user(body.name))


def _not_yourself(principal: Principal, name: str, role: Role | None, disabled: bool) -> None:
    """A user may not disable or demote themselves (no admin locks themselves out)."""
    if principal.kind != "user" or principal.name != name:
        return
    if disabled or (role is not None and role is not Role.ADMIN):
        raise RefusedError(
            f"'{name}' may not disable or demote themselves: ask another administrator"
        )


@router.patch(
    "/users/{name}", tags=["users"], operation_id="users-update", response_model=UserPublic
)
def update_user(
    name: Name, body: UserUpdate, context: Context, principal: UsersAdmin
) -> UserPublic:
    """Change a user's role, password or state; a new password or disabling ends every
    session of the user, a new role applies at once.
    """
    _not_yourself(principal, name, body.role, bool(body.disabled))
    user = context.access.update_user(
        name, role=body.role, password=body.password, disabled=body.disabled
    )
    changed: dict[str, object] = {}
    if body.role is not None:
        changed["role"] = body.role.value
    if body.disabled is not None:
        changed["disabled"] = body.disabled
    if body.password is not None:
        changed["password"] = "changed"
    context.access.audit(principal, "user_update", f"user {name}", changed)
    return UserPublic(**user)


@router.delete(
    "/users/{name}", tags=["users"], operation_id="users-disable", response_model=UserPublic
)
def disable_user(name: Name, context: Context, principal: UsersAdmin) -> UserPublic:
    """Disable a user and end their sessions. Users are not deleted: the audit log names
    them; ``PATCH`` with ``disabled: false`` enables them again.
    """
    _not_yourself(principal, name, None, True)
    user = context.access.update_user(name, disabled=True)
    context.access.audit(principal, "user_disable", f"user {name}")
    return UserPublic(**user)


@router.get(
    "/api-keys", tags=["apikeys"], operation_id="apikeys-list", response_model=ApiKeysPublic
)
def list_api_keys(context: Context, principal: UsersAdmin) -> ApiKeysPublic:
    """Every API key: name, prefix, scopes, who made it, revoked (never a secret or hash)."""
    keys = [ApiKeyPublic(**k) for k in context.access.api_keys()]
    return ApiKeysPublic(data=keys, count=len(keys))


@router.post(
    "/api-keys",
    tags=["apikeys"],
    operation_id="apikeys-create",
    response_model=ApiKeyCreatedPublic,
    status_code=status.HTTP_201_CREATED,
)
def create_api_key(
    body: ApiKeyCreate, context: Context, principal: UsersAdmin
) -> ApiKeyCreatedPublic:
    """Make a key (``jingzhun apikey create``): the answer holds the key, this once only."""
    if any(k["name"] == body.name for k in context.access.api_keys()):
        raise HTTPException(409, detail=f"an API key named '{body.name}' exists already")
    scopes = [s.value for s in body.scopes]
    key = context.access.create_api_key(body.name, scopes, created_by=principal.name)
    context.access.audit(
        principal, "apikey_create", f"api key {body.name}", {"scopes": sorted(set(scopes))}
    )
    return ApiKeyCreatedPublic(**context.access.api_key(body.name), key=key)


@router.delete(
    "/api-keys/{name}",
    tags=["apikeys"],
    operation_id="apikeys-revoke",
    response_model=ApiKeyPublic,
)
def revoke_api_key(name: Name, context: Context, principal: UsersAdmin) -> ApiKeyPublic:
    """Revoke a key by name (``jingzhun apikey revoke``): refused from then on (other server
    processes stop accepting it within ``key_cache_seconds``). Keys are kept, revoked.
    """
    context.access.revoke_api_key(name)
    context.access.audit(principal, "apikey_revoke", f"api key {name}")
    return ApiKeyPublic(**context.access.api_key(name))
