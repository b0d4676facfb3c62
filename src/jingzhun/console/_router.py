"""The console's routes: server-rendered pages under ``/console``, two small JSON calls for the
segment builder, and the console's static files (plotly.js from the installed plotly package).

No ``from __future__ import annotations`` here: FastAPI reads the parameters' annotations at
run time, and they name the caller's ``principal`` dependency, a local of ``console_router``.
"""

import contextlib
import functools
import hashlib
import logging
import re
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from importlib import resources
from typing import Annotated, Any

import plotly
from fastapi import APIRouter, Depends, Form, Header, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import BaseModel, Field

from jingzhun.console import _csrf as csrf
from jingzhun.console import _data as data
from jingzhun.core import (
    MIN_GROUP_SIZE,
    EngineError,
    JingzhunError,
    NotFoundError,
    Permission,
    Principal,
    RefusedError,
    SpecError,
)
from jingzhun.profile import PROFILES
from jingzhun.workspace import Workspace

logger = logging.getLogger(__name__)
MAX_RULE_CHARS = 20_000
# Pages hold personal data: never cached; scripts only from the console's own files.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
# A model report is one self-contained page from jingzhun.models with plotly.js and its
# charts inline; it may run its own inline scripts and reach nothing else.
REPORT_HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src data:; font-src data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
}
STATIC_TYPES = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "plotly.min.js": "text/javascript; charset=utf-8",
}
ACTIONS = {
    "planned": "Plan made and stored.",
    "approved": "Plan approved.",
    "launched": "Plan launched: messages handed to delivery.",
}


class Forbidden(Exception):
    """The principal lacks a permission for what it asked."""

    def __init__(self, principal: Principal, permission: Permission, action: str) -> None:
        role = principal.role.value if principal.role else "api key"
        super().__init__(
            f"{principal.name} ({role}) may not {action}: that needs the permission "
            f"'{permission.value}'. Ask an administrator for a role that has it."
        )


class CsrfRejected(Exception):
    """A write came without the token of this user's console session."""

    def __init__(self) -> None:
        super().__init__(
            "This form expired or did not come from the console (its security token is "
            "missing or wrong). Reload the page and try again."
        )


class RuleIn(BaseModel):
    """A rule typed in the segment builder."""

    rule: str = Field(max_length=MAX_RULE_CHARS)


class ExplainIn(RuleIn):
    """A rule and the customer to explain it for (any id the 360° view accepts)."""

    customer: str = Field(min_length=1, max_length=320)


@functools.cache
def _static(name: str) -> bytes:
    if name == "plotly.min.js":
        return (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()
    return (resources.files("jingzhun.console") / "static" / name).read_bytes()


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("jingzhun.console", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _number
    return env


_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2}(\.\d+)?)?(\+00:00|Z)?$")


def _number(value: Any, digits: int = 4) -> str:
    """A cell as people read it: ``1,234``, ``0.6956``, ``–`` for none, UTC times to the minute."""
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    text = str(value)
    when = _TIMESTAMP.match(text)
    if when:
        return f"{when.group(1)} {when.group(2)}" + (" UTC" if when.group(5) else "")
    return text


