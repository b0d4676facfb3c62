"""Tracking endpoints: the open pixel, click redirects, one-click unsubscribe, preferences.

Every token is checked with delivery's ``verify_token`` (HMAC over kind, message key and, for
clicks, the target URL): a click redirects only to the URL that was signed, so the redirect is
open to nobody. Opens, clicks and unsubscribes become warehouse-bound events in the collection
log (``email_open``, ``email_click``, ``unsubscribe``) with the properties ``message_id``,
``campaign``, ``customer_key``, ``url`` that measurement reads.

Unsubscribing (RFC 8058: a POST with ``List-Unsubscribe=One-Click``; a GET only shows a page,
because mail scanners follow links) writes the consent withdrawal and the suppression in one
transaction of the operational store.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from jingzhun.api._context import ApiContext, Context
from jingzhun.api._events import Accepted, received_now
from jingzhun.campaigns import Channel, Purpose, Status, normalise, suppression_address
from jingzhun.delivery import TrackingToken, verify_token
from jingzhun.measure import CLICKED_EVENT, MESSAGE_KEY, OPENED_EVENT, UNSUBSCRIBED_EVENT
from jingzhun.store import Consent, Delivery, Suppression

router = APIRouter(tags=["tracking"])

# A transparent 1×1 GIF (43 bytes).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_CACHE = {"Cache-Control": "no-store, max-age=0"}
PREFERENCE_CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.PUSH)
PREFERENCE_PURPOSES = (Purpose.MARKETING, Purpose.PERSONALISATION)


@dataclass(frozen=True)
class MessageRef:
    """The message a token names, as the delivery log knows it."""

    idempotency_key: str
    message_id: str
    campaign: str | None
    customer_key: str
    channel: str
    address: str | None


def _secret(context: ApiContext) -> str:
    if not context.tracking_secret:
        raise HTTPException(
            503,
            detail="tracking is not configured: set the secret named by delivery.yml's "
            "tracking.secret_env (or JINGZHUN_TRACKING_SECRET) for the server",
        )
    return context.tracking_secret


def _verify(context: ApiContext, token: str, kind: str, url: str = "") -> TrackingToken | None:
    try:
        found = verify_token(_secret(context), token, url)
    except ValueError:  # a secret shorter than 16 bytes
        raise HTTPException(503, detail="the tracking secret is shorter than 16 bytes") from None
    return found if found is not None and found.kind == kind else None


def message_ref(context: ApiContext, key: str) -> MessageRef | None:
    """The delivery log's row for a message key; else what the key itself says
    (``campaign:customer_key:channel``); None when neither names a customer.
    """
    with context.store.session() as session:
        row = session.scalar(select(Delivery).where(Delivery.idempotency_key == key))
        if row is not None:
            return MessageRef(
                key, row.message_id, row.campaign, row.customer_key, row.channel, row.address
            )
    parts = key.split(":")
    if len(parts) >= 3 and parts[-2]:
        return MessageRef(key, key, parts[0] or None, parts[-2], parts[-1], None)
    return None


def _event(
    event: str, ref: MessageRef | None, key: str, url: str | None, message_id: str
) -> Accepted:
    properties = {
        "message_id": ref.message_id if ref else key,
        "campaign": ref.campaign if ref else None,
        "customer_key": ref.customer_key if ref else None,
        "url": url,
        MESSAGE_KEY: key,
    }
    now = received_now()
    message = {
        "type": "track",
        "event": event,
        "messageId": message_id,
        "timestamp": now,
        "receivedAt": now,
        "channel": ref.channel if ref else "email",
        "properties": properties,
        "_writeKey": "tracking",
    }
    return Accepted(message_id, "track", json.dumps(message, ensure_ascii=False))


@router.get(
    "/o/{token}.gif",
    operation_id="tracking-open",
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}, "description": "a 1×1 transparent GIF"}},
)
async def open_pixel(token: str, context: Context) -> Response:
    """Count an open of a message (the pixel is returned whatever the token)."""
    if context.tracking_secret:
        found = _verify(context, token, "o")
        if found is not None:
            ref = message_ref(context, found.idempotency_key)
            event = _event(
                OPENED_EVENT, ref, found.idempotency_key, None, f"open-{uuid.uuid4().hex}"
            )
            await context.committer.write([event])
    return Response(PIXEL, media_type="image/gif", headers=_NO_CACHE)


@router.get(
    "/c/{token}",
    operation_id="tracking-click",
    response_class=RedirectResponse,
    status_code=302,
    responses={400: {"description": "the link is not signed for that address"}},
)
async def click(token: str, u: str, context: Context) -> RedirectResponse:
    """Count a click and redirect to ``u`` — only when the token was signed for ``u``."""
    scheme = urlsplit(u).scheme.lower() if len(u) < 8000 else ""
    found = _verify(context, token, "c", u)
    if found is None or scheme not in ("http", "https"):
        raise HTTPException(
            400, detail="this link is not signed for that address: refusing to redirect"
        )
    ref = message_ref(context, found.idempotency_key)
    event = _event(CLICKED_EVENT, ref, found.idempotency_key, u, f"click-{uuid.uuid4().hex}")
    await context.committer.write([event])
    return RedirectResponse(u, status_code=302, headers=_NO_CACHE)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    text = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;"
        "padding:0 1rem;line-height:1.5}button{font-size:1rem;padding:.5rem 1rem}"
        "table{border-collapse:collapse}td,th{padding:.3rem .8rem;text-align:left}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(text, status_code=status, headers=_NO_CACHE)


def _ref_for(context: ApiContext, token: str) -> MessageRef:
    found = _verify(context, token, "u")
    if found is None:
        raise HTTPException(404, detail="this unsubscribe link is not valid")
    ref = message_ref(context, found.idempotency_key)
    if ref is None:
        raise HTTPException(404, detail="this link names no customer")
    return ref


def _latest_consents(context: ApiContext, customer_key: str) -> dict[tuple[str, str], str]:
    with context.store.session() as session:
        rows = session.scalars(
            select(Consent)
            .where(Consent.subject_kind == "customer_key", Consent.subject == customer_key)
            .order_by(Consent.recorded_at, Consent.id)
        ).all()
        return {(r.purpose, r.channel): r.status for r in rows}


def _consent(
    ref: MessageRef, purpose: Purpose, channel: str, status: Status, source: str
) -> Consent:
    return Consent(
        subject_kind="customer_key",
        subject=normalise("customer_key", ref.customer_key),
        subject_source="",
        purpose=purpose.value,
        channel=channel,
        status=status.value,
        recorded_at=datetime.now(UTC),
        legal_basis="consent",
        source=source,
        recorded_by="recipient",
    )


def unsubscribe_message(context: ApiContext, ref: MessageRef) -> bool:
    """Withdraw marketing consent on the message's channel and suppress its address, in one
    transaction; False when both were already so.
    """
    try:
        channel = Channel(ref.channel)
    except ValueError:
        channel = Channel.EMAIL
    changed = False
    with context.store.session(write=True) as session:
        latest = session.scalars(
            select(Consent.status)
            .where(
                Consent.subject_kind == "customer_key",
                Consent.subject == ref.customer_key,
                Consent.purpose == Purpose.MARKETING.value,
                Consent.channel == channel.value,
            )
            .order_by(Consent.recorded_at.desc(), Consent.id.desc())
            .limit(1)
        ).first()
        if latest != Status.WITHDRAWN.value:
            session.add(
                _consent(
                    ref,
                    Purpose.MARKETING,
                    channel.value,
                    Status.WITHDRAWN,
                    f"api:unsubscribe:{ref.idempotency_key}",
                )
            )
            changed = True
        if ref.address:
            address = suppression_address(channel, ref.address)
            exists = session.scalar(
                select(Suppression.id).where(
                    Suppression.channel == channel.value, Suppression.address == address
                )
            )
            if exists is None:
                session.add(
                    Suppression(
                        channel=channel.value,
                        address=address,
                        reason="unsubscribe",
                        source=f"api:unsubscribe:{ref.idempotency_key}",
                        created_at=datetime.now(UTC),
                    )
                )
                changed = True
    return changed


@router.get("/unsubscribe/{token}", operation_id="tracking-unsubscribe_page")
async def unsubscribe_page(token: str, context: Context) -> HTMLResponse:
    """A page that asks to confirm (a GET never unsubscribes: mail scanners follow links)."""
    ref = _ref_for(context, token)
    safe = html.escape(token, quote=True)
    what = html.escape(ref.campaign or "these messages")
    return _page(
        "Unsubscribe",
        f"<p>Stop receiving {what} and other marketing on {html.escape(ref.channel)}?</p>"
        f"<form method='post' action='/unsubscribe/{safe}'>"
        "<input type='hidden' name='List-Unsubscribe' value='One-Click'>"
        "<button type='submit'>Unsubscribe</button></form>"
        f"<p><a href='/preferences/{safe}'>Choose what you receive instead</a></p>",
    )


@router.post("/unsubscribe/{token}", operation_id="tracking-unsubscribe")
async def unsubscribe(
    token: str,
    context: Context,
    list_unsubscribe: Annotated[str | None, Form(alias="List-Unsubscribe")] = None,
) -> HTMLResponse:
    """RFC 8058 one-click unsubscribe: consent withdrawn and address suppressed at once."""
    ref = _ref_for(context, token)
    if list_unsubscribe is not None and list_unsubscribe != "One-Click":
        raise HTTPException(400, detail="the body must be List-Unsubscribe=One-Click (RFC 8058)")
    unsubscribe_message(context, ref)
    digest = hashlib.sha256(ref.idempotency_key.encode()).hexdigest()[:32]
    event = _event(UNSUBSCRIBED_EVENT, ref, ref.idempotency_key, None, f"unsubscribe-{digest}")
    await context.committer.write([event])
    safe = html.escape(token, quote=True)
    return _page(
        "You are unsubscribed",
        f"<p>You will get no more marketing on {html.escape(ref.channel)}.</p>"
        f"<p><a href='/preferences/{safe}'>Manage your preferences</a></p>",
    )


def _preferences_form(token: str, current: dict[tuple[str, str], str], note: str) -> str:
    safe = html.escape(token, quote=True)
    head = "".join(f"<th>{html.escape(c.value)}</th>" for c in PREFERENCE_CHANNELS)
    rows = []
    for purpose in PREFERENCE_PURPOSES:
        cells = []
        for channel in PREFERENCE_CHANNELS:
            on = current.get((purpose.value, channel.value)) == Status.GRANTED.value
            name = f"{purpose.value}.{channel.value}"
            cells.append(
                f"<td><input type='checkbox' name='{name}' aria-label='{name}'"
                f"{' checked' if on else ''}></td>"
            )
        rows.append(f"<tr><th>{html.escape(purpose.value)}</th>{''.join(cells)}</tr>")
    return (
        f"{note}<form method='post' action='/preferences/{safe}'>"
        f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"
        "<p><button type='submit'>Save</button></p></form>"
    )


@router.get("/preferences/{token}", operation_id="tracking-preferences_page")
async def preferences_page(token: str, context: Context) -> HTMLResponse:
    """The preference centre: what the recipient agrees to, per purpose and channel."""
    ref = _ref_for(context, token)
    current = _latest_consents(context, ref.customer_key)
    return _page("Your preferences", _preferences_form(token, current, ""))


@router.post("/preferences/{token}", operation_id="tracking-preferences")
async def save_preferences(token: str, request: Request, context: Context) -> HTMLResponse:
    """Record each changed toggle in the consent ledger (granted or withdrawn)."""
    ref = _ref_for(context, token)
    form = await request.form()
    current = _latest_consents(context, ref.customer_key)
    changes: list[Consent] = []
    for purpose in PREFERENCE_PURPOSES:
        for channel in PREFERENCE_CHANNELS:
            wanted = f"{purpose.value}.{channel.value}" in form
            was = current.get((purpose.value, channel.value)) == Status.GRANTED.value
            if wanted != was:
                status = Status.GRANTED if wanted else Status.WITHDRAWN
                changes.append(_consent(ref, purpose, channel.value, status, "api:preferences"))
    if changes:
        with context.store.session(write=True) as session:
            session.add_all(changes)
    updated = _latest_consents(context, ref.customer_key)
    note = f"<p>Saved: {len(changes)} change(s).</p>"
    return _page("Your preferences", _preferences_form(token, updated, note))
