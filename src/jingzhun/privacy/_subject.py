"""Who a data-subject request is about: from any one identifier to the person's whole set.

The identity graph gives the set: every ``customer_key`` the identifier reaches, every node
(source record or device) of those keys, the normalised identifiers of the nodes, the raw
e-mails and phones as the sources wrote them, and the orders of the person's records (order
items carry only the order id). Without an identity build the raw customer records are
searched directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import ibis
import phonenumbers
import pyarrow as pa

from jingzhun.core import NotFoundError
from jingzhun.engine import Engine
from jingzhun.ingest import TOMBSTONES_SCHEMA, tombstone_hash
from jingzhun.privacy._match import Matcher, distinctive

IDENTITY_MAP = "identity_map"
IDENTIFIERS = "identifiers"
PROFILES = "profiles"
RAW_CUSTOMERS = "raw_customers"
RAW_ORDERS = "raw_orders"
_PHONE_DIGITS = 9


@dataclass
class Subject:
    """One person's identifiers, found from the identifier a request gave."""

    given: str
    customer_keys: set[str] = field(default_factory=set)
    customers: set[tuple[str, str]] = field(default_factory=set)  # (source, customer id)
    devices: set[tuple[str, str]] = field(default_factory=set)  # (source, anonymous id)
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)  # as written
    id_hashes: set[str] = field(default_factory=set)
    orders: set[tuple[str, str]] = field(default_factory=set)  # (source, order id)
    in_warehouse: bool = True

    @property
    def name(self) -> str:
        """The name a person's archive key is made under: their smallest source record
        (stabler than a customer_key, which a merge can change), else key or identifier.
        """
        if self.customers:
            return min(f"{s}:{i}" for s, i in self.customers)
        if self.customer_keys:
            return min(self.customer_keys)
        return self.given.strip().lower()

    def names(self) -> set[str]:
        """Every name an earlier archive of the person may have been keyed under."""
        return (
            {f"{s}:{i}" for s, i in self.customers}
            | set(self.customer_keys)
            | {self.given.strip().lower(), self.name}
        )

    def summary(self) -> dict[str, int]:
        """How many identifiers of each kind were found (never the values)."""
        return {
            "customer_keys": len(self.customer_keys),
            "customer_records": len(self.customers),
            "devices": len(self.devices),
            "emails": len(self.emails),
            "phones": len(self.phones),
            "orders": len(self.orders),
        }

    def matcher(self, region: str) -> Matcher:
        """What to look for in tables and files (see ``jingzhun.privacy._match``)."""
        digits: set[str] = set()
        tokens: set[str] = set(self.customer_keys) | self.id_hashes
        for phone in self.phones:
            forms = phone_forms(phone, region)
            digits |= {f for f in forms if f.isdigit()}
            tokens |= {f for f in forms if not f.isdigit()}
        tokens |= {f"c:{s}:{i}" for s, i in self.customers}
        tokens |= {f"a:{s}:{i}" for s, i in self.devices}
        tokens |= {i for _, i in self.devices if i.strip()}
        tokens |= {i for _, i in self.customers if distinctive(i)}
        tokens |= {i for _, i in self.orders if distinctive(i)}
        return Matcher(
            emails=frozenset(e.strip().lower() for e in self.emails if e.strip()),
            digits=frozenset(d for d in digits if len(d) >= 7),
            tokens=frozenset(t.strip() for t in tokens if t.strip()),
            ids=frozenset((s, i) for s, i in self.customers if not distinctive(i)),
            orders=frozenset((s, i) for s, i in self.orders if not distinctive(i)),
        )

    def tombstones(
        self, key: bytes, *, on_return: str, request_id: str, erased_at: datetime
    ) -> pa.Table:
        """Keyed hashes of every identifier, for ``privacy_tombstones`` (no identifier kept)."""
        wanted: list[tuple[str, str, str | None]] = []
        wanted += [("email", e, None) for e in self.emails]
        wanted += [("phone", p, None) for p in self.phones]
        wanted += [("customer_id", i, s) for s, i in self.customers]
        wanted += [("anonymous_id", i, None) for _, i in self.devices]
        wanted += [("order_id", i, s) for s, i in self.orders]
        rows = sorted(
            {
                (kind, digest)
                for kind, value, source in wanted
                if (digest := tombstone_hash(key, kind, value, source)) is not None
            }
        )
        return pa.table(
            {
                "kind": [k for k, _ in rows],
                "value_hash": [h for _, h in rows],
                "on_return": [on_return] * len(rows),
                "request_id": [request_id] * len(rows),
                "erased_at": pa.array([erased_at] * len(rows), pa.timestamp("us", tz="UTC")),
            },
            schema=TOMBSTONES_SCHEMA,
        )