class Console:
    """The state behind the routes: the workspace getter, one lock, templates, the CSRF key.

    Every use of the workspace holds the lock: the embedded warehouse is one connection, and
    the server runs synchronous routes on several threads.
    """

    def __init__(self, workspace: Callable[[], Workspace]) -> None:
        self.workspace = workspace
        self.lock = threading.RLock()
        self.env = _environment()
        self._secret: bytes | None = None

    def secret(self, ws: Workspace) -> bytes:
        """The project's console key (``state/keys/console.key``), read once."""
        if self._secret is None:
            self._secret = ws.project.secret("console")
        return self._secret

    # -- responses --------------------------------------------------------------------------

    def page(
        self,
        request: Request,
        principal: Principal,
        template: str,
        *,
        status: int = 200,
        ws: Workspace | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """A rendered page; sets the CSRF cookie when the browser has none yet."""
        nonce = request.cookies.get(csrf.COOKIE)
        fresh = not nonce
        if not nonce:
            nonce = csrf.new_nonce()
        token = csrf.token_for(self.secret(ws), principal.name, nonce) if ws is not None else ""

        def url(route: str, /, **params: Any) -> str:
            return request.url_for(route, **{k: str(v) for k, v in params.items()}).path

        body = self.env.get_template(template).render(
            user=principal,
            role=principal.role.value if principal.role else "api key",
            csrf_token=token,
            csrf_field=csrf.FIELD,
            url=url,
            k=MIN_GROUP_SIZE,
            plotly_version=plotly.__version__,
            Permission=Permission,
            **context,
        )
        response = HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)
        if fresh:
            response.set_cookie(
                csrf.COOKIE,
                nonce,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                path=url("console-overview").rstrip("/") or "/",
            )
        return response

    def error(
        self,
        request: Request,
        principal: Principal,
        status: int,
        title: str,
        message: str,
        problems: list[str] | None = None,
    ) -> HTMLResponse:
        """A clear error page with the status code that says what happened."""
        return self.page(
            request,
            principal,
            "error.html",
            status=status,
            title=title,
            message=message,
            problems=problems or [],
        )

    def run(
        self,
        request: Request,
        principal: Principal,
        work: Callable[[Workspace], Response],
    ) -> Response:
        """Run a page's work under the lock and turn jingzhun's errors into error pages."""
        if not principal.can(Permission.READ):
            return self.error(
                request,
                principal,
                403,
                "Not allowed",
                str(Forbidden(principal, Permission.READ, "use the console")),
            )
        try:
            with self.lock:
                return work(self.workspace())
        except Forbidden as exc:
            return self.error(request, principal, 403, "Not allowed", str(exc))
        except CsrfRejected as exc:
            return self.error(request, principal, 403, "Form rejected", str(exc))
        except SpecError as exc:
            problems = [str(p) for p in exc.problems]
            return self.error(request, principal, 422, "The rule has problems", "", problems)
        except NotFoundError as exc:
            return self.error(request, principal, 404, "Not found", str(exc))
        except RefusedError as exc:
            return self.error(request, principal, 409, "Refused", str(exc))
        except EngineError as exc:
            page = self.error(request, principal, 503, "The warehouse could not answer", str(exc))
            page.headers["Retry-After"] = "5"
            return page
        except JingzhunError as exc:
            return self.error(request, principal, 400, "Could not do that", str(exc))
        except Exception as exc:
            # the message stays on the page for the logged-in user; the log gets the kind only
            # (an error's text may quote data, and personal data never goes to logs)
            logger.error("console page %s failed with %s", request.url.path, type(exc).__name__)
            return self.error(
                request,
                principal,
                500,
                "Something went wrong",
                f"The console could not do that ({type(exc).__name__}: {exc}).",
            )

    def json(
        self, principal: Principal, work: Callable[[Workspace], dict[str, Any]]
    ) -> JSONResponse:
        """A JSON call's answer; errors as ``{"ok": false, ...}`` with a fitting status."""
        if not principal.can(Permission.READ):
            forbidden = Forbidden(principal, Permission.READ, "use the console")
            return _json_error(403, "Forbidden", str(forbidden))
        try:
            with self.lock:
                return JSONResponse(work(self.workspace()), headers={"Cache-Control": "no-store"})
        except CsrfRejected as exc:
            return _json_error(403, "CsrfRejected", str(exc))
        except SpecError as exc:
            return _json_error(
                422, "SpecError", "the rule has problems", [p.message for p in exc.problems]
            )
        except NotFoundError as exc:
            return _json_error(404, "NotFoundError", str(exc))
        except EngineError as exc:
            return _json_error(503, type(exc).__name__, str(exc))
        except JingzhunError as exc:
            return _json_error(400, type(exc).__name__, str(exc))
        except Exception as exc:
            logger.error("console call failed with %s", type(exc).__name__)
            return _json_error(500, type(exc).__name__, str(exc))

    def check_csrf(
        self, ws: Workspace, request: Request, principal: Principal, token: str | None
    ) -> None:
        """Refuse a write whose token does not belong to this user's cookie."""
        nonce = request.cookies.get(csrf.COOKIE)
        if not csrf.token_ok(self.secret(ws), principal.name, nonce, token):
            raise CsrfRejected()


