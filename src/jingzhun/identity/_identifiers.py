"""Identifiers of every record, read from the raw tables: the evidence identity resolution uses.

A *node* is one record a source knows: a customer id of a source (``customer``) or an anonymous
cookie or device id of an event source (``anonymous``). Its key is ``c:<source>:<id>`` or
``a:<source>:<id>``; source names cannot hold a colon, so keys are unambiguous.

``extract_identifiers`` writes three tables:

- ``identifiers``: per node its normalised e-mails and E.164 phones, keyed hashes of ID numbers,
  its customer id or anonymous id;
- ``identifier_rejects``: values that were present but refused (malformed, placeholder), masked;
- ``identity_links``: pairs of nodes that events tie together (identify, alias, any event that
  carries both an anonymous id and a customer id).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc

from jingzhun.core import Project
from jingzhun.engine import Engine
from jingzhun.identity._normalize import keyed_hash, normalize_emails, normalize_phones

IDENTIFIERS_TABLE = "identifiers"
REJECTS_TABLE = "identifier_rejects"
LINKS_TABLE = "identity_links"


class NodeKind(StrEnum):
    """What a node is: a customer record of a source, or an anonymous cookie/device id."""

    CUSTOMER = "customer"
    ANONYMOUS = "anonymous"


class IdentifierKind(StrEnum):
    """Kinds of identifier in the ``identifiers`` table."""

    EMAIL = "email"
    PHONE = "phone"
    ANONYMOUS_ID = "anonymous_id"
    CUSTOMER_ID = "customer_id"
    ID_HASH = "id_hash"


class Reason(StrEnum):
    """Why two nodes were linked (``merge_log.reason``), strongest evidence first."""

    REVIEW_ACCEPT = "review_accept"
    SHARED_ID = "shared_id"
    SHARED_EMAIL = "shared_email"
    SHARED_PHONE = "shared_phone"
    IDENTIFY_EVENT = "identify_event"
    ALIAS_EVENT = "alias_event"
    PROBABILISTIC = "probabilistic"


_KIND_LETTER = {NodeKind.CUSTOMER: "c", NodeKind.ANONYMOUS: "a"}

# Placeholders that staff type when a customer gives no contact, and numbers reserved for
# fiction. 13800138000 is China Mobile's well-known service number; 07700 900xxx is Ofcom's
# drama range (already refused as invalid by libphonenumber); 555-01xx is the US film range.
# Numbers without a country code are read in the project's region, so a list entry only blocks
# in the regions where it parses; E.164 entries block everywhere.
DEFAULT_BLOCKED_PHONES: tuple[str, ...] = (
    "13800000000",
    "13800138000",
    "13888888888",
    "13900000000",
    "13911111111",
    "+8613800000000",
    "+8613800138000",
    "07700900000",
    "07123456789",
    "+447700900000",
    "+447123456789",
    "5555555555",
    "2125550100",
    "1234567890",
    "+15555555555",
)
DEFAULT_BLOCKED_EMAILS: tuple[str, ...] = (
    "test@test.com",
    "noemail@noemail.com",
    "none@none.com",
    "no@no.com",
    "a@a.com",
    "abc@abc.com",
    "123@qq.com",
)
# Local parts and domains that mark an address as a placeholder wherever they appear.
# example.com/.net/.org are reserved for documentation (RFC 2606), so no customer has them.
DEFAULT_BLOCKED_EMAIL_LOCAL_PARTS: tuple[str, ...] = (
    "noemail",
    "no-email",
    "no_email",
    "nomail",
    "none",
    "null",
    "test",
    "unknown",
    "noreply",
    "no-reply",
    "donotreply",
)
DEFAULT_BLOCKED_EMAIL_DOMAINS: tuple[str, ...] = (
    "example.com",
    "example.net",
    "example.org",
    "test.com",
    "invalid",
    "localhost",
)


@dataclass(frozen=True)
class IdentitySettings:
    """How identifiers are read and how carefully records are merged (defaults are safe).

    Parameters
    ----------
    region
        ISO 3166 country for phone numbers written without a country code.
    timezone
        The project's zone: ``as_of`` means the end of that day there.
    hash_key
        Secret for keyed hashes of ID numbers; without it ID numbers are refused, never kept.
    max_nodes_per_identifier
        An e-mail, phone or ID hash held by more distinct customer ids than this links none of
        them (a shop's shared address); an anonymous id identified as more customers than this
        links none (a kiosk tablet).
    blocklist
        Placeholder values that never link; e-mails are recognised by their "@". Normalised
        like the data, so any spelling of a listed number matches.
    allow_same_source_merge
        Allow two different customer ids of one customer source in one customer. Off by
        default: a system that keeps two ids apart usually has a reason.
    merge_threshold, review_threshold
        Probabilistic pairs at or above ``merge_threshold`` are merged; those from
        ``review_threshold`` up to it wait for a person's decision; lower ones are dropped.
    id_attributes
        Keys of the customers' ``attributes`` JSON that hold ID or card numbers.
    customer_sources
        Sources whose customer ids are records of their own (the same-source guard applies to
        them). ``None``: every source with customer rows and no order rows; an ``order_lines``
        source writes customer rows for the ids its lines carry, which are references.
    """

    region: str = "US"
    timezone: str = "UTC"
    hash_key: bytes | None = None
    max_nodes_per_identifier: int = 5
    blocklist: tuple[str, ...] = DEFAULT_BLOCKED_PHONES + DEFAULT_BLOCKED_EMAILS
    blocked_email_local_parts: tuple[str, ...] = DEFAULT_BLOCKED_EMAIL_LOCAL_PARTS
    blocked_email_domains: tuple[str, ...] = DEFAULT_BLOCKED_EMAIL_DOMAINS
    allow_same_source_merge: bool = False
    merge_threshold: float = 0.99
    review_threshold: float = 0.90
    id_attributes: tuple[str, ...] = ("id_number", "national_id", "passport_number")
    customer_sources: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.max_nodes_per_identifier < 2:
            problems.append(
                f"max_nodes_per_identifier must be at least 2, not {self.max_nodes_per_identifier}"
            )
        if not 0 < self.review_threshold <= self.merge_threshold <= 1:
            problems.append(
                "thresholds must satisfy 0 < review_threshold <= merge_threshold <= 1, not "
                f"review {self.review_threshold}, merge {self.merge_threshold}"
            )
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_project(cls, project: Project) -> IdentitySettings:
        """Settings from ``jingzhun.yml`` (``region``, ``timezone``, ``identity:``) and its key."""
        config = project.settings.identity
        return cls(
            region=project.settings.region,
            timezone=project.settings.timezone,
            hash_key=project.secret("identity"),
            max_nodes_per_identifier=config.max_nodes_per_identifier,
            blocklist=cls.blocklist + tuple(config.blocklist),
            allow_same_source_merge=config.allow_same_source_merge,
            merge_threshold=config.merge_threshold,
            review_threshold=config.review_threshold,
        )

    def cutoff(self, as_of: date | None) -> datetime | None:
        """The first instant after ``as_of`` in the project's zone, in UTC (None: no limit)."""
        if as_of is None:
            return None
        next_day = datetime.combine(as_of + timedelta(days=1), time(0), ZoneInfo(self.timezone))
        return next_day.astimezone(UTC)


@dataclass(frozen=True)
class IdentifierTables:
    """What ``extract_identifiers`` wrote: table names and row counts."""

    identifiers: str = IDENTIFIERS_TABLE
    rejects: str = REJECTS_TABLE
    links: str = LINKS_TABLE
    counts: Mapping[str, int] = field(default_factory=dict)
    rejected: int = 0


IDENTIFIERS_SCHEMA = pa.schema(
    [
        ("node_source", pa.string()),
        ("node_id", pa.string()),
        ("node_kind", pa.string()),
        ("kind", pa.string()),
        ("value", pa.string()),
    ]
)
REJECTS_SCHEMA = pa.schema(
    [
        ("node_source", pa.string()),
        ("node_id", pa.string()),
        ("kind", pa.string()),
        ("reason", pa.string()),
        ("masked_value", pa.string()),
    ]
)
LINKS_SCHEMA = pa.schema(
    [
        ("node_a", pa.string()),
        ("node_b", pa.string()),
        ("reason", pa.string()),
        ("evidence", pa.string()),
    ]
)

BLOCKED = "placeholder value on the blocklist"
NO_HASH_KEY = "ID number not kept: no identity hash key is configured"


# -- node keys ------------------------------------------------------------------------------------


def node_key(source: str, node_id: str, kind: NodeKind | str = NodeKind.CUSTOMER) -> str:
    """The key of a node: ``c:<source>:<id>`` for a customer record, ``a:...`` for anonymous."""
    return f"{_KIND_LETTER[NodeKind(kind)]}:{source}:{node_id}"


def parse_node_key(key: str) -> tuple[str, str, NodeKind]:
    """Split a node key into source, id and kind; raises ValueError for anything else."""
    letter, sep, rest = key.partition(":")
    source, sep2, node_id = rest.partition(":")
    kinds = {v: k for k, v in _KIND_LETTER.items()}
    if not (sep and sep2 and source and node_id) or letter not in kinds:
        raise ValueError(
            f"'{key}' is not a node key; expected c:<source>:<customer id> or "
            "a:<source>:<anonymous id>, as identity_map and merge_log show them"
        )
    return source, node_id, kinds[letter]


def key_expr(kind: ir.StringValue | str, source: ir.StringValue, node_id: ir.StringValue) -> Any:
    """Node key as an Ibis expression, from a node_kind value or column."""
    if isinstance(kind, str):
        prefix: Any = ibis.literal(f"{_KIND_LETTER[NodeKind(kind)]}:")
    else:
        prefix = ibis.cases((kind == NodeKind.ANONYMOUS.value, "a:"), else_="c:")
    return prefix + source + ":" + node_id


def mask_expr(value: ir.StringValue) -> Any:
    """First two characters and ``***``: enough to recognise a value, not to read it."""
    return value.substr(0, 2) + "***"


def mask(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Arrow version of ``mask_expr``."""
    text = pc.utf8_trim_whitespace(values.cast(pa.string()))
    return pc.binary_join_element_wise(pc.utf8_slice_codeunits(text, 0, 2), "***", "")


# -- table helpers --------------------------------------------------------------------------------


def write_table(engine: Engine, name: str, schema: pa.Schema, *parts: pa.Table | ir.Table) -> int:
    """(Re)create ``name`` with ``schema`` and write the parts; returns rows written.

    Expression parts are written as one union: each write is a job on Spark.
    """
    engine.drop(name)
    engine.create(name, schema)
    arrow = [p for p in parts if isinstance(p, pa.Table)]
    exprs = [p.select(*schema.names) for p in parts if not isinstance(p, pa.Table)]
    written = sum(engine.write(name, p) for p in arrow)
    if exprs:
        written += engine.write(name, ibis.union(*exprs) if len(exprs) > 1 else exprs[0])
    return written


def replace_tables(engine: Engine, staged: Mapping[str, tuple[str, pa.Schema]]) -> None:
    """Swap fully written staging tables into place: ``{final: (staging, schema)}``.

    Readers see the old tables or the new ones. On DuckDB the drop, create and copy share one
    transaction. On Spark a drop removes a folder at once, so the new rows are computed and
    written under the staging name first; only the copy (no computation left to fail) runs
    between the drop and the commit, and the staging table stays until the copy succeeded.
    """
    with engine.transaction():
        for final, (staging, schema) in staged.items():
            engine.drop(final)
            engine.create(final, schema)
            engine.write(final, engine.read(staging))
    for staging, _ in staged.values():
        engine.drop(staging)


@contextlib.contextmanager
def registered(engine: Engine, name: str, data: pa.Table) -> Iterator[ir.Table]:
    """Register Arrow data for the block, then unregister it."""
    table = engine.register(name, data)
    try:
        yield table
    finally:
        engine.unregister(name)


# -- reading the raw tables -----------------------------------------------------------------------


def _known_at(table: ir.Table, cutoff: datetime | None, *columns: str) -> ir.Table:
    """Rows loaded (and, for facts, happened) before the cutoff."""
    if cutoff is None:
        return table
    limit = ibis.literal(cutoff)
    for column in ("_loaded_at", *columns):
        table = table.filter(table[column] < limit)
    return table


def latest_customers(engine: Engine, cutoff: datetime | None) -> ir.Table | None:
    """The newest version of each customer record ``(_source, customer_id)`` before cutoff."""
    if not engine.exists("raw_customers"):
        return None
    rows = _known_at(engine.read("raw_customers"), cutoff)
    rows = rows.filter(rows.customer_id.notnull())
    # Newest load first; batch and file row break ties so every engine picks the same version.
    window = ibis.window(
        group_by=[rows._source, rows.customer_id],
        order_by=[rows._loaded_at.desc(), rows._batch_id.desc(), rows._row.desc()],
    )
    ranked = rows.mutate(_version=ibis.row_number().over(window))
    return ranked.filter(ranked._version == 0).drop("_version")


def known_events(engine: Engine, cutoff: datetime | None) -> ir.Table | None:
    """Events loaded and occurred before cutoff."""
    if not engine.exists("raw_events"):
        return None
    return _known_at(engine.read("raw_events"), cutoff, "occurred_at")


def known_orders(engine: Engine, cutoff: datetime | None) -> ir.Table | None:
    """Orders loaded and placed before cutoff."""
    if not engine.exists("raw_orders"):
        return None
    return _known_at(engine.read("raw_orders"), cutoff, "ordered_at")


def customer_sources(
    engine: Engine, settings: IdentitySettings, cutoff: datetime | None
) -> set[str]:
    """Sources whose customer ids are records of their own (see ``IdentitySettings``)."""
    if settings.customer_sources is not None:
        return set(settings.customer_sources)
    customers = latest_customers(engine, cutoff)
    if customers is None:
        return set()
    found = customers.select(source=customers._source, orders=ibis.literal(False))
    orders = known_orders(engine, cutoff)
    if orders is not None:
        found = found.union(orders.select(source=orders._source, orders=ibis.literal(True)))
    by_source = found.group_by("source").agg(orders=found.orders.any())
    owners = engine.execute(by_source.filter(~by_source.orders).select("source"))
    return set(owners["source"].to_pylist())


# -- normalisation and blocklists -----------------------------------------------------------------


def _blocked_values(settings: IdentitySettings) -> tuple[set[str], set[str]]:
    """The blocklist normalised like the data: (e-mails, E.164 phones)."""
    emails = [v for v in settings.blocklist if "@" in v]
    phones = [v for v in settings.blocklist if "@" not in v]
    normal_emails = normalize_emails(pa.array(emails, pa.string())).values.drop_null()
    normal_phones = normalize_phones(pa.array(phones, pa.string()), settings.region).values
    return set(normal_emails.to_pylist()), set(normal_phones.drop_null().to_pylist())


def _email_blocked(values: pa.Array, settings: IdentitySettings, listed: set[str]) -> pa.Array:
    parts = pc.extract_regex(values, r"^(?P<local>[^@]*)@(?P<domain>.*)$")
    local = pc.struct_field(parts, "local")
    domain = pc.struct_field(parts, "domain")
    blocked = pc.or_(
        pc.is_in(values, pa.array(sorted(listed), pa.string())),
        pc.or_(
            pc.is_in(local, pa.array(settings.blocked_email_local_parts, pa.string())),
            pc.is_in(domain, pa.array(settings.blocked_email_domains, pa.string())),
        ),
    )
    return pc.fill_null(blocked, False)


def _id_numbers(attributes: pa.Array, settings: IdentitySettings) -> list[pa.Array]:
    """ID numbers found under the configured keys of the attributes JSON, one array per key."""
    found = []
    for key in settings.id_attributes:
        pattern = f'"{key}"\\s*:\\s*"(?P<v>[^"]*)"'
        found.append(pc.struct_field(pc.extract_regex(attributes, pattern), "v"))
    return found


@dataclass
class _Parts:
    identifiers: list[pa.Table] = field(default_factory=list)
    rejects: list[pa.Table] = field(default_factory=list)


def _customer_identifiers(customers: pa.Table, settings: IdentitySettings) -> _Parts:
    """E-mails, phones and ID hashes of customer records, and the refused values, masked."""
    parts = _Parts()
    sources = customers["_source"].combine_chunks()
    ids = customers["customer_id"].combine_chunks()
    blocked_emails, blocked_phones = _blocked_values(settings)

    def add(kind: IdentifierKind, values: pa.Array, raw: pa.Array, reasons: pa.Array) -> None:
        ok = pc.is_valid(values)
        parts.identifiers.append(
            pa.table(
                {
                    "node_source": sources.filter(ok),
                    "node_id": ids.filter(ok),
                    "node_kind": pa.repeat(
                        pa.scalar(NodeKind.CUSTOMER.value), pc.sum(ok).as_py() or 0
                    ),
                    "kind": pa.repeat(pa.scalar(kind.value), pc.sum(ok).as_py() or 0),
                    "value": values.filter(ok),
                },
                schema=IDENTIFIERS_SCHEMA,
            )
        )
        bad = pc.is_valid(reasons)
        parts.rejects.append(
            pa.table(
                {
                    "node_source": sources.filter(bad),
                    "node_id": ids.filter(bad),
                    "kind": pa.repeat(pa.scalar(kind.value), pc.sum(bad).as_py() or 0),
                    "reason": reasons.filter(bad),
                    "masked_value": mask(raw.filter(bad)),
                },
                schema=REJECTS_SCHEMA,
            )
        )

    null_text = pa.scalar(None, pa.string())
    raw_email = customers["email"].combine_chunks()
    emails = normalize_emails(raw_email)
    email_blocked = _email_blocked(emails.values, settings, blocked_emails)
    add(
        IdentifierKind.EMAIL,
        pc.if_else(email_blocked, null_text, emails.values),
        raw_email,
        pc.if_else(email_blocked, BLOCKED, emails.reasons),
    )

    raw_phone = customers["phone"].combine_chunks()
    phones = normalize_phones(raw_phone, settings.region)
    phone_blocked = pc.fill_null(
        pc.is_in(phones.values, pa.array(sorted(blocked_phones), pa.string())), False
    )
    add(
        IdentifierKind.PHONE,
        pc.if_else(phone_blocked, null_text, phones.values),
        raw_phone,
        pc.if_else(phone_blocked, BLOCKED, phones.reasons),
    )

    attributes = customers["attributes"].combine_chunks()
    for raw_id in _id_numbers(attributes, settings):
        present = pc.fill_null(pc.not_equal(pc.utf8_trim_whitespace(raw_id), ""), False)
        if settings.hash_key:
            hashed = pc.if_else(present, keyed_hash(raw_id, settings.hash_key), null_text)
            reasons = pa.nulls(len(raw_id), pa.string())
        else:
            hashed = pa.nulls(len(raw_id), pa.string())
            reasons = pc.if_else(present, NO_HASH_KEY, null_text)
        add(IdentifierKind.ID_HASH, hashed, raw_id, reasons)
    return parts


def _event_and_order_nodes(
    events: ir.Table | None, orders: ir.Table | None, previous_ids: ir.Table | None
) -> list[ir.Table]:
    """Customer and anonymous nodes named by events and orders, as identifier rows."""

    def rows(table: ir.Table, column: str, node: NodeKind, kind: IdentifierKind) -> ir.Table:
        present = table.filter(table[column].notnull() & (table[column] != ""))
        return present.select(
            node_source=present._source,
            node_id=present[column],
            node_kind=ibis.literal(node.value),
            kind=ibis.literal(kind.value),
            value=present[column],
        )

    found = []
    if events is not None:
        found.append(rows(events, "customer_id", NodeKind.CUSTOMER, IdentifierKind.CUSTOMER_ID))
        found.append(rows(events, "anonymous_id", NodeKind.ANONYMOUS, IdentifierKind.ANONYMOUS_ID))
    if previous_ids is not None:
        found.append(
            rows(previous_ids, "previous_id", NodeKind.ANONYMOUS, IdentifierKind.ANONYMOUS_ID)
        )
    if orders is not None:
        found.append(rows(orders, "customer_id", NodeKind.CUSTOMER, IdentifierKind.CUSTOMER_ID))
    return found


def _with_previous_ids(events: ir.Table) -> ir.Table:
    """Alias events with the id they merge (Segment's ``previousId``, in ``properties``)."""
    aliases = events.filter(events.event_type == "alias")
    previous = aliases.properties.re_extract(r'"previous_?[iI]d"\s*:\s*"([^"]+)"', 1)
    return aliases.mutate(previous_id=previous.nullif(""))


def _event_links(events: ir.Table) -> ir.Table:
    """Node pairs events tie together; the evidence is the first such event's id.

    An ``alias`` links its previous id to the customer (or, without one, to its anonymous id)
    and its anonymous id to the customer; any other event that carries both an anonymous id and
    a customer id (``identify`` first of all) identifies that visitor.
    """
    both = events.filter(
        events.customer_id.notnull()
        & (events.customer_id != "")
        & events.anonymous_id.notnull()
        & (events.anonymous_id != "")
    )
    direct = both.select(
        node_a=key_expr(NodeKind.ANONYMOUS, both._source, both.anonymous_id),
        node_b=key_expr(NodeKind.CUSTOMER, both._source, both.customer_id),
        reason=ibis.cases(
            (both.event_type == "alias", Reason.ALIAS_EVENT.value),
            else_=Reason.IDENTIFY_EVENT.value,
        ),
        event_id=both.event_id,
    )
    previous_ids = _with_previous_ids(events)
    merged = previous_ids.filter(previous_ids.previous_id.notnull())
    has_customer = merged.customer_id.notnull() & (merged.customer_id != "")
    alias = merged.select(
        node_a=key_expr(NodeKind.ANONYMOUS, merged._source, merged.previous_id),
        node_b=ibis.cases(
            (has_customer, key_expr(NodeKind.CUSTOMER, merged._source, merged.customer_id)),
            else_=key_expr(NodeKind.ANONYMOUS, merged._source, merged.anonymous_id),
        ),
        reason=ibis.literal(Reason.ALIAS_EVENT.value),
        event_id=merged.event_id,
    )
    pairs = direct.union(alias)
    pairs = pairs.filter(pairs.node_b.notnull() & (pairs.node_a != pairs.node_b))
    return pairs.group_by(["node_a", "node_b", "reason"]).agg(evidence=pairs.event_id.min())


def extract_identifiers(
    engine: Engine,
    *,
    region: str,
    hash_key: bytes | None,
    as_of: date | None = None,
    settings: IdentitySettings | None = None,
    count: bool = True,
) -> IdentifierTables:
    """Read every node's identifiers from the raw tables; write ``identifiers``,
    ``identifier_rejects`` and ``identity_links`` (replaced as a whole).

    Parameters
    ----------
    region, hash_key
        Phone region and ID-number key; they override those of ``settings``.
    as_of
        Use only rows loaded by the end of that day (project time zone) and, for events and
        orders, that happened by then.
    settings
        Blocklists, ID attribute keys and the time zone (defaults when None).
    count
        Count identifiers by kind for ``IdentifierTables.counts`` (one more query).
    """
    settings = replace(settings or IdentitySettings(), region=region, hash_key=hash_key)
    cutoff = settings.cutoff(as_of)
    customers = latest_customers(engine, cutoff)
    events = known_events(engine, cutoff)
    orders = known_orders(engine, cutoff)
    previous_ids = _with_previous_ids(events) if events is not None else None

    parts = _Parts()
    if customers is not None:
        wanted = customers.select("_source", "customer_id", "email", "phone", "attributes")
        fetched = engine.execute(wanted)
        parts = _customer_identifiers(fetched, settings)
        parts.identifiers.append(
            pa.table(
                {
                    "node_source": fetched["_source"],
                    "node_id": fetched["customer_id"],
                    "node_kind": pa.repeat(pa.scalar(NodeKind.CUSTOMER.value), fetched.num_rows),
                    "kind": pa.repeat(
                        pa.scalar(IdentifierKind.CUSTOMER_ID.value), fetched.num_rows
                    ),
                    "value": fetched["customer_id"],
                },
                schema=IDENTIFIERS_SCHEMA,
            )
        )
    known = pa.concat_tables([IDENTIFIERS_SCHEMA.empty_table(), *parts.identifiers])
    rejects = pa.concat_tables([REJECTS_SCHEMA.empty_table(), *parts.rejects])
    with registered(engine, "identity_tmp_customer_identifiers", known) as from_customers:
        pieces = [from_customers, *_event_and_order_nodes(events, orders, previous_ids)]
        identifiers = ibis.union(*pieces, distinct=True) if len(pieces) > 1 else pieces[0]
        # Derived evidence, rebuilt whole: on DuckDB the three tables change in one
        # transaction; on Spark the rows appear at commit (see ``replace_tables`` for why the
        # build's own outputs take a staging table instead).
        with engine.transaction():
            write_table(engine, IDENTIFIERS_TABLE, IDENTIFIERS_SCHEMA, identifiers)
            write_table(engine, REJECTS_TABLE, REJECTS_SCHEMA, rejects)
            links = write_table(
                engine,
                LINKS_TABLE,
                LINKS_SCHEMA,
                *((_event_links(events),) if events is not None else ()),
            )
    counts = {"links": links}
    if count:
        ids = engine.read(IDENTIFIERS_TABLE)
        by_kind = engine.execute(ids.group_by("kind").agg(rows=ids.count()))
        counts |= dict(zip(by_kind["kind"].to_pylist(), by_kind["rows"].to_pylist(), strict=True))
    return IdentifierTables(counts=counts, rejected=rejects.num_rows)
