"""Segment-compatible collection: ``/v1/track``, ``identify``, ``page``, ``screen``, ``alias``,
``group``, ``batch`` (and ``import``, Segment's other name for batch).

The write key is an API key with the ``collect`` scope, sent as Segment's libraries do: HTTP
Basic with the key as user name and an empty password (``Bearer`` and a ``writeKey`` body field
work too). A request is answered 200 only after its messages are on disk (group commit, see
``_collect``). Bodies are read and checked by hand (no pydantic on this path); the OpenAPI
document still describes them.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from jingzhun.api._context import ApiContext, principal_from_request
from jingzhun.api._events import MESSAGE_TYPES, Accepted, Problem, check_message, received_now
from jingzhun.core import Permission

router = APIRouter(tags=["collect"])

_OK = b'{"success":true}'
_TIME = {"type": "string", "format": "date-time"}
_ID = {"type": "string", "minLength": 1, "maxLength": 200}
_COMMON: dict[str, Any] = {
    "userId": _ID,
    "anonymousId": _ID,
    "messageId": _ID,
    "timestamp": _TIME,
    "originalTimestamp": _TIME,
    "sentAt": _TIME,
    "context": {"type": "object"},
    "integrations": {"type": "object"},
}
SCHEMAS: dict[str, dict[str, Any]] = {
    "TrackMessage": {
        "type": "object",
        "required": ["event"],
        "properties": {**_COMMON, "event": _ID, "properties": {"type": "object"}},
        "description": "A user action (Segment track). Needs userId or anonymousId.",
    },
    "IdentifyMessage": {
        "type": "object",
        "properties": {**_COMMON, "traits": {"type": "object"}},
        "description": "Who the user is (Segment identify); traits such as email, firstName.",
    },
    "PageMessage": {
        "type": "object",
        "properties": {
            **_COMMON,
            "name": {"type": "string"},
            "category": {"type": "string"},
            "properties": {"type": "object"},
        },
        "description": "A web page view (Segment page).",
    },
    "ScreenMessage": {
        "type": "object",
        "properties": {**_COMMON, "name": {"type": "string"}, "properties": {"type": "object"}},
        "description": "An app screen view (Segment screen).",
    },
    "AliasMessage": {
        "type": "object",
        "required": ["userId", "previousId"],
        "properties": {**_COMMON, "previousId": _ID},
        "description": "Merge a previous id into userId (Segment alias).",
    },
    "GroupMessage": {
        "type": "object",
        "required": ["groupId"],
        "properties": {**_COMMON, "groupId": _ID, "traits": {"type": "object"}},
        "description": "Put the user in a group, e.g. a company account (Segment group).",
    },
    "BatchRequest": {
        "type": "object",
        "required": ["batch"],
        "properties": {
            "batch": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {**_COMMON, "type": {"enum": list(MESSAGE_TYPES)}},
                },
            },
            "context": {"type": "object"},
            "integrations": {"type": "object"},
            "sentAt": _TIME,
            "writeKey": {"type": "string"},
        },
        "description": "Up to 500 KB of messages, each at most 32 KB (Segment batch).",
    },
    "CollectAnswer": {
        "type": "object",
        "properties": {
            "success": {"type": "boolean"},
            "stored": {"type": "integer"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    },
}


def _openapi(schema: str, summary: str) -> dict[str, Any]:
    answer = {"application/json": {"schema": {"$ref": "#/components/schemas/CollectAnswer"}}}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        },
        "security": [{"writeKey": []}, {"apiKey": []}],
        "responses": {
            "200": {"description": "stored durably (or a known messageId)", "content": answer},
            "400": {"description": "not JSON, too large, or invalid messages", "content": answer},
            "401": {"description": "no valid write key"},
            "403": {"description": "the key lacks the collect scope"},
            "503": {"description": "the events could not be stored; retry"},
        },
        "summary": summary,
    }


def _answer(status: int, problems: list[Problem], stored: int = 0) -> Response:
    body = {"success": False, "stored": stored, "errors": [p.to_dict() for p in problems]}
    return Response(json.dumps(body), status_code=status, media_type="application/json")


async def _read_body(request: Request, limit: int) -> tuple[bytes | None, Problem | None]:
    """The body (gunzipped when sent gzip), or a problem when it is larger than ``limit``."""
    too_large = Problem("body", f"the request is larger than {limit:,} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None, too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None, too_large
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        inflater = zlib.decompressobj(wbits=31)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            return None, Problem("body", f"Content-Encoding is gzip but the body is not: {exc}")
        if len(body) > limit or inflater.unconsumed_tail:
            return None, too_large
    return body, None


async def _collect(request: Request, kind: str | None) -> Response:
    context: ApiContext = request.app.state.jingzhun
    settings = context.settings
    limit = settings.max_batch_bytes if kind is None else settings.max_event_bytes
    body, problem = await _read_body(request, limit)
    if body is None:
        return _answer(400, [problem] if problem else [])
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return _answer(400, [Problem("body", f"not valid JSON: {exc}")])
    principal = principal_from_request(request, context)
    if principal is None and isinstance(payload, dict) and isinstance(payload.get("writeKey"), str):
        principal = context.access.principal_for_key(payload["writeKey"])
    if principal is None:
        return Response(
            b'{"success":false,"errors":[{"path":"authorization","message":"send the write '
            b'key as the Basic auth user name (an API key with the collect scope)"}]}',
            status_code=401,
            media_type="application/json",
            headers={"WWW-Authenticate": 'Basic realm="jingzhun"'},
        )
    if not principal.can(Permission.COLLECT):
        return _answer(
            403,
            [Problem("authorization", f"the key '{principal.name}' lacks the collect scope")],
        )
    received = received_now()
    accepted: list[Accepted] = []
    problems: list[Problem] = []
    common = {
        "received_at": received,
        "write_key_name": principal.name,
        "max_bytes": settings.max_event_bytes,
    }
    try:
        if kind is not None:
            message, found = check_message(payload, kind, "", **common)  # type: ignore[arg-type]
            problems.extend(found)
            if message is not None:
                accepted.append(message)
        else:
            items = payload.get("batch") if isinstance(payload, dict) else None
            if not isinstance(items, list) or not items:
                return _answer(400, [Problem("batch", "must be a non-empty list of messages")])
            defaults = {k: payload.get(k) for k in ("context", "integrations", "sentAt")}
            for index, item in enumerate(items):
                message, found = check_message(
                    item,
                    None,
                    f"batch[{index}].",
                    defaults=defaults,
                    **common,  # type: ignore[arg-type]
                )
                problems.extend(found)
                if message is not None:
                    accepted.append(message)
    except (ValueError, RecursionError) as exc:  # e.g. nesting too deep to write back out
        return _answer(400, [Problem("body", f"cannot be stored: {exc}")])
    try:
        await context.committer.write(accepted)
    except Exception as exc:  # the disk refused: tell the client to retry
        return _answer(503, [Problem("storage", f"the events could not be stored: {exc}")])
    if problems:
        return _answer(400, problems, stored=len(accepted))
    return Response(_OK, media_type="application/json")


def _route(kind: str) -> None:
    schema = f"{kind.capitalize()}Message"

    async def endpoint(request: Request) -> Response:
        return await _collect(request, kind)

    endpoint.__name__ = f"collect_{kind}"
    endpoint.__doc__ = f"Record a Segment {kind} message."
    router.add_api_route(
        f"/v1/{kind}",
        endpoint,
        methods=["POST"],
        operation_id=f"collect-{kind}",
        openapi_extra=_openapi(schema, f"Segment {kind}"),
        response_class=Response,
    )


for _kind in MESSAGE_TYPES:
    _route(_kind)


@router.post(
    "/v1/batch",
    operation_id="collect-batch",
    openapi_extra=_openapi("BatchRequest", "Segment batch"),
    response_class=Response,
)
async def collect_batch(request: Request) -> Response:
    """Record a batch of Segment messages (stored except those named in a 400)."""
    return await _collect(request, None)


@router.post(
    "/v1/import",
    operation_id="collect-import",
    openapi_extra=_openapi("BatchRequest", "Segment import (same as batch)"),
    response_class=Response,
)
async def collect_import(request: Request) -> Response:
    """Segment's historical import: the same as batch."""
    return await _collect(request, None)
