"""The decision endpoints on HTTP: ``ads_router(server)`` gives a FastAPI ``APIRouter``.

- ``POST /ads/decide``: ``placement`` and one of ``customer_key``, ``customer_id``,
  ``anonymous_id``; ``device_id``, ``ip`` (else the client's address) → ``{"ad": {...}}`` or
  ``{"ad": null}``;
- ``POST /ads/impression``: ``token`` — the render beacon → ``{"recorded": true}``;
- ``POST /ads/click``: ``token``, ``device_id``, ``ip`` → ``valid``, ``reason``, ``charged``,
  ``landing_url``;
- ``POST /ads/conversion``: ``click_id``, ``value``, ``conversion_id`` → ``{"recorded": true}``;
- ``GET /ads/status``: counters since start.

``/ads/decide`` is an ``async`` route that never awaits: the decision is microseconds of
in-memory work, so it runs on the event loop without a thread hop. Its answer carries
``Server-Timing: decide;dur=<ms>`` (the decision's own time). ``/ads/click`` bills in the
operational store and runs in the thread pool.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from jingzhun.ads._server import AdServer, DecideRequest


class DecideBody(BaseModel):
    """An ad request from a placement."""

    placement: str = Field(min_length=1, max_length=80)
    customer_key: str | None = None
    customer_id: str | None = None
    anonymous_id: str | None = None
    device_id: str | None = None
    ip: str | None = None


class TokenBody(BaseModel):
    """A render beacon or a click."""

    token: str | None = None
    device_id: str | None = None
    ip: str | None = None


class ConversionBody(BaseModel):
    """A conversion after a click."""

    click_id: str
    value: float = 0.0
    conversion_id: str | None = None


def _client_ip(request: Request, given: str | None) -> str | None:
    if given:
        return given
    return request.client.host if request.client is not None else None


def ads_router(server: AdServer) -> APIRouter:
    """The ``/ads`` routes over one ``AdServer`` (built by ``open_ad_server``)."""
    router = APIRouter(prefix="/ads", tags=["ads"])

    @router.post("/decide", operation_id="ads-decide")
    async def decide(body: DecideBody, request: Request, response: Response) -> dict[str, Any]:
        started = time.perf_counter()
        decision = server.decide(
            DecideRequest(
                body.placement,
                customer_key=body.customer_key,
                customer_id=body.customer_id,
                anonymous_id=body.anonymous_id,
                device_id=body.device_id,
                ip=_client_ip(request, body.ip),
            )
        )
        elapsed = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"decide;dur={elapsed:.3f}"
        return {"ad": decision.to_dict() if decision is not None else None}

    @router.post("/impression", operation_id="ads-impression")
    async def impression(body: TokenBody) -> dict[str, Any]:
        if not body.token or not server.rendered(body.token):
            raise HTTPException(status_code=400, detail="not a valid impression token")
        return {"recorded": True}

    @router.post("/click", operation_id="ads-click")
    def click(body: TokenBody, request: Request) -> dict[str, Any]:
        result = server.click(
            body.token,
            ip=_client_ip(request, body.ip),
            device_id=body.device_id,
            user_agent=request.headers.get("user-agent"),
        )
        return result.to_dict()

    @router.post("/conversion", operation_id="ads-conversion")
    async def conversion(body: ConversionBody) -> dict[str, Any]:
        recorded = server.conversion(
            body.click_id, value=body.value, conversion_id=body.conversion_id
        )
        if not recorded:
            raise HTTPException(status_code=404, detail=f"no valid click {body.click_id} here")
        return {"recorded": True}

    @router.get("/status", operation_id="ads-status")
    async def status() -> dict[str, Any]:
        stats = server.stats
        return {
            "campaigns": len(server.index.campaigns),
            "people": len(server.index.people),
            "requests": stats.requests,
            "served": stats.served,
            "clicks": stats.clicks,
            "valid_clicks": stats.valid_clicks,
            "charged": round(stats.charged, 2),
            "invalid_by_reason": dict(stats.by_reason),
            "log_errors": list(server.log.errors[-5:]),
        }

    return router
