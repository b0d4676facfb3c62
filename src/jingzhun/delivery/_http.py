"""SMS and app push through configurable HTTP providers, and signed webhooks.

A provider is a URL, an authentication header and a body template (JSON or a form) in which
``{address}``, ``{body}``, ``{subject}``, ``{text}``, ``{message_id}``, ``{customer_key}``,
``{campaign}`` and ``{variant}`` are replaced, so one class serves any SMS gateway or push
service. Every request carries ``Idempotency-Key: <message id>``; providers that honour it
(``dedupes_by_key``) make a resend after a timeout harmless.

Replies: 2xx sent; 401 and 403 stop the channel (our credentials are wrong, every message
would fail); 408, 425, 429 and 5xx, timeouts and dropped connections are retried (after
``Retry-After`` when given, RFC 9110, section 10.2.3); 410 means the number or device is gone
(APNs answers 410 for a device token that is no longer active) and suppresses it; any other
4xx fails this message without retrying it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from jingzhun.core import EngineError
from jingzhun.delivery._channels import (
    DeliveryChannel,
    MessageLookup,
    OutboundMessage,
    SendResult,
    SendStatus,
)

PLACEHOLDERS = (
    "address",
    "body",
    "subject",
    "text",
    "message_id",
    "customer_key",
    "campaign",
    "variant",
)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
SIGNATURE_HEADER = "X-Jingzhun-Signature"
TIMESTAMP_HEADER = "X-Jingzhun-Timestamp"
ID_HEADER = "X-Jingzhun-Id"
_RETRY_STATUSES = frozenset({408, 425, 429})


def template_placeholders(template: Any) -> set[str]:
    """Every ``{name}`` used in a body template (strings inside mappings and lists)."""
    if isinstance(template, str):
        return set(_PLACEHOLDER.findall(template))
    if isinstance(template, Mapping):
        return set().union(*(template_placeholders(v) for v in template.values()))
    if isinstance(template, list | tuple):
        return set().union(*(template_placeholders(v) for v in template))
    return set()


def _fill(template: Any, values: Mapping[str, str]) -> Any:
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    if isinstance(template, Mapping):
        return {k: _fill(v, values) for k, v in template.items()}
    if isinstance(template, list | tuple):
        return [_fill(v, values) for v in template]
    return template


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _field(data: Any, path: str) -> str | None:
    for part in path.split("."):
        if isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return None
    return None if data is None or isinstance(data, dict | list) else str(data)


class _HttpChannel(DeliveryChannel):
    """What the HTTP channels share: one client, the reply mapping, the provider's id."""

    def __init__(
        self,
        url: str,
        *,
        kind: str,
        timeout: float,
        status_map: Mapping[int, SendStatus] | None,
        id_field: str,
        dedupes_by_key: bool,
        lookup: MessageLookup | None,
        client: httpx.Client | None,
    ) -> None:
        super().__init__()
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"provider url '{url}' is not an http(s) URL")
        self.url = url
        self.kind = kind
        self.status_map = dict(status_map or {})
        self.id_field = id_field
        self.resend_is_safe = dedupes_by_key
        self.lookup = lookup
        self._timeout = timeout
        self._client = client
        self._own_client = client is None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @property
    def client(self) -> httpx.Client:
        """The HTTP client, made on first use (connections are kept alive between sends)."""
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout)
        return self._client

    @abstractmethod
    def _request(self, message: OutboundMessage) -> tuple[dict[str, Any], dict[str, str]]:
        """``httpx`` keyword arguments for the body, and the headers of one request."""

    def already_sent(self, idempotency_key: str) -> bool | None:
        """Ask the lookup (when configured) whether the provider holds the message."""
        known = super().already_sent(idempotency_key)
        if known or self.lookup is None:
            return known
        return self.lookup.has(self.message_id_for(idempotency_key))

    def _deliver(self, message: OutboundMessage) -> SendResult:
        try:
            body, headers = self._request(message)
        except (KeyError, TypeError, ValueError) as exc:
            return SendResult(SendStatus.FAILED, detail=f"cannot build the request: {exc}")
        headers["Idempotency-Key"] = self.message_id_for(message.idempotency_key)
        try:
            response = self.client.post(self.url, headers=headers, **body)
        except httpx.TimeoutException:
            return SendResult(
                SendStatus.SOFT_FAIL,
                detail=f"{self.url} did not answer in time; the provider may have the message",
            )
        except httpx.ConnectError as exc:
            return SendResult(
                SendStatus.SOFT_FAIL, detail=f"cannot reach {self.url}: {exc}", provider_down=True
            )
        except httpx.TransportError as exc:
            return SendResult(SendStatus.SOFT_FAIL, detail=f"{self.url}: {exc}")
        status = response.status_code
        reply = response.text[:300]
        mapped = self.status_map.get(status)
        if mapped is not None:
            return SendResult(mapped, detail=f"HTTP {status}: {reply}")
        if 200 <= status < 300:
            provider_id = None
            if self.id_field:
                try:
                    provider_id = _field(response.json(), self.id_field)
                except ValueError:
                    provider_id = None
            return SendResult(SendStatus.SENT, provider_id=provider_id)
        if status in (401, 403):
            raise EngineError(
                f"the {self.kind} provider at {self.url} refused our credentials (HTTP {status}); "
                f"check {self.kind}.auth_env and the token in it"
            )
        if status in _RETRY_STATUSES or status >= 500:
            return SendResult(
                SendStatus.SOFT_FAIL,
                detail=f"HTTP {status}: {reply}",
                retry_after=_retry_after(response),
            )
        return SendResult(SendStatus.FAILED, detail=f"HTTP {status}: {reply}")

    def close(self) -> None:
        """Close the HTTP connections (a client passed in by the caller stays open)."""
        if self._own_client and self._client is not None:
            self._client.close()
            self._client = None


