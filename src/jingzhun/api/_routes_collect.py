"""Segment-compatible collection: ``/v1/track``, ``identify``, ``page``, ``screen``, ``alias``,
``group``, ``batch`` (and ``import``, Segment's other name for batch).

A running server answers these paths in ``_collect_asgi.CollectFastPath``, below FastAPI; the
routes here document them in OpenAPI and do the same work (the same functions) for an
application without that middleware.

The write key is an API key with the ``collect`` scope, sent as Segment's libraries do: HTTP
Basic with the key as user name and an empty password (``Bearer`` and a ``writeKey`` body field
work too). A request is answered 200 only after its messages are on disk (group commit, see
``_collect``). Bodies are read and checked by hand (no pydantic on this path); the OpenAPI
document still describes them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from jingzhun.api._collect_asgi import Answer, collect, problems_answer, read_body
from jingzhun.api._context import ApiContext, principal_from_request
from jingzhun.api._events import MESSAGE_TYPES

router = APIRouter(tags=["collect"])

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


def _response(answer: Answer) -> Response:
    return Response(
        answer.body,
        status_code=answer.status,
        media_type="application/json",
        headers=dict(answer.headers) or None,
    )


async def _collect(request: Request, kind: str | None) -> Response:
    """The same work as the fast path (``_collect_asgi``), reached through FastAPI."""
    context: ApiContext = request.app.state.jingzhun
    settings = context.settings
    limit = settings.max_batch_bytes if kind is None else settings.max_event_bytes
    body, problem = await read_body(
        request.stream(),
        request.headers.get("content-length"),
        request.headers.get("content-encoding", ""),
        limit,
    )
    if body is None:
        return _response(problems_answer(400, [problem] if problem else []))
    answer = await collect(context, kind, body, lambda: principal_from_request(request, context))
    return _response(answer)


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