def phone_forms(raw: str, region: str) -> set[str]:
    """A phone as written, as digits, in E.164 and nationally (``07959 482696`` → all four)."""
    text = raw.strip()
    forms = {text, re.sub(r"\D", "", text)}
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException:
        return {f for f in forms if f}
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    forms |= {e164, e164.lstrip("+"), national, re.sub(r"\D", "", national)}
    return {f for f in forms if f}


def _rows(engine: Engine, expr: ibis.Table) -> list[dict[str, object]]:
    return engine.execute(expr).to_pylist()


def _keys_for(engine: Engine, text: str) -> set[str]:
    """customer_keys the identifier names directly, as a node or through an identifier."""
    keys: set[str] = set()
    lowered = text.lower()
    digits = re.sub(r"\D", "", text)
    phone_like = len(digits) >= 7 and not re.search(r"[A-Za-z@]", text)
    if engine.exists(IDENTITY_MAP):
        m = engine.read(IDENTITY_MAP)
        hits = m.filter((m.customer_key == text) | (m.node_id == text)).select("customer_key")
        keys |= {str(r["customer_key"]) for r in _rows(engine, hits.distinct())}
        if engine.exists(IDENTIFIERS) and ("@" in text or phone_like):
            ids = engine.read(IDENTIFIERS)
            if "@" in text:
                found = ids.filter((ids.kind == "email") & (ids.value == lowered))
            else:
                tail = digits[-_PHONE_DIGITS:]
                value = ids.value.re_replace(r"[^0-9]", "")
                found = ids.filter((ids.kind == "phone") & (value.right(_PHONE_DIGITS) == tail))
            nodes = found.select("node_source", "node_id").distinct()
            joined = m.join(nodes, ["node_source", "node_id"]).select("customer_key").distinct()
            keys |= {str(r["customer_key"]) for r in _rows(engine, joined)}
    if engine.exists(PROFILES):
        p = engine.read(PROFILES)
        condition = p.customer_key == text
        if "@" in text:
            condition |= p.email.strip().lower() == lowered
        if phone_like:
            stored = p.phone.re_replace(r"[^0-9]", "")
            condition |= (stored.length() >= 7) & (
                stored.right(_PHONE_DIGITS) == digits[-_PHONE_DIGITS:]
            )
        hits = p.filter(condition.fill_null(False)).select("customer_key").distinct()
        keys |= {str(r["customer_key"]) for r in _rows(engine, hits)}
    return keys


def _raw_records(engine: Engine, text: str) -> set[tuple[str, str]]:
    """(source, customer id) of raw customer records holding the identifier."""
    raw = engine.read(RAW_CUSTOMERS)
    condition = raw.customer_id == text
    if "@" in text:
        condition |= raw.email.strip().lower() == text.lower()
    digits = re.sub(r"\D", "", text)
    if len(digits) >= 7 and not re.search(r"[A-Za-z@]", text):
        stored = raw.phone.re_replace(r"[^0-9]", "")
        condition |= (stored.length() >= 7) & (
            stored.right(_PHONE_DIGITS) == digits[-_PHONE_DIGITS:]
        )
    hits = raw.filter(condition.fill_null(False)).select("_source", "customer_id").distinct()
    return {(str(r["_source"]), str(r["customer_id"])) for r in _rows(engine, hits)}


