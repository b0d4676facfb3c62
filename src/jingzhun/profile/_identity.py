"""Reading the identity stage's ``identity_map`` and attributing records to a ``customer_key``.

The profile stage needs none of identity's code: it reads the table. ``identity_map`` maps
every customer record (``node_kind = 'customer'``: a source's ``customer_id``) and every device
(``node_kind = 'anonymous'``: an ``anonymous_id`` of an event) to one ``customer_key``; each
identity build appends rows stamped with its ``as_of`` and ``built_at``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from jingzhun.core import CONTRACTS, Target
from jingzhun.engine import Engine
from jingzhun.identity import IDENTITY_MAP_SCHEMA
from jingzhun.identity import IDENTITY_MAP_TABLE as IDENTITY_MAP

CUSTOMER_NODE = "customer"
ANONYMOUS_NODE = "anonymous"
FALLBACK_PREFIX = "ck_"


# Ibis's strip() prints TRIM(' \t\n\r\v\f' FROM x) for Spark, which reads '\f' and '\v' as
# the letters f and v and trims those too (gender "f" becomes ""); a regular expression trims
# the same on every engine.
_EDGE_SPACE = r"^\s+|\s+$"


def trim(column: ir.StringValue) -> ir.StringValue:
    """Text without leading and trailing white space, the same on DuckDB and Spark."""
    return column.re_replace(_EDGE_SPACE, "")


def blank_to_null(column: ir.StringValue) -> ir.StringValue:
    """Empty or blank text counts as missing."""
    return trim(column).nullif("")


def identity_map_from_ids(engine: Engine, *, as_of: dt.date | None = None) -> ir.Table:
    """The no-identity fallback: one ``customer_key`` per known (source, customer id).

    ``customer_key = 'ck_' + _source + ':' + customer_id`` for every id in ``raw_customers``
    and ``raw_orders``; nothing is merged and devices are not linked. The profile build uses
    it when the warehouse has no ``identity_map`` (the identity stage has not run); tests use
    it to stand in for identity. Returns an expression with the ``identity_map`` columns.
    """
    stamp = dt.datetime.now(dt.UTC).replace(microsecond=0)
    day = as_of or stamp.date()
    parts = []
    for target in (Target.CUSTOMERS, Target.ORDERS):
        name = CONTRACTS[target].raw_table
        if not engine.exists(name):
            continue
        raw = engine.read(name)
        parts.append(
            raw.select(node_source=raw._source, node_id=raw.customer_id).filter(
                lambda t: t.node_id.notnull()
            )
        )
    if not parts:
        empty = engine.register("_jz_empty_identity_map", IDENTITY_MAP_SCHEMA.empty_table())
        return empty
    nodes = parts[0] if len(parts) == 1 else ibis.union(*parts, distinct=True)
    nodes = nodes.distinct()
    return nodes.select(
        node_source=nodes.node_source,
        node_id=nodes.node_id,
        node_kind=ibis.literal(CUSTOMER_NODE),
        customer_key=ibis.literal(FALLBACK_PREFIX) + nodes.node_source + ":" + nodes.node_id,
        built_at=ibis.literal(stamp.replace(tzinfo=None), type="timestamp"),
        as_of=ibis.literal(day, type="date"),
    )


@dataclass(frozen=True)
class IdentitySnapshot:
    """The identity map a build uses: which build of it, and the lookups derived from it."""

    nodes: ir.Table  # node_source, node_id, node_kind, customer_key
    description: str

    @property
    def customer_nodes(self) -> ir.Table:
        """(id_source, id_value, id_key) for every customer record."""
        n = self.nodes.filter(self.nodes.node_kind == CUSTOMER_NODE)
        return n.select(id_source=n.node_source, id_value=n.node_id, id_key=n.customer_key)

    @property
    def customer_ids(self) -> ir.Table:
        """(cid_value, cid_keys, cid_key): per customer id, how many customers it names
        across sources and the (smallest) key.
        """
        n = self.customer_nodes
        return n.group_by(cid_value=n.id_value).aggregate(
            cid_keys=n.id_key.nunique(), cid_key=n.id_key.min()
        )

    @property
    def ambiguous_nodes(self) -> ir.Table:
        """(amb_source, amb_value, amb_key) for the few customer ids that name different
        customers in different sources: those need the record's own source to resolve.
        """
        n = self.customer_nodes
        ids = self.customer_ids
        shared = ids.filter(ids.cid_keys > 1).select(shared_value=ids.cid_value)
        ambiguous = n.semi_join(shared, n.id_value == shared.shared_value)
        return ambiguous.select(
            amb_source=ambiguous.id_source, amb_value=ambiguous.id_value, amb_key=ambiguous.id_key
        )

    @property
    def devices(self) -> ir.Table:
        """(dev_source, dev_id, dev_key) for every anonymous (cookie or device) id."""
        n = self.nodes.filter(self.nodes.node_kind == ANONYMOUS_NODE)
        return n.select(dev_source=n.node_source, dev_id=n.node_id, dev_key=n.customer_key)

    def identifiers(self) -> ir.Table:
        """(customer_key, identifiers): how many records and devices each customer has."""
        n = self.nodes
        return n.group_by("customer_key").aggregate(identifiers=n.count())


def identity_snapshot(engine: Engine, as_of: dt.date) -> IdentitySnapshot:
    """The identity build to profile with ``as_of``: the newest one made for a date up to
    ``as_of`` (the earliest one when all are later), else the no-identity fallback.
    """
    if not engine.exists(IDENTITY_MAP):
        nodes = identity_map_from_ids(engine, as_of=as_of)
        return IdentitySnapshot(
            nodes.select("node_source", "node_id", "node_kind", "customer_key"),
            "fallback: no identity_map, one customer per (source, customer id)",
        )
    table = engine.read(IDENTITY_MAP)
    builds = table.group_by(["as_of", "built_at"]).aggregate(nodes=table.count())
    rows = engine.execute(builds).to_pylist()
    if not rows:
        return IdentitySnapshot(
            table.select("node_source", "node_id", "node_kind", "customer_key"),
            "identity_map is empty",
        )
    usable = [r for r in rows if r["as_of"] is not None and r["as_of"] <= as_of]
    chosen = (
        max(usable, key=lambda r: (r["as_of"], r["built_at"]))
        if usable
        else min(rows, key=lambda r: (r["as_of"] or dt.date.max, r["built_at"]))
    )
    build = table
    if len(rows) > 1:
        build = table.filter(
            (table.as_of == ibis.literal(chosen["as_of"], type="date"))
            & (table.built_at == ibis.literal(chosen["built_at"].replace(tzinfo=None)))
        )
    note = "" if usable else " (no build as of an earlier date; the earliest one is used)"
    return IdentitySnapshot(
        build.select("node_source", "node_id", "node_kind", "customer_key"),
        f"identity_map built {chosen['built_at'].isoformat()} as of {chosen['as_of']}{note}",
    )


def attribute_by_customer_id(
    table: ir.Table, identity: IdentitySnapshot, *, source: str = "_source"
) -> ir.Table:
    """Add ``customer_key`` from the record's (source, customer_id) node, else from an id that
    names one customer in every source it appears in. Rows without a match get a null key.

    Done as a join on the id alone (the common case: an id means one customer wherever it
    appears) plus a join on (source, id) against the few ids that do not, which gives the
    same keys as joining every (source, id) first at a fraction of the cost.
    """
    # Ids are matched as stored: ingest trims text and stores blanks as null, and identity
    # names its nodes by the same values.
    ids = identity.customer_ids
    ambiguous = identity.ambiguous_nodes
    joined = table.left_join(ids, table.customer_id == ids.cid_value)
    joined = joined.select(*table.columns, "cid_keys", "cid_key")
    joined = joined.left_join(
        ambiguous,
        [joined[source] == ambiguous.amb_source, joined.customer_id == ambiguous.amb_value],
    )
    return joined.select(
        *table.columns,
        customer_key=ibis.cases((joined.cid_keys == 1, joined.cid_key), else_=joined.amb_key),
    )


def attribute_events(events: ir.Table, identity: IdentitySnapshot) -> ir.Table:
    """Add ``customer_key`` to events: the logged-in customer id first, then the device."""
    by_id = attribute_by_customer_id(events, identity)
    by_id = by_id.rename(id_customer_key="customer_key")
    devices = identity.devices
    joined = by_id.left_join(
        devices, [by_id._source == devices.dev_source, by_id.anonymous_id == devices.dev_id]
    )
    return joined.select(
        *[c for c in by_id.columns if c != "id_customer_key"],
        customer_key=ibis.coalesce(joined.id_customer_key, joined.dev_key),
    )
