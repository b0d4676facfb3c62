"""Console login and logout: a session cookie for users (API keys need none).

``log_in`` and ``log_out`` are what the console's own login form calls, so both the JSON API
and the console pages share one session mechanism.
"""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from jingzhun.api._auth import SESSION_COOKIE
from jingzhun.api._context import ApiContext, Context, get_context
from jingzhun.api._schemas import LoginCreate, PrincipalPublic
from jingzhun.core import Principal

router = APIRouter(prefix="/api/v1", tags=["auth"])


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
