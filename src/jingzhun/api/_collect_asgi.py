"""The collection fast path: Segment's ``POST /v1/*`` served below FastAPI.

A single event costs little to check and store (a dict, a JSON dump, a share of a group
commit); routing it through FastAPI and Starlette (request object, dependency solving,
response object, middleware) cost several times that. ``CollectFastPath`` is a bare ASGI
middleware that answers ``POST /v1/track, identify, page, screen, alias, group, batch,
import`` itself and hands every other request to the application unchanged.

Both ways in share one implementation: ``read_body`` (size limits, gzip), ``principal_for``
(write key as Basic user name, Bearer, session cookie; the ``writeKey`` body field) and
``collect`` (JSON, scope check, ``check_message``, group commit, the answer). The FastAPI routes
in ``_routes_collect`` call the same functions, so they stay in the OpenAPI document (and
answer whoever mounts the router without the middleware) with identical behaviour.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from jingzhun.api._auth import SESSION_COOKIE
from jingzhun.api._context import ApiContext, basic_user
from jingzhun.api._events import MESSAGE_TYPES, Accepted, Problem, check_message, received_now
from jingzhun.core import Permission, Principal

# path → the endpoint's message type (None: a batch)
COLLECT_PATHS: dict[str, str | None] = {
    **{f"/v1/{kind}": kind for kind in MESSAGE_TYPES},
    "/v1/batch": None,
    "/v1/import": None,
}
_JSON = b"application/json"


@dataclass(frozen=True)
class Answer:
    """What a collection request is answered: status, JSON body, extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """ASGI headers, in the order Starlette's ``Response`` writes them."""
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers]
        return [
            *extra,
            (b"content-length", str(len(self.body)).encode()),
            (b"content-type", _JSON),
        ]


OK = Answer(200, b'{"success":true}')
UNAUTHORIZED = Answer(
    401,
    b'{"success":false,"errors":[{"path":"authorization","message":"send the write '
    b'key as the Basic auth user name (an API key with the collect scope)"}]}',
    (("WWW-Authenticate", 'Basic realm="jingzhun"'),),
)


def problems_answer(status: int, problems: list[Problem], stored: int = 0) -> Answer:
    """A failure: ``{"success": false, "stored": n, "errors": [{path, message}, ...]}``."""
    body = {"success": False, "stored": stored, "errors": [p.to_dict() for p in problems]}
    return Answer(status, json.dumps(body).encode())


async def read_body(
    chunks: AsyncIterator[bytes], declared: str | None, encoding: str, limit: int
) -> tuple[bytes | None, Problem | None]:
    """The body (gunzipped when sent gzip), or a problem when it is larger than ``limit``.

    ``declared`` is the Content-Length header: a larger one is refused before reading.
    """
    too_large = Problem("body", f"the request is larger than {limit:,} bytes")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None, too_large
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            return None, too_large
        parts.append(chunk)
    body = b"".join(parts)
    if encoding.lower() == "gzip":
        inflater = zlib.decompressobj(wbits=31)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            return None, Problem("body", f"Content-Encoding is gzip but the body is not: {exc}")
        if len(body) > limit or inflater.unconsumed_tail:
            return None, too_large
    return body, None


def principal_for(context: ApiContext, authorization: str, cookie: str | None) -> Principal | None:
    """Who sends a request, from its ``Authorization`` and ``Cookie`` headers.

    The rules of ``_context.principal_from_request``: Bearer API key, Basic with the key as
    user name (Segment's write key), else the console's session cookie. Keys are checked by
    ``AccessControl.principal_for_key``, which caches a verified key for
    ``key_cache_seconds`` (a revoked key stops working within that).
    """
    scheme, _, value = authorization.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and value:
        return context.access.principal_for_key(value)
    if scheme == "basic" and value:
        key = basic_user(value)
        return context.access.principal_for_key(key) if key else None
    if cookie:
        token = cookie_parser(cookie).get(SESSION_COOKIE)
        if token:
            return context.access.principal_for_session(token)
    return None