def find_subject(engine: Engine, given: str) -> Subject:
    """Every identifier of the person ``given`` names (a customer_key, a source customer id,
    a device id, an e-mail or a phone).

    An identifier that reaches several customers is refused with their keys, so the request
    can name one. An e-mail or phone found nowhere in the warehouse still makes a subject (it
    may sit in the consent ledger or a file); anything else found nowhere is ``NotFoundError``.
    """
    text = given.strip()
    if not text:
        raise NotFoundError("give an identifier: a customer_key, customer id, e-mail or phone")
    subject = Subject(given=text)
    keys = _keys_for(engine, text)
    if len(keys) > 1:
        raise NotFoundError(
            f"that identifier belongs to {len(keys)} customers; name one of their "
            "customer_keys: " + ", ".join(sorted(keys)[:10])
        )
    if not keys and engine.exists(RAW_CUSTOMERS):
        # not resolved yet (no identity build, or an identifier identity refused): the records
        subject.customers = _raw_records(engine, text)
        if subject.customers and engine.exists(IDENTITY_MAP):
            m = engine.read(IDENTITY_MAP)
            keyed = [f"{s}\x1f{i}" for s, i in sorted(subject.customers)]
            hits = m.filter(m.node_source.concat("\x1f", m.node_id).isin(keyed))
            keys = {str(r["customer_key"]) for r in _rows(engine, hits.select("customer_key"))}
            if len(keys) > 1:
                raise NotFoundError(
                    f"that identifier belongs to {len(keys)} customers; name one of their "
                    "customer_keys: " + ", ".join(sorted(keys)[:10])
                )
    subject.customer_keys = keys
    if keys and engine.exists(IDENTITY_MAP):
        m = engine.read(IDENTITY_MAP)
        nodes = m.filter(m.customer_key.isin(sorted(keys)))
        for row in _rows(engine, nodes.select("node_source", "node_id", "node_kind").distinct()):
            pair = (str(row["node_source"]), str(row["node_id"]))
            (subject.devices if row["node_kind"] == "anonymous" else subject.customers).add(pair)
    if subject.customers and engine.exists(RAW_CUSTOMERS):
        raw = engine.read(RAW_CUSTOMERS)
        keyed = [f"{s}\x1f{i}" for s, i in sorted(subject.customers)]
        mine = raw.filter(raw._source.concat("\x1f", raw.customer_id).isin(keyed))
        for row in _rows(engine, mine.select("email", "phone").distinct()):
            if row["email"]:
                subject.emails.add(str(row["email"]))
            if row["phone"]:
                subject.phones.add(str(row["phone"]))
    if engine.exists(IDENTIFIERS) and (subject.customers or subject.devices):
        ids = engine.read(IDENTIFIERS)
        keyed = [f"{s}\x1f{i}" for s, i in sorted(subject.customers | subject.devices)]
        mine = ids.filter(ids.node_source.concat("\x1f", ids.node_id).isin(keyed))
        for row in _rows(engine, mine.select("kind", "value").distinct()):
            kind, value = str(row["kind"]), str(row["value"])
            if kind == "email":
                subject.emails.add(value)
            elif kind == "phone":
                subject.phones.add(value)
            elif kind == "id_hash":
                subject.id_hashes.add(value)
    if keys and engine.exists(PROFILES):
        p = engine.read(PROFILES)
        for row in _rows(
            engine, p.filter(p.customer_key.isin(sorted(keys))).select("email", "phone")
        ):
            if row["email"]:
                subject.emails.add(str(row["email"]))
            if row["phone"]:
                subject.phones.add(str(row["phone"]))
    if subject.customers and engine.exists(RAW_ORDERS):
        o = engine.read(RAW_ORDERS)
        keyed = [f"{s}\x1f{i}" for s, i in sorted(subject.customers)]
        mine = o.filter(o._source.concat("\x1f", o.customer_id).isin(keyed))
        subject.orders = {
            (str(r["_source"]), str(r["order_id"]))
            for r in _rows(engine, mine.select("_source", "order_id").distinct())
        }
    if not (subject.customer_keys or subject.customers):
        subject.in_warehouse = False
        if "@" in text:
            subject.emails.add(text)
        elif len(re.sub(r"\D", "", text)) >= 7 and not re.search(r"[A-Za-z]", text):
            subject.phones.add(text)
        else:
            raise NotFoundError(
                "no customer found for that identifier in the warehouse: give a customer_key, "
                "a source customer id, a device id, an e-mail address or a phone number"
            )
    return subject
