"""One interface for every channel: ``DeliveryChannel.send(OutboundMessage) -> SendResult``.

A channel takes a message that is already rendered (subject, HTML, text, short body) and makes
one attempt to hand it to its provider: an SMTP server, an SMS or push API, a webhook, a file.
It never decides about consent, caps, retries or suppression; the worker does, from the
delivery log. What every channel does keep:

- the idempotency key travels with the message (as the SMTP ``Message-ID``, an
  ``Idempotency-Key`` header, a column of a list), so a receiver can tell a repeat;
- within one process a repeated ``send`` of a key that was sent returns the first result and
  does not call the provider again;
- ``already_sent(key)`` answers True or False when the provider can be asked, else None;
- error details never carry the recipient's address (``scrub``).
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import quote

import httpx


class SendStatus(StrEnum):
    """How one attempt ended.

    ``soft_fail`` is worth retrying (4xx SMTP replies, HTTP 429 and 5xx, timeouts);
    ``hard_bounce`` and ``complaint`` suppress the address; ``failed`` is permanent for this
    message but says nothing against the address (a rejected content, a bad request).
    """

    SENT = "sent"
    SOFT_FAIL = "soft_fail"
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    FAILED = "failed"


@dataclass(frozen=True)
class OutboundMessage:
    """A rendered message for one recipient on one channel.

    Parameters
    ----------
    idempotency_key
        ``campaign:customer_key:channel`` (or a journey step's key): one send per key, ever.
    recipient
        The address on the channel: an e-mail, a phone, a push user id, a postal line.
    body
        The short text of SMS and push, or a call's talking points.
    headers
        Extra e-mail headers (names and values without line breaks).
    metadata
        Anything else a channel may use: ``name``, ``first_name``, ``last_name``,
        ``postcode``, ``city``, ``country``, ``email``, ``phone``, ``variant``.
    """

    idempotency_key: str
    recipient: str
    customer_key: str = ""
    campaign: str = ""
    subject: str = ""
    html: str = ""
    text: str = ""
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def short_text(self) -> str:
        """The body, else the plain text: what an SMS, a push or a call script carries."""
        return self.body or self.text


@dataclass(frozen=True)
class SendResult:
    """The outcome of one attempt: status, the provider's id for the message, a detail (no
    addresses in it), how long the provider asked us to wait before a retry, and whether the
    provider could not be reached at all (the worker then stops using the channel this run).
    """

    status: SendStatus
    provider_id: str | None = None
    detail: str = ""
    retry_after: float | None = None
    provider_down: bool = False


def message_id(idempotency_key: str) -> str:
    """The stable id a provider sees for a key: ``jz.`` + 32 hex digits of its SHA-256.

    Deterministic, so a resend after a crash carries the same id; it hides the customer key.
    """
    return "jz." + hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]


_EMAIL = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+")
_DIGITS = re.compile(r"\+?\d(?:[\s().-]?\d){6,}")  # seven digits or more: a phone


def scrub(text: str, address: str = "") -> str:
    """``text`` without the recipient's address, any e-mail address or phone-like number.

    Provider replies often quote the recipient (``550 5.1.1 <ann@example.com>: unknown``);
    the delivery log and logs keep the reply without it.
    """
    if address:
        text = text.replace(address, "<recipient>")
    text = _EMAIL.sub("<address>", text)
    return _DIGITS.sub("<number>", text)[:500]


class MessageLookup(Protocol):
    """Asks a provider whether it accepted a message: True, False, or None when it cannot tell."""

    def has(self, message_id: str) -> bool | None:
        """Whether the provider holds the message with this id."""
        ...


class HttpMessageLookup:
    """A provider's message-search API asked by GET: ``url`` with ``{message_id}`` in it.

    Parameters
    ----------
    url
        For example ``https://api.esp.example/v1/messages/{message_id}``; the id is
        percent-encoded.
    headers
        Authentication headers.
    found_field
        Empty: 200 means found and 404 means not found. Otherwise a dotted path into the JSON
        answer whose list is non-empty when found (Mailgun's events API answers 200 with
        ``items``).
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        found_field: str = "",
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        if "{message_id}" not in url:
            raise ValueError(f"lookup url '{url}' has no {{message_id}} placeholder")
        self.url = url
        self.headers = dict(headers or {})
        self.found_field = found_field
        self._client = client or httpx.Client(timeout=timeout)

    def has(self, message_id: str) -> bool | None:
        """True when the provider holds ``message_id``, False when it says it does not."""
        url = self.url.replace("{message_id}", quote(message_id, safe=""))
        try:
            response = self._client.get(url, headers=self.headers)
        except httpx.HTTPError:
            return None
        if response.status_code == 404 and not self.found_field:
            return False
        if response.status_code != 200:
            return None
        if not self.found_field:
            return True
        try:
            value: Any = response.json()
        except ValueError:
            return None
        for part in self.found_field.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return bool(value) if isinstance(value, list) else None

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()


class DeliveryChannel(ABC):
    """A way out to customers: one attempt per ``send``, the same key never sent twice by
    one instance.

    Subclasses implement ``_deliver`` (one attempt, no memory) and may override
    ``already_sent`` and ``close``. ``resend_is_safe`` says that sending a key again cannot
    reach the customer twice (the receiver keys on it), so a message whose fate is unknown
    after a crash may simply be sent again.
    """

    kind: str = ""
    resend_is_safe: bool = False
    remember = 100_000  # keys of sent messages kept in memory, newest last

    def __init__(self) -> None:
        self._sent: OrderedDict[str, SendResult] = OrderedDict()

    def send(self, message: OutboundMessage) -> SendResult:
        """Make one attempt to deliver ``message``; a key sent before returns its first result.

        Raises
        ------
        jingzhun.core.EngineError
            When the channel cannot work at all (refused login, missing STARTTLS): every
            message would fail the same way, so the worker stops instead of burning them.
        """
        known = self._sent.get(message.idempotency_key)
        if known is not None:
            return known
        result = self._deliver(message)
        if result.detail:
            result = replace(result, detail=scrub(result.detail, message.recipient))
        if result.status is SendStatus.SENT:
            self._sent[message.idempotency_key] = result
            if len(self._sent) > self.remember:
                self._sent.popitem(last=False)
        return result

    def message_id_for(self, idempotency_key: str) -> str:
        """The id the provider sees for a key (``message_id`` unless the channel says else)."""
        return message_id(idempotency_key)

    def already_sent(self, idempotency_key: str) -> bool | None:
        """Whether the provider holds the message: True, False, or None when it cannot tell."""
        return True if idempotency_key in self._sent else None

    def close(self) -> None:  # noqa: B027 - a hook: channels without connections keep it empty
        """Release connections and files; the channel opens them again when it next sends."""

    @abstractmethod
    def _deliver(self, message: OutboundMessage) -> SendResult:
        """One attempt, without the memory of earlier sends."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