def _json_error(
    status: int, error: str, message: str, problems: list[str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"ok": False, "error": error, "message": message, "problems": problems or []},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def _require(principal: Principal, permission: Permission, action: str) -> None:
    if not principal.can(permission):
        raise Forbidden(principal, permission, action)


def console_router(
    workspace: Callable[[], Workspace],
    principal: Callable[..., Principal],
    *,
    live: Callable[[], AbstractContextManager[Workspace]] | None = None,
) -> APIRouter:
    """The web console: every page under ``/console``, for the API to include.

    Parameters
    ----------
    workspace
        Gives the ``Workspace`` the pages read (called once per request; a read-only
        snapshot is fine).
    principal
        A FastAPI dependency that gives the logged-in ``Principal`` (the API's login session;
        it answers without a session, e.g. with a redirect to its login page).
    live
        Opens a workspace that may write the warehouse, as a context manager (the API's
        ``Warehouse.live``): campaign plans and launches write ``send_plan`` and coupons
        through it. Without it they write through ``workspace()``.
    """
    console = Console(workspace)
    writable = live or (lambda: contextlib.nullcontext(workspace()))
    router = APIRouter(include_in_schema=False)

    @router.get("/console", name="console-overview-bare")
    @router.get("/console/", name="console-overview")
    def overview(request: Request, user: Annotated[Principal, Depends(principal)]) -> Response:
        def work(ws: Workspace) -> Response:
            return console.page(
                request,
                user,
                "overview.html",
                ws=ws,
                nav="overview",
                project=ws.project.name,
                **data.overview_page(ws, user),
            )

        return console.run(request, user, work)

    @router.get("/console/customers", name="console-customers")
    def customers(
        request: Request, user: Annotated[Principal, Depends(principal)], q: str = ""
    ) -> Response:
        def work(ws: Workspace) -> Response:
            found = data.search_customers(ws, q[:320], user)
            return console.page(request, user, "customers.html", ws=ws, nav="customers", **found)

        return console.run(request, user, work)

    @router.get("/console/customers/{customer}", name="console-customer")
    def customer(
        request: Request, customer: str, user: Annotated[Principal, Depends(principal)]
    ) -> Response:
        def work(ws: Workspace) -> Response:
            found = data.customer_page(ws, customer, user)
            return console.page(request, user, "customer.html", ws=ws, nav="customers", **found)

        return console.run(request, user, work)

    @router.get("/console/segments", name="console-segments")
    def segments(request: Request, user: Annotated[Principal, Depends(principal)]) -> Response:
        def work(ws: Workspace) -> Response:
            rows = data.segment_list(ws, user)
            return console.page(
                request,
                user,
                "segments.html",
                ws=ws,
                nav="segments",
                segments=rows,
                as_of=ws.segments.as_of().isoformat(),
            )

        return console.run(request, user, work)

    def builder_page(
        request: Request,
        user: Principal,
        ws: Workspace,
        *,
        name: str = "",
        description: str = "",
        rule: str = "",
        problems: list[str] | None = None,
        status: int = 200,
    ) -> Response:
        return console.page(
            request,
            user,
            "builder.html",
            ws=ws,
            nav="segments",
            status=status,
            name=name,
            description=description,
            rule=rule,
            problems=problems or [],
            can_save=user.can(Permission.SEGMENTS_WRITE),
            fields=_profile_fields(ws),
        )

    @router.get("/console/segments/new", name="console-segment-builder")
    def builder(
        request: Request,
        user: Annotated[Principal, Depends(principal)],
        start: Annotated[str, "a segment to start from"] = "",
    ) -> Response:
        def work(ws: Workspace) -> Response:
            rule, description = "", ""
            if start:
                spec = ws.segments.spec(start)
                rule, description = data.rule_text(spec), spec.description
            return builder_page(request, user, ws, rule=rule, description=description)

        return console.run(request, user, work)

    @router.post("/console/segments", name="console-segment-create")
    def create_segment(
        request: Request,
        user: Annotated[Principal, Depends(principal)],
        name: Annotated[str, Form(max_length=80)] = "",
        description: Annotated[str, Form(max_length=500)] = "",
        rule: Annotated[str, Form(max_length=MAX_RULE_CHARS)] = "",
        csrf_token: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        def work(ws: Workspace) -> Response:
            _require(user, Permission.SEGMENTS_WRITE, "create segments")
            console.check_csrf(ws, request, user, csrf_token)
            try:
                data.save_segment(ws, name, description, rule)
            except (SpecError, RefusedError) as exc:
                problems = (
                    [str(p) for p in exc.problems] if isinstance(exc, SpecError) else [str(exc)]
                )
                status = 422 if isinstance(exc, SpecError) else 409
                return builder_page(
                    request,
                    user,
                    ws,
                    name=name,
                    description=description,
                    rule=rule,
                    problems=problems,
                    status=status,
                )
            target = request.url_for("console-segment", name=name.strip()).path
            return RedirectResponse(f"{target}?saved=1", status_code=303)

        return console.run(request, user, work)

    @router.get("/console/segments/{name}", name="console-segment")
    def segment(
        request: Request,
        name: str,
        user: Annotated[Principal, Depends(principal)],
        saved: int = 0,
    ) -> Response:
        def work(ws: Workspace) -> Response:
            found = data.segment_page(ws, name, user)
            return console.page(
                request, user, "segment.html", ws=ws, nav="segments", saved=bool(saved), **found
            )

        return console.run(request, user, work)

    @router.post("/console/api/segments/count", name="console-api-segment-count")
    def count_rule(
        request: Request,
        body: RuleIn,
        user: Annotated[Principal, Depends(principal)],
        x_csrf_token: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        def work(ws: Workspace) -> dict[str, Any]:
            console.check_csrf(ws, request, user, x_csrf_token)
            return data.draft_count(ws, body.rule, user)

        return console.json(user, work)

    @router.post("/console/api/segments/explain", name="console-api-segment-explain")
    def explain_rule(
        request: Request,
        body: ExplainIn,
        user: Annotated[Principal, Depends(principal)],
        x_csrf_token: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        def work(ws: Workspace) -> dict[str, Any]:
            console.check_csrf(ws, request, user, x_csrf_token)
            return data.draft_explain(ws, body.rule, body.customer)

        return console.json(user, work)

    @router.get("/console/campaigns", name="console-campaigns")
    def campaigns(request: Request, user: Annotated[Principal, Depends(principal)]) -> Response:
        def work(ws: Workspace) -> Response:
            rows = data.campaign_list(ws, user)
            return console.page(
                request, user, "campaigns.html", ws=ws, nav="campaigns", campaigns=rows
            )

        return console.run(request, user, work)

    @router.get("/console/campaigns/{name}", name="console-campaign")
    def campaign(
        request: Request,
        name: str,
        user: Annotated[Principal, Depends(principal)],
        done: str = "",
        queued: int | None = None,
    ) -> Response:
        def work(ws: Workspace) -> Response:
            found = data.campaign_page(ws, name, user)
            message = ACTIONS.get(done)
            if message and done == "launched" and queued is not None:
                message = f"{message} {queued:,} message(s) queued now."
            return console.page(
                request,
                user,
                "campaign.html",
                ws=ws,
                nav="campaigns",
                message=message,
                **found,
            )

        return console.run(request, user, work)

    def campaign_action(
        request: Request,
        name: str,
        user: Principal,
        token: str,
        permission: Permission,
        action: str,
        do: Callable[[Workspace], str],
    ) -> Response:
        def work(ws: Workspace) -> Response:
            _require(user, permission, action)
            console.check_csrf(ws, request, user, token)
            ws.campaigns.spec(name)  # an unknown campaign is a 404 before anything runs
            with writable() as target_ws:
                query = do(target_ws)
            target = request.url_for("console-campaign", name=name).path
            return RedirectResponse(f"{target}?{query}", status_code=303)

        return console.run(request, user, work)

    @router.post("/console/campaigns/{name}/plan", name="console-campaign-plan")
    def plan(
        request: Request,
        name: str,
        user: Annotated[Principal, Depends(principal)],
        csrf_token: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        def do(ws: Workspace) -> str:
            ws.campaigns.plan(name, by=user.name)
            return "done=planned"

        return campaign_action(
            request, name, user, csrf_token, Permission.CAMPAIGNS_WRITE, "plan campaigns", do
        )

    @router.post("/console/campaigns/{name}/approve", name="console-campaign-approve")
    def approve(
        request: Request,
        name: str,
        user: Annotated[Principal, Depends(principal)],
        csrf_token: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        def do(ws: Workspace) -> str:
            ws.campaigns.approve(name, by=user.name)
            return "done=approved"

        return campaign_action(
            request, name, user, csrf_token, Permission.CAMPAIGNS_APPROVE, "approve campaigns", do
        )

    @router.post("/console/campaigns/{name}/launch", name="console-campaign-launch")
    def launch(
        request: Request,
        name: str,
        user: Annotated[Principal, Depends(principal)],
        csrf_token: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        def do(ws: Workspace) -> str:
            _, queued = ws.campaigns.launch(name, by=user.name)
            return f"done=launched&queued={int(queued)}"

        return campaign_action(
            request, name, user, csrf_token, Permission.CAMPAIGNS_WRITE, "launch campaigns", do
        )

    @router.get("/console/models", name="console-models")
    def models(request: Request, user: Annotated[Principal, Depends(principal)]) -> Response:
        def work(ws: Workspace) -> Response:
            rows = data.model_list(ws)
            return console.page(request, user, "models.html", ws=ws, nav="models", models=rows)

        return console.run(request, user, work)

    @router.get("/console/models/{model_id}/report", name="console-model-report")
    def model_report(
        request: Request, model_id: str, user: Annotated[Principal, Depends(principal)]
    ) -> Response:
        def work(ws: Workspace) -> Response:
            return HTMLResponse(data.model_report(ws, model_id), headers=REPORT_HEADERS)

        return console.run(request, user, work)

    @router.get("/console/static/{name}", name="console-static")
    def static(name: str, if_none_match: Annotated[str | None, Header()] = None) -> Response:
        if name not in STATIC_TYPES:
            return Response("no such file", status_code=404, media_type="text/plain")
        body = _static(name)
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "public, max-age=3600", **_NOSNIFF}
        if if_none_match == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=STATIC_TYPES[name], headers=headers)

    return router


_NOSNIFF = {"X-Content-Type-Options": "nosniff"}


def _profile_fields(ws: Workspace) -> list[str]:
    """Profile columns and custom tags a rule may name, for the builder's hint list."""
    engine = ws.engine
    if not engine.exists(PROFILES):
        return []
    return [c for c in engine.read(PROFILES).columns if c not in {"as_of", "identifiers"}]
