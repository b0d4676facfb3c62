"""``create_app(settings)``: the one FastAPI application of ``jingzhun serve``."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from jingzhun.ads import AdServer, ads_router, open_ad_server
from jingzhun.api._auth import AccessControl
from jingzhun.api._collect import CollectionLog, GroupCommitter
from jingzhun.api._collect_asgi import CollectFastPath
from jingzhun.api._context import ApiContext, console_principal
from jingzhun.api._loader import Loader
from jingzhun.api._routes_auth import pages as login_pages
from jingzhun.api._routes_auth import router as auth_router
from jingzhun.api._routes_collect import SCHEMAS
from jingzhun.api._routes_collect import router as collect_router
from jingzhun.api._routes_resources import router as resources_router
from jingzhun.api._routes_tracking import router as tracking_router
from jingzhun.api._settings import ApiSettings
from jingzhun.api._warehouse import NoSnapshot, Warehouse, WarehouseBusy
from jingzhun.core import (
    EngineError,
    JingzhunError,
    NotFoundError,
    RefusedError,
    SpecError,
    load_project,
)
from jingzhun.privacy import seal_store
from jingzhun.store import OperationalStore

log = logging.getLogger("jingzhun.api")


def build_context(settings: ApiSettings) -> ApiContext:
    """Open the project's store (migrated), collection log and warehouse access."""
    project = load_project(settings.root)
    store = OperationalStore.open(project.settings.stores.operational, project.root)
    store.migrate()
    seal_store(project, store)  # addresses and consent subjects sealed at rest
    access = AccessControl(
        store,
        project.secret("api_keys"),
        key_cache_seconds=settings.key_cache_seconds,
        session_hours=settings.session_hours,
    )
    warehouse = Warehouse(project.root, settings.state_dir, store)
    # message bodies (an identify's traits hold e-mails) encrypted as the warehouse's columns
    collection = CollectionLog(settings.collect_dir / "events.db", cipher=warehouse.cipher)
    loader = Loader(
        collection,
        warehouse,
        settings.collect_dir / "batches",
        refresh_as_of=settings.refresh_as_of,
        refresh_probabilistic=settings.refresh_probabilistic,
    )
    return ApiContext(
        settings=settings,
        store=store,
        access=access,
        log=collection,
        committer=GroupCommitter(collection),
        warehouse=warehouse,
        loader=loader,
        tracking_secret=settings.resolved_tracking_secret(),
    )


async def _load_forever(context: ApiContext, interval: float) -> None:
    """Every ``interval`` seconds: one loader pass in a worker thread (one process at a time)."""
    while True:
        await asyncio.sleep(interval)
        try:
            result = await asyncio.to_thread(context.loader.run_once)
        except Exception:  # logged, tried again next time; collected events stay in the log
            log.exception("collect loader pass failed")
            continue
        if not result.busy or result.messages:
            context.loader.last_result = result


def _error(status: int, exc: JingzhunError, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"detail": str(exc), "error": type(exc).__name__}
    if isinstance(exc, SpecError):
        body["problems"] = [str(p) for p in exc.problems]
    return JSONResponse(body, status_code=status, **extra)


def _install_error_handlers(app: FastAPI, retry_seconds: int) -> None:
    @app.exception_handler(JingzhunError)
    async def jingzhun_error(request: Request, exc: JingzhunError) -> JSONResponse:
        retry = {"Retry-After": str(retry_seconds)}
        if isinstance(exc, WarehouseBusy | NoSnapshot):
            return _error(503, exc, headers=retry)
        if isinstance(exc, NotFoundError):
            return _error(404, exc)
        if isinstance(exc, SpecError):
            return _error(422, exc)
        if isinstance(exc, RefusedError):
            return _error(409, exc)
        if isinstance(exc, EngineError):
            return _error(503, exc, headers=retry)
        return _error(400, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"path": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": "invalid request", "errors": problems}, status_code=422)


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(SCHEMAS)
    components.setdefault("securitySchemes", {}).update(
        {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "an API key"},
            "writeKey": {
                "type": "http",
                "scheme": "basic",
                "description": "Segment style: the write key as user name, empty password",
            },
            "session": {"type": "apiKey", "in": "cookie", "name": "jingzhun_session"},
        }
    )
    for path, operations in schema.get("paths", {}).items():
        if path.startswith("/api/v1/") and path not in ("/api/v1/login", "/api/v1/login/form"):
            for operation in operations.values():
                operation.setdefault("security", [{"apiKey": []}, {"session": []}])
    app.openapi_schema = schema
    return schema


def _mount_console(app: FastAPI, context: ApiContext) -> bool:
    """Mount the console's pages when ``jingzhun.console`` is installed (it may not be yet).

    The console reads through the same snapshot workspace as the API and knows its users by
    ``console_principal`` (the login session; ``/login`` otherwise).
    """
    try:
        console = importlib.import_module("jingzhun.console")
    except ImportError:
        return False
    factory = getattr(console, "console_router", None)
    if factory is None:
        return False
    app.include_router(
        factory(context.warehouse.workspace, console_principal, live=context.warehouse.live)
    )
    return True


def _mount_ads(app: FastAPI, context: ApiContext) -> AdServer | None:
    """Serve ad decisions (``/ads/decide``, impressions, clicks, conversions) when the project
    has ad campaigns under ``ads/``; their audiences are indexed from the warehouse snapshot
    once, at start (reopen the server to pick up a new build).
    """
    folder = context.warehouse.project.root / "ads"
    if not any(folder.glob("*.y*ml")):
        return None
    ws = context.warehouse.workspace()
    server = open_ad_server(ws.project, ws.engine, context.store)
    app.include_router(ads_router(server))
    return server


def create_app(settings: ApiSettings, *, context: ApiContext | None = None) -> FastAPI:
    """The HTTP API, tracking endpoints and (when installed) the console over one project.

    Parameters
    ----------
    settings
        Built at the entry point (``jingzhun serve`` or a test).
    context
        An already opened ``ApiContext`` (tests); built from ``settings`` when None.
    """
    ctx = context or build_context(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx.committer.start()
        await asyncio.to_thread(ctx.warehouse.refresh_snapshot)  # reads answer from the start
        task = None
        if settings.load_interval_seconds > 0:
            task = asyncio.create_task(_load_forever(ctx, settings.load_interval_seconds))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if app.state.ad_server is not None:
                app.state.ad_server.close()
            ctx.close()

    app = FastAPI(
        title="jingzhun",
        version="0.1.0",
        description=(
            "Precision-marketing API: Segment-compatible event collection (/v1/*), profiles, "
            "segments, campaigns, models, reports, consent and data-subject requests "
            "(/api/v1/*), e-mail tracking and unsubscribe."
        ),
        lifespan=lifespan,
    )
    app.state.jingzhun = ctx
    _install_error_handlers(app, settings.busy_retry_seconds)
    app.include_router(collect_router)
    app.include_router(auth_router)
    app.include_router(login_pages)
    app.include_router(resources_router)
    app.include_router(tracking_router)

    @app.get("/healthz", tags=["status"], operation_id="status-health")
    def health() -> dict[str, bool]:
        """Liveness: the process answers."""
        return {"ok": True}

    app.state.console_mounted = _mount_console(app, ctx)
    ad_server = _mount_ads(app, ctx)
    app.state.ad_server = ad_server
    # Segment's POST /v1/* answered below FastAPI (same checks, answers and group commit);
    # the routes above stay for the OpenAPI document
    app.add_middleware(CollectFastPath, context=ctx)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
