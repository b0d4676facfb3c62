"""Segment HTTP spec messages: checking them as they arrive, and turning stored ones into rows.

The Segment spec (https://segment.com/docs/connections/spec/) names six calls — track,
identify, page, screen, alias, group — and a batch of them. Every message needs a
``userId`` or an ``anonymousId`` (alias: ``userId`` and ``previousId``); ``messageId`` makes
retries harmless (one is made up when a client sends none). Checking is done by hand, not with
pydantic models, because it sits on the hot path of collection; the OpenAPI document still
describes every body (``SCHEMAS``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MESSAGE_TYPES = ("track", "identify", "page", "screen", "alias", "group")
_MAX_ID = 200  # longest messageId, userId, anonymousId, event name kept
_TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt")
_OBJECT_FIELDS = ("context", "integrations", "properties", "traits")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where (``batch[3].event``) and what."""

    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """Plain data for the 400 answer."""
        return {"path": self.path, "message": self.message}


@dataclass(frozen=True)
class Accepted:
    """A checked message ready for the collection log."""

    message_id: str
    type: str
    body: str  # the message as JSON, with receivedAt and messageId filled in


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (``Z`` or an offset; without one it is UTC); None when it is not one."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _id(value: Any) -> str | None:
    """Segment allows ids as strings or numbers; both are kept as text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def check_message(
    message: Any,
    kind: str | None,
    where: str,
    *,
    received_at: str,
    write_key_name: str,
    max_bytes: int,
    defaults: dict[str, Any] | None = None,
) -> tuple[Accepted | None, list[Problem]]:
    """Check one message; ``kind`` is the endpoint's type (None inside a batch: from ``type``).

    Parameters
    ----------
    where
        Prefix of problem paths (``""`` for a single call, ``"batch[3]."`` in a batch).
    max_bytes
        Largest message accepted, measured as stored (UTF-8 JSON).
    defaults
        A batch's own ``context``, ``integrations`` and ``sentAt``, for messages without them.
    """
    problems: list[Problem] = []

    def bad(field: str, text: str) -> None:
        problems.append(Problem(f"{where}{field}" if field else where.rstrip(".") or "body", text))

    if not isinstance(message, dict):
        bad("", "a message is a JSON object")
        return None, problems
    given_type = message.get("type")
    if kind is None:
        if given_type not in MESSAGE_TYPES:
            bad("type", f"must be one of {', '.join(MESSAGE_TYPES)}, not {given_type!r}")
            return None, problems
        kind = str(given_type)
    elif given_type is not None and given_type != kind:
        bad("type", f"is {given_type!r} but this endpoint takes '{kind}' messages")
    user_id = message.get("userId")
    anonymous_id = message.get("anonymousId")
    for field, value in (("userId", user_id), ("anonymousId", anonymous_id)):
        if value is not None and _id(value) is None:
            bad(field, "must be a non-empty string or a number")
        elif value is not None and len(str(value)) > _MAX_ID:
            bad(field, f"is longer than {_MAX_ID} characters")
    if kind == "alias":
        if _id(user_id) is None:
            bad("userId", "is required for alias (the new id)")
        if _id(message.get("previousId")) is None:
            bad("previousId", "is required for alias (the id being merged)")
    elif _id(user_id) is None and _id(anonymous_id) is None:
        bad("userId", "a userId or an anonymousId is required")
    if kind == "track":
        event = message.get("event")
        if not isinstance(event, str) or not event.strip():
            bad("event", "is required for track: the name of the action, e.g. 'Order Completed'")
        elif len(event) > _MAX_ID:
            bad("event", f"is longer than {_MAX_ID} characters")
    if kind == "group" and _id(message.get("groupId")) is None:
        bad("groupId", "is required for group")
    name = message.get("name")
    if kind in ("page", "screen") and name is not None and not isinstance(name, str):
        bad("name", "must be a string")
    for field in _OBJECT_FIELDS:
        if message.get(field) is not None and not isinstance(message[field], dict):
            bad(field, "must be a JSON object")
    for field in _TIME_FIELDS:
        if message.get(field) is not None and parse_time(message[field]) is None:
            bad(field, "must be an ISO 8601 time such as 2024-05-01T12:00:00Z")
    message_id = message.get("messageId")
    if message_id is not None and (
        not isinstance(message_id, str) or not message_id.strip() or len(message_id) > _MAX_ID
    ):
        bad("messageId", f"must be a non-empty string of at most {_MAX_ID} characters")
    if problems:
        return None, problems
    stored = dict(message)
    for name, value in (defaults or {}).items():
        if value is not None and stored.get(name) is None:
            stored[name] = value
    stored["type"] = kind
    stored["messageId"] = message_id or f"jz-{uuid.uuid4().hex}"
    stored["receivedAt"] = received_at
    stored["_writeKey"] = write_key_name
    body = json.dumps(stored, ensure_ascii=False, separators=(",", ":"))
    size = len(body.encode())
    if size > max_bytes:
        bad("", f"the message is {size:,} bytes; at most {max_bytes:,} bytes are accepted")
        return None, problems
    return Accepted(stored["messageId"], kind, body), []


def occurred_at(message: dict[str, Any]) -> datetime:
    """When the event happened, as Segment computes it.

    ``timestamp`` when given; otherwise ``originalTimestamp`` corrected for the device's clock
    skew (``receivedAt - (sentAt - originalTimestamp)``); otherwise ``receivedAt``.
    """
    received = parse_time(message.get("receivedAt")) or datetime.now(UTC)
    stamp = parse_time(message.get("timestamp"))
    if stamp is not None:
        return stamp
    original = parse_time(message.get("originalTimestamp"))
    sent = parse_time(message.get("sentAt"))
    if original is not None and sent is not None:
        return received - (sent - original)
    return original or received


def _text(value: Any) -> str | None:
    ident = _id(value)
    return None if ident is None else ident[:_MAX_ID]


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


EVENT_COLUMNS = (
    "event_id",
    "event_type",
    "occurred_at",
    "customer_id",
    "anonymous_id",
    "session_id",
    "channel",
    "sku",
    "properties",
)
CUSTOMER_COLUMNS = (
    "customer_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "birth_date",
    "gender",
    "city",
    "country",
    "signup_at",
    "attributes",
)


def event_row(message: dict[str, Any]) -> dict[str, str | None]:
    """One ``raw_events`` row (all text, as ingest reads a file) from a stored message."""
    kind = message["type"]
    context = message.get("context") or {}
    if kind == "track":
        event_type = str(message["event"])[:_MAX_ID]
        properties: dict[str, Any] = dict(message.get("properties") or {})
    elif kind in ("identify", "group"):
        event_type = kind
        properties = _impersonal(message.get("traits") or {})
        if kind == "group":
            properties["groupId"] = _text(message.get("groupId"))
    elif kind == "alias":
        event_type = "alias"
        properties = {"previousId": _text(message.get("previousId"))}
    else:  # page, screen
        event_type = kind
        properties = dict(message.get("properties") or {})
        for field in ("name", "category"):
            if message.get(field) is not None:
                properties.setdefault(field, message[field])
    anonymous = message.get("previousId") if kind == "alias" else message.get("anonymousId")
    sku = properties.get("sku", properties.get("product_id"))
    channel = message.get("channel") or context.get("channel")
    if channel is None:
        channel = {"page": "web", "screen": "app"}.get(kind)
    session = context.get("sessionId") or properties.get("session_id")
    return {
        "event_id": str(message["messageId"]),
        "event_type": event_type,
        "occurred_at": _iso(occurred_at(message)),
        "customer_id": _text(message.get("userId")),
        "anonymous_id": _text(anonymous),
        "session_id": _text(session),
        "channel": channel if isinstance(channel, str) else None,
        "sku": _text(sku),
        "properties": json.dumps(properties, ensure_ascii=False, default=str),
    }


# Traits that name or reach a person: kept only in raw_customers' canonical columns (sealed at
# rest), never copied into event properties or attributes, which are stored as written.
PERSONAL_TRAITS = frozenset(
    {
        "email",
        "phone",
        "firstName",
        "first_name",
        "lastName",
        "last_name",
        "name",
        "birthday",
        "birth_date",
        "address",
    }
)


def _impersonal(traits: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in traits.items() if k not in PERSONAL_TRAITS}


_TRAIT_NAMES = {
    "email": ("email",),
    "phone": ("phone",),
    "first_name": ("firstName", "first_name"),
    "last_name": ("lastName", "last_name"),
    "birth_date": ("birthday", "birth_date"),
    "gender": ("gender",),
    "signup_at": ("createdAt", "created_at"),
}


def customer_row(message: dict[str, Any]) -> dict[str, str | None] | None:
    """A ``raw_customers`` row from an identify call with a ``userId`` (None otherwise).

    Segment's reserved traits map onto the canonical fields (``firstName`` → ``first_name``,
    ``address.city`` → ``city``, ``name`` split when there is no first/last name); the other
    traits are kept in ``attributes`` (``PERSONAL_TRAITS`` never are: the canonical columns
    hold them, encrypted at rest).
    """
    if message.get("type") != "identify" or _text(message.get("userId")) is None:
        return None
    traits = message.get("traits") or {}
    if not traits:
        return None
    row: dict[str, str | None] = dict.fromkeys(CUSTOMER_COLUMNS)
    row["customer_id"] = _text(message["userId"])
    for column, names in _TRAIT_NAMES.items():
        for name in names:
            value = traits.get(name)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                row[column] = str(value)
                break
    if row["birth_date"]:
        row["birth_date"] = row["birth_date"][:10]
    if row["signup_at"] and parse_time(row["signup_at"]) is None:
        row["signup_at"] = None
    full_name = traits.get("name")
    if (
        isinstance(full_name, str)
        and full_name.strip()
        and not (row["first_name"] or row["last_name"])
    ):
        first, _, last = full_name.strip().partition(" ")
        row["first_name"], row["last_name"] = first, last or None
    address = traits.get("address")
    if isinstance(address, dict):
        for column in ("city", "country"):
            if isinstance(address.get(column), str):
                row[column] = address[column]
    row["attributes"] = json.dumps(_impersonal(traits), ensure_ascii=False, default=str)
    return row


def received_now() -> str:
    """The current time as Segment writes ``receivedAt``."""
    return _iso(datetime.now(UTC))