class HttpProviderChannel(_HttpChannel):
    """A message POSTed to a provider's API as JSON or a form built from a body template.

    Parameters
    ----------
    url
        The provider's send endpoint.
    body
        The request body with placeholders, e.g. ``{"to": "{address}", "text": "{body}"}``.
    kind
        The channel it serves (``sms``, ``push``), used in messages.
    auth_header, auth_value
        For example ``Authorization`` and ``Bearer <token>`` (the token from an environment
        variable).
    encoding
        ``json`` or ``form`` (``application/x-www-form-urlencoded``, a flat body).
    status_map
        Replies that mean something else than the defaults, e.g. ``{404: hard_bounce}`` for a
        push service that answers 404 for an unregistered device (FCM's ``UNREGISTERED``).
    id_field
        Dotted path of the provider's message id in its JSON reply.
    dedupes_by_key
        The provider honours ``Idempotency-Key``, so a resend can never reach a person twice.
    """

    def __init__(
        self,
        url: str,
        *,
        body: Mapping[str, Any],
        kind: str = "sms",
        auth_header: str = "Authorization",
        auth_value: str | None = None,
        encoding: str = "json",
        headers: Mapping[str, str] | None = None,
        status_map: Mapping[int, SendStatus] | None = None,
        id_field: str = "id",
        timeout: float = 10.0,
        dedupes_by_key: bool = False,
        lookup: MessageLookup | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            url,
            kind=kind,
            timeout=timeout,
            status_map={410: SendStatus.HARD_BOUNCE} if status_map is None else status_map,
            id_field=id_field,
            dedupes_by_key=dedupes_by_key,
            lookup=lookup,
            client=client,
        )
        unknown = template_placeholders(body) - set(PLACEHOLDERS)
        if unknown:
            raise ValueError(
                f"body template uses {', '.join(sorted(unknown))}; the placeholders are "
                + ", ".join(PLACEHOLDERS)
            )
        if encoding not in ("json", "form"):
            raise ValueError(f"encoding '{encoding}' is not 'json' or 'form'")
        if encoding == "form" and any(not isinstance(v, str) for v in body.values()):
            raise ValueError("a form body must map names to text, without nested values")
        self.body = dict(body)
        self.encoding = encoding
        self.headers = dict(headers or {})
        if auth_value:
            self.headers[auth_header] = auth_value

    def _request(self, message: OutboundMessage) -> tuple[dict[str, Any], dict[str, str]]:
        values = {
            "address": message.recipient,
            "body": message.short_text,
            "subject": message.subject,
            "text": message.text,
            "message_id": self.message_id_for(message.idempotency_key),
            "customer_key": message.customer_key,
            "campaign": message.campaign,
            "variant": str(message.metadata.get("variant", "")),
        }
        if not values["body"]:
            raise ValueError("the message has no body or text to send")
        filled = _fill(self.body, values)
        key = "json" if self.encoding == "json" else "data"
        return {key: filled}, dict(self.headers)