async def collect(
    context: ApiContext,
    kind: str | None,
    body: bytes,
    caller: Callable[[], Principal | None],
) -> Answer:
    """Check and store one request's messages; ``kind`` None is a batch.

    ``caller`` finds who the headers name (None: nobody; then a ``writeKey`` body field is
    tried), once the body is known to be JSON. The answer is 200 only once the messages are
    on disk (group commit).
    """
    settings = context.settings
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return problems_answer(400, [Problem("body", f"not valid JSON: {exc}")])
    principal = caller()
    if principal is None and isinstance(payload, dict) and isinstance(payload.get("writeKey"), str):
        principal = context.access.principal_for_key(payload["writeKey"])
    if principal is None:
        return UNAUTHORIZED
    if not principal.can(Permission.COLLECT):
        return problems_answer(
            403,
            [Problem("authorization", f"the key '{principal.name}' lacks the collect scope")],
        )
    received = received_now()
    accepted: list[Accepted] = []
    problems: list[Problem] = []
    try:
        if kind is not None:
            message, found = check_message(
                payload,
                kind,
                "",
                received_at=received,
                write_key_name=principal.name,
                max_bytes=settings.max_event_bytes,
            )
            problems.extend(found)
            if message is not None:
                accepted.append(message)
        else:
            items = payload.get("batch") if isinstance(payload, dict) else None
            if not isinstance(items, list) or not items:
                return problems_answer(
                    400, [Problem("batch", "must be a non-empty list of messages")]
                )
            defaults = {k: payload.get(k) for k in ("context", "integrations", "sentAt")}
            for index, item in enumerate(items):
                message, found = check_message(
                    item,
                    None,
                    f"batch[{index}].",
                    received_at=received,
                    write_key_name=principal.name,
                    max_bytes=settings.max_event_bytes,
                    defaults=defaults,
                )
                problems.extend(found)
                if message is not None:
                    accepted.append(message)
    except (ValueError, RecursionError) as exc:  # e.g. nesting too deep to write back out
        return problems_answer(400, [Problem("body", f"cannot be stored: {exc}")])
    try:
        await context.committer.write(accepted)
    except Exception as exc:  # the disk refused: tell the client to retry
        return problems_answer(503, [Problem("storage", f"the events could not be stored: {exc}")])
    if problems:
        return problems_answer(400, problems, stored=len(accepted))
    return OK


class _Disconnected(Exception):
    """The client went away before its body arrived."""


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.request":
            yield message.get("body", b"")
            if not message.get("more_body", False):
                return
        elif message["type"] == "http.disconnect":
            raise _Disconnected


def _route_path(scope: Scope) -> str:
    """The path the router matches (``root_path`` taken off, as Starlette does)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path != root and path[len(root)] == "/":
        return path[len(root) :]
    return path


class CollectFastPath:
    """ASGI middleware: ``POST /v1/{track,identify,page,screen,alias,group,batch,import}``
    answered here; everything else (other methods and paths, lifespan) passed to ``app``.

    Parameters
    ----------
    app
        The rest of the application (FastAPI's router, through its middleware).
    context
        The server's ``ApiContext`` (settings, access control, the group committer).
    """

    def __init__(self, app: ASGIApp, context: ApiContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a collection call, or pass the request on."""
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        if path not in COLLECT_PATHS:
            await self.app(scope, receive, send)
            return
        kind = COLLECT_PATHS[path]
        length: str | None = None
        encoding = ""
        authorization = ""
        cookie: str | None = None
        seen: set[bytes] = set()
        for raw_name, raw_value in scope["headers"]:
            if raw_name in seen:  # the first of repeated headers counts, as in Starlette
                continue
            if raw_name == b"content-length":
                length = raw_value.decode("latin-1")
            elif raw_name == b"content-encoding":
                encoding = raw_value.decode("latin-1")
            elif raw_name == b"authorization":
                authorization = raw_value.decode("latin-1")
            elif raw_name == b"cookie":
                cookie = raw_value.decode("latin-1")
            else:
                continue
            seen.add(raw_name)
        settings = self.context.settings
        limit = settings.max_batch_bytes if kind is None else settings.max_event_bytes
        try:
            body, problem = await read_body(_chunks(receive), length, encoding, limit)
        except _Disconnected:
            return  # nobody to answer; nothing was stored
        if body is None:
            answer = problems_answer(400, [problem] if problem else [])
        else:
            context = self.context
            answer = await collect(
                context, kind, body, lambda: principal_for(context, authorization, cookie)
            )
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": answer.raw_headers(),
            }
        )
        await send({"type": "http.response.body", "body": answer.body})
