"""The HTTP API of ``jingzhun serve``: Segment-compatible event collection, the resource API,
e-mail tracking, unsubscribe and preferences, and the console's login.

``create_app(ApiSettings(project=...))`` builds the FastAPI application; nothing is created at
import time. The console's pages use ``console_principal`` (or ``current_principal``) as their
FastAPI dependency and ``log_in`` / ``log_out`` for sessions.
"""

from jingzhun.api._app import build_context, create_app
from jingzhun.api._auth import SESSION_COOKIE, AccessControl, check_password, hash_password
from jingzhun.api._collect import CollectedRow, CollectionLog, GroupCommitter
from jingzhun.api._context import (
    ApiContext,
    Context,
    CurrentPrincipal,
    console_principal,
    current_principal,
    get_context,
    require,
)
from jingzhun.api._events import MESSAGE_TYPES, Problem, check_message, customer_row, event_row
from jingzhun.api._loader import COLLECT_SOURCE, Loader, LoadResult, collect_source_spec
from jingzhun.api._routes_auth import log_in, log_out
from jingzhun.api._settings import ApiSettings
from jingzhun.api._warehouse import NoSnapshot, Warehouse, WarehouseBusy

__all__ = [
    "COLLECT_SOURCE",
    "MESSAGE_TYPES",
    "SESSION_COOKIE",
    "AccessControl",
    "ApiContext",
    "ApiSettings",
    "CollectedRow",
    "CollectionLog",
    "Context",
    "CurrentPrincipal",
    "GroupCommitter",
    "LoadResult",
    "Loader",
    "NoSnapshot",
    "Problem",
    "Warehouse",
    "WarehouseBusy",
    "build_context",
    "check_message",
    "check_password",
    "collect_source_spec",
    "console_principal",
    "create_app",
    "current_principal",
    "customer_row",
    "event_row",
    "get_context",
    "hash_password",
    "log_in",
    "log_out",
    "require",
]