class HttpSmsChannel(HttpProviderChannel):
    """SMS through an HTTP gateway: the recipient is the phone number, the text is ``body``."""

    def __init__(self, url: str, *, body: Mapping[str, Any], **options: Any) -> None:
        super().__init__(url, body=body, kind="sms", **options)


class HttpPushChannel(HttpProviderChannel):
    """App push through an HTTP service; the recipient is the customer's user id at the
    service (external user id, alias or named user), the title is ``subject``.
    """

    def __init__(self, url: str, *, body: Mapping[str, Any], **options: Any) -> None:
        super().__init__(url, body=body, kind="push", **options)


def sign_webhook(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``timestamp.body``: the signature header's value.

    The timestamp is signed with the body (as Stripe and the Standard Webhooks specification
    do), so a captured request cannot be replayed later with a fresh timestamp.
    """
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_webhook(
    secret: str | bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    now: float | None = None,
    tolerance: float = 300.0,
) -> bool:
    """Whether a webhook request is ours and recent: the receiver's side of ``sign_webhook``.

    Parameters
    ----------
    body
        The raw request body, byte for byte.
    timestamp, signature
        The ``X-Jingzhun-Timestamp`` and ``X-Jingzhun-Signature`` headers.
    tolerance
        Seconds a request may be old (or early) before it is refused as a replay.
    """
    try:
        sent = float(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance:
        return False
    return hmac.compare_digest(sign_webhook(secret, timestamp, body), signature)


class WebhookChannel(_HttpChannel):
    """A JSON event POSTed to the company's own endpoint, signed with HMAC-SHA256.

    Headers: ``X-Jingzhun-Id`` (the message id: receivers drop repeats), ``X-Jingzhun-Timestamp``
    (Unix seconds) and ``X-Jingzhun-Signature: sha256=<hex>`` over ``timestamp.body``; check it
    with ``verify_webhook``.

    Parameters
    ----------
    url
        The receiving endpoint.
    secret
        The shared signing secret (at least 16 bytes), from an environment variable.
    receiver_dedupes
        The receiver drops a repeated ``X-Jingzhun-Id``, so a resend is harmless.
    clock
        Seconds since the epoch (tests pass a fixed one).
    """

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        *,
        timeout: float = 10.0,
        receiver_dedupes: bool = False,
        lookup: MessageLookup | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            url,
            kind="webhook",
            timeout=timeout,
            status_map=None,
            id_field="",
            dedupes_by_key=receiver_dedupes,
            lookup=lookup,
            client=client,
        )
        key = secret.encode("utf-8") if isinstance(secret, str) else secret
        if len(key) < 16:
            raise ValueError("the webhook secret must be at least 16 bytes long")
        self._secret = key
        self._clock = clock

    def _request(self, message: OutboundMessage) -> tuple[dict[str, Any], dict[str, str]]:
        mid = self.message_id_for(message.idempotency_key)
        event: dict[str, Any] = {
            "id": mid,
            "type": "jingzhun.message",
            "campaign": message.campaign,
            "customer_key": message.customer_key,
            "recipient": message.recipient,
        }
        for name in ("subject", "text", "html", "body"):
            value = getattr(message, name)
            if value:
                event[name] = value
        if message.metadata:
            event["metadata"] = dict(message.metadata)
        content = json.dumps(
            event, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str
        ).encode("utf-8")
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json",
            ID_HEADER: mid,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign_webhook(self._secret, timestamp, content),
        }
        return {"content": content}, headers
