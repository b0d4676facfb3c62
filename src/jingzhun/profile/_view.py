"""The 360° view of one customer: identifiers, attributes, tags, recent events and orders."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import phonenumbers

from jingzhun.core import NotFoundError
from jingzhun.engine import Engine
from jingzhun.profile import _facts
from jingzhun.profile._build import ATTRIBUTES
from jingzhun.profile._columns import PROFILES
from jingzhun.profile._identity import ANONYMOUS_NODE, CUSTOMER_NODE, identity_snapshot, trim

RECENT = 10
_PHONE_MATCH_DIGITS = 10  # compare the last ten digits: 138 0013 8000 = +86 138 0013 8000
_NAMES = ("first_name", "last_name")


def mask_email(email: str) -> str:
    """``li.wei@example.com`` → ``li***@example.com``."""
    local, at, domain = email.partition("@")
    if not at:
        return mask_name(email)
    keep = 2 if len(local) > 2 else 1
    return f"{local[:keep]}***@{domain}"


def mask_phone(phone: str) -> str:
    """``+86 138 0013 8000`` → ``+86 138****8000``; the country code stays readable."""
    text = phone.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, None)
        national = str(parsed.national_number)
        if len(national) >= 7:
            return f"+{parsed.country_code} {national[:3]}****{national[-4:]}"
    except phonenumbers.NumberParseException:
        pass
    digits = re.sub(r"[^0-9]", "", phone)
    if len(digits) >= 7:
        return f"{digits[:3]}****{digits[-4:]}"
    return "****"


def mask_name(name: str) -> str:
    """``王伟`` → ``王*``, ``Margaret`` → ``M***``: the first character only."""
    text = name.strip()
    if not text:
        return text
    return text[0] + "*" * max(1, min(len(text) - 1, 3))


def mask_identifier(value: str) -> str:
    """A record or device id with its middle hidden: ``W-00162321`` → ``W-***21``."""
    keep = min(4, max(1, len(value) // 4))
    if len(value) <= 2:
        return "*" * len(value)
    return f"{value[:keep]}***{value[-keep:]}"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def mask_attribute(name: str, value: Any) -> Any:
    """The value as people without PII access see it (e-mail, phone, names, birth date)."""
    if value is None:
        return None
    if name == "email":
        return mask_email(str(value))
    if name == "phone":
        return mask_phone(str(value))
    if name in _NAMES:
        return mask_name(str(value))
    if name == "birth_date" and isinstance(value, dt.date):
        return f"{value.year}-**-**"
    return value


def find_customer_key(engine: Engine, wanted: str, as_of: dt.date) -> str:
    """The customer_key for a key, a source customer id or device id, an e-mail or a phone."""
    profiles = engine.read(PROFILES)
    text = wanted.strip()
    found = engine.execute(
        profiles.filter(profiles.customer_key == text).select("customer_key").limit(1)
    ).to_pylist()
    if found:
        return str(found[0]["customer_key"])
    nodes = identity_snapshot(engine, as_of).nodes
    keys = nodes.filter(nodes.node_id == text).select("customer_key").distinct()
    candidates = sorted(r["customer_key"] for r in engine.execute(keys).to_pylist())
    how = "id"
    if not candidates and "@" in text:
        email = trim(profiles.email).lower()
        match = profiles.filter(email == text.lower()).select("customer_key")
        candidates = sorted(r["customer_key"] for r in engine.execute(match).to_pylist())
        how = "e-mail"
    digits = re.sub(r"[^0-9]", "", text)
    if not candidates and len(digits) >= 7 and not re.search(r"[A-Za-z@]", text):
        width = min(len(digits), _PHONE_MATCH_DIGITS)
        stored = profiles.phone.re_replace(r"[^0-9]", "")
        match = profiles.filter(
            (stored.length() >= width) & (stored.right(width) == digits[-width:])
        ).select("customer_key")
        candidates = sorted(r["customer_key"] for r in engine.execute(match).to_pylist())
        how = "phone"
    if not candidates:
        raise NotFoundError(
            "no customer found for that id: give a customer_key, a source customer id, a "
            "device id, an e-mail address or a phone number"
        )
    if len(candidates) > 1:
        raise NotFoundError(
            f"that {how} belongs to {len(candidates)} customers; give one of their "
            "customer_keys: " + ", ".join(candidates[:5])
        )
    return candidates[0]


def profile_view(
    engine: Engine, customer_key_or_any_id: str, *, mask_pii: bool = True
) -> dict[str, Any]:
    """The 360° view of one customer as plain JSON-able values.

    Parameters
    ----------
    engine
        The warehouse after ``build_profiles``.
    customer_key_or_any_id
        A ``customer_key``, a source's customer id, a device (anonymous) id, an e-mail
        address or a phone number (matched on its last ten digits).
    mask_pii
        Hide most of e-mail, phone, names, birth date and identifiers (``li***@example.com``,
        ``+86 138****8000``, ``王*``); pass False only for a user allowed to see them.
    """
    if not engine.exists(PROFILES):
        raise NotFoundError("no profiles yet: build them first (build_profiles)")
    profiles = engine.read(PROFILES)
    dates = engine.execute(profiles.select("as_of").distinct().limit(1)).to_pylist()
    if not dates:
        raise NotFoundError("the profiles table is empty: build it first (build_profiles)")
    as_of: dt.date = dates[0]["as_of"]
    key = find_customer_key(engine, customer_key_or_any_id, as_of)
    (row,) = engine.execute(profiles.filter(profiles.customer_key == key)).to_pylist()

    identity = identity_snapshot(engine, as_of)
    nodes = identity.nodes.filter(identity.nodes.customer_key == key)
    node_rows = sorted(
        engine.execute(nodes.select("node_source", "node_id", "node_kind")).to_pylist(),
        key=lambda r: (r["node_kind"], r["node_source"], r["node_id"]),
    )
    ids = [r["node_id"] for r in node_rows if r["node_kind"] == CUSTOMER_NODE]
    devices = [r["node_id"] for r in node_rows if r["node_kind"] == ANONYMOUS_NODE]

    day = _facts.AsOf(as_of, include_late_loads=True)
    recent_events: list[dict[str, Any]] = []
    events = _facts.events(engine, day, identity, customer_ids=ids, devices=devices)
    if events is not None:
        mine = events.filter(events.customer_key == key)
        latest = mine.order_by([mine.occurred_at.desc(), mine.event_id.desc()]).limit(RECENT)
        columns = ["occurred_at", "event_type", "channel", "sku", "_source"]
        recent_events = [
            {("source" if k == "_source" else k): _plain(v) for k, v in r.items()}
            for r in engine.execute(latest.select(*columns)).to_pylist()
        ]
    recent_orders: list[dict[str, Any]] = []
    orders = _facts.orders(engine, day, identity, customer_ids=ids)
    if orders is not None:
        mine = orders.filter(orders.customer_key == key)
        latest = mine.order_by([mine.ordered_at.desc(), mine.order_id.desc()]).limit(RECENT)
        columns = ["ordered_at", "order_id", "is_return", "gross", "returned", "net", "_source"]
        recent_orders = [
            {("source" if k == "_source" else k): _plain(v) for k, v in r.items()}
            for r in engine.execute(latest.select(*columns)).to_pylist()
        ]

    attributes = {
        name: mask_attribute(name, row[name]) if mask_pii else row[name] for name in ATTRIBUTES
    }
    hidden = {"customer_key", "as_of", *ATTRIBUTES}
    return {
        "customer_key": key,
        "as_of": as_of.isoformat(),
        "masked": mask_pii,
        "identifiers": [
            {
                "source": r["node_source"],
                "kind": r["node_kind"],
                "id": mask_identifier(r["node_id"]) if mask_pii else r["node_id"],
            }
            for r in node_rows
        ],
        "attributes": {k: _plain(v) for k, v in attributes.items()},
        "tags": {k: _plain(v) for k, v in row.items() if k not in hidden},
        "recent_events": recent_events,
        "recent_orders": recent_orders,
    }
