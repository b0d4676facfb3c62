"""``build_profiles``: one row per customer in ``profiles``, tag values kept in ``tag_history``.

Every column is an Ibis expression over the raw tables and ``identity_map`` (see
``_facts.py`` for what "as it stood on ``as_of``" means), so DuckDB and Spark give the same
rows: every window has a unique tie-breaker, money stays decimal, and decaying weights use
whole days.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from jingzhun.core import CONTRACTS, Target
from jingzhun.engine import Engine
from jingzhun.profile import _facts
from jingzhun.profile._columns import (
    COLUMN_BY_NAME,
    PROFILE_COLUMNS,
    PROFILES,
    TAG_HISTORY,
    TAG_HISTORY_SCHEMA,
    Kind,
)
from jingzhun.profile._identity import IdentitySnapshot, blank_to_null, identity_snapshot, trim
from jingzhun.profile._rfm import order_figures, recent_gaps, with_scores
from jingzhun.profile._settings import ProfileSettings
from jingzhun.profile._tags import CompiledTag, EventAggregate, EventFunction, TagSpec, check_tags

ATTRIBUTES = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "birth_date",
    "gender",
    "city",
    "country",
    "timezone",
    "email_consent",
    "sms_consent",
    "push_consent",
)
_TEXT_ATTRIBUTES = {
    "email",
    "phone",
    "first_name",
    "last_name",
    "gender",
    "city",
    "country",
    "timezone",
}
INTERESTS = 3
# An e-mail address of a valid shape: something@domain.tld without spaces.
EMAIL_SHAPE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
PHONE_CHARACTERS = r"^\+?[0-9 ().\-]+$"
PHONE_DIGITS = (7, 15)  # E.164 allows at most 15 digits
_STAGING_PROFILES = "_profiles_next"
_STAGING_HISTORY = "_tag_history_next"
_STAGED_MARKER = "_profiles_staged"  # exists while complete staged tables await the swap
_MARKER_SCHEMA = pa.schema([("staged", pa.bool_())])
WEIGHT = "decimal(38, 9)"
_TAG_ARROW = {Kind.BOOLEAN: pa.bool_(), Kind.NUMBER: pa.float64(), Kind.STRING: pa.string()}


@dataclass
class ProfileReport:
    """What a build wrote: how many profiles, how they spread, what changed in the history."""

    as_of: dt.date
    customers: int
    identity: str
    segments: dict[str, int]
    lifecycle: dict[str, int]
    value_tiers: dict[str, int]
    custom_tags: list[str]
    history_rows: int
    history_opened: int
    history_closed: int
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        return {
            "as_of": self.as_of.isoformat(),
            "customers": self.customers,
            "identity": self.identity,
            "segments": self.segments,
            "lifecycle": self.lifecycle,
            "value_tiers": self.value_tiers,
            "custom_tags": self.custom_tags,
            "history_rows": self.history_rows,
            "history_opened": self.history_opened,
            "history_closed": self.history_closed,
            "seconds": round(self.seconds, 3),
            "warnings": self.warnings,
        }


def _decay(age_days: ir.IntegerValue, half_life_days: float) -> ir.FloatingValue:
    """Weight halved every ``half_life_days`` of age (whole days, so engines agree)."""
    return ibis.literal(0.5) ** (age_days.cast("float64") / float(half_life_days))


def _exact(weight: ir.FloatingValue) -> ir.DecimalValue:
    """A weight as decimal(38, 9): decimal sums do not depend on the order rows are added
    in, so DuckDB and Spark (whose partial sums merge in any order) get the same total.
    """
    return weight.cast(WEIGHT)


def _attributes(customers: ir.Table, settings: ProfileSettings) -> ir.Table:
    """Per customer: each attribute from the most trusted source that has it, then the most
    recently loaded record (then source and id, so the choice is the same everywhere).
    """
    priority = settings.source_priority
    rank = (
        ibis.cases(
            *[(customers._source == name, i) for i, name in enumerate(priority)],
            else_=len(priority),
        )
        if priority
        else ibis.literal(0)
    )
    ordered = customers.mutate(
        _jz_order=ibis.row_number().over(
            group_by=customers.customer_key,
            order_by=[
                rank,
                customers._loaded_at.desc(),
                customers._source,
                customers.customer_id,
            ],
        )
    )
    values = {
        name: blank_to_null(ordered[name]) if name in _TEXT_ATTRIBUTES else ordered[name]
        for name in ATTRIBUTES
    }
    return ordered.group_by(a_key=ordered.customer_key).aggregate(
        **{
            name: value.argmin(ordered._jz_order, where=value.notnull())
            for name, value in values.items()
        }
    )


def _event_figures(
    events: ir.Table, settings: ProfileSettings, aggregates: Sequence[EventAggregate]
) -> ir.Table:
    """Per customer: events, first/last, activity and lead score sums, tag aggregates."""
    counted = ~events.event_type.isin(settings.activity_ignored_events)
    weight = _decay(events.age_days, settings.activity_half_life_days)
    lead = ibis.literal(0.0)
    for rule in settings.lead_score:
        applies = events.event_type == rule.event
        if rule.max_age_days is not None:
            applies = applies & (events.age_days <= rule.max_age_days)
        points = float(rule.points) * _decay(events.age_days, rule.half_life_days)
        lead = lead + ibis.cases((applies, points), else_=0.0)
    figures: dict[str, ir.Value] = {
        "events": events.count(),
        "first_event_at": events.occurred_at.min(),
        "last_event_at": events.occurred_at.max(),
        "activity_raw": _exact(weight).sum(where=counted).cast("float64"),
        "lead_raw": _exact(lead).sum().cast("float64"),
    }
    for aggregate in aggregates:
        of_type = events.event_type == aggregate.event_type
        if aggregate.function is EventFunction.COUNT_EVENTS:
            if aggregate.days is not None:
                of_type = of_type & (events.age_days < aggregate.days)
            figures[aggregate.column] = events.count(where=of_type)
        else:
            figures[aggregate.column] = events.age_days.min(where=of_type)
    return events.group_by(e_key=events.customer_key).aggregate(**figures)


def _interests(
    lines: ir.Table | None,
    events: ir.Table | None,
    categories: ir.Table | None,
    settings: ProfileSettings,
) -> ir.Table | None:
    """Per customer: the top three categories by recency-weighted affinity (ties by name)."""
    if categories is None:
        return None
    weights = settings.interest_weights
    parts = []
    half_life = settings.interest_half_life_days
    if lines is not None and weights.get("order"):
        parts.append(
            lines.select(
                "customer_key",
                "sku",
                affinity=_exact(float(weights["order"]) * _decay(lines.age_days, half_life)),
            )
        )
    event_weights = {k: v for k, v in weights.items() if k != "order" and v}
    if events is not None and event_weights:
        about = events.filter(events.sku.notnull() & events.event_type.isin(list(event_weights)))
        weight = ibis.cases(
            *[(about.event_type == k, float(v)) for k, v in event_weights.items()], else_=0.0
        )
        parts.append(
            about.select(
                "customer_key", "sku", affinity=_exact(weight * _decay(about.age_days, half_life))
            )
        )
    if not parts:
        return None
    signals = parts[0] if len(parts) == 1 else ibis.union(*parts)
    joined = signals.join(categories, signals.sku == categories.cat_sku)
    per_category = joined.group_by(["customer_key", "category"]).aggregate(
        affinity=joined.affinity.sum()
    )
    ranked = per_category.mutate(
        _jz_rank=ibis.row_number().over(
            group_by=per_category.customer_key,
            order_by=[per_category.affinity.desc(), per_category.category],
        )
    )
    top = ranked.filter(ranked._jz_rank < INTERESTS)
    return top.group_by(i_key=top.customer_key).aggregate(
        **{f"interest_{i + 1}": top.category.max(where=top._jz_rank == i) for i in range(INTERESTS)}
    )


def _earliest(a: ir.Value, b: ir.Value) -> ir.Value:
    return ibis.cases((a.isnull(), b), (b.isnull(), a), (a <= b, a), else_=b)


def _latest(a: ir.Value, b: ir.Value) -> ir.Value:
    return ibis.cases((a.isnull(), b), (b.isnull(), a), (a >= b, a), else_=b)


def _age(birth_date: ir.DateValue, as_of: dt.date) -> ir.IntegerValue:
    """Whole years on ``as_of``; null for a missing, future or implausible (> 120) date."""
    before_birthday = (birth_date.month() * 100 + birth_date.day()) > (
        as_of.month * 100 + as_of.day
    )
    years = ibis.literal(as_of.year) - birth_date.year() - before_birthday.cast("int64")
    return ibis.cases(
        (birth_date.isnull(), ibis.null("int64")),
        (years < 0, ibis.null("int64")),
        (years > 120, ibis.null("int64")),
        else_=years,
    ).cast("int64")


def _age_band(age: ir.IntegerValue, bands: Sequence[int]) -> ir.StringValue:
    branches = [(age < bands[0], ibis.literal(f"<{bands[0]}"))]
    for low, high in itertools.pairwise(bands):
        branches.append((age < high, ibis.literal(f"{low}-{high - 1}")))
    branches.append((age.notnull(), ibis.literal(f"{bands[-1]}+")))
    return ibis.cases(*[(age.notnull() & c, v) for c, v in branches], else_=ibis.null("string"))


def _lifecycle(t: ir.Table, settings: ProfileSettings) -> ir.StringValue:
    w = settings.lifecycle
    bought = t.orders.fill_null(0) > 0
    return ibis.cases(
        (~bought, ibis.literal("prospect")),
        (t.first_order_age <= w.new_days, ibis.literal("new")),
        (
            (t.recency_days <= w.active_days)
            & (t.max_gap_recent.fill_null(0) > w.reactivation_gap_days),
            ibis.literal("reactivated"),
        ),
        (t.recency_days <= w.active_days, ibis.literal("active")),
        (t.recency_days <= w.at_risk_days, ibis.literal("at risk")),
        (t.recency_days <= w.dormant_days, ibis.literal("dormant")),
        else_=ibis.literal("churned"),
    )


def _value_tier(t: ir.Table, settings: ProfileSettings) -> ir.StringValue:
    v = settings.value_tiers
    return ibis.cases(
        (t.orders.fill_null(0) == 0, ibis.null("string")),
        (t.recency_days > v.dormant_after_days, ibis.literal("dormant")),
        (t.m_score >= v.high_value_min_m_score, ibis.literal("high value")),
        (
            (t.m_score >= v.potential_min_m_score) | (t.r_score >= v.potential_min_r_score),
            ibis.literal("potential"),
        ),
        else_=ibis.literal("general"),
    )


def _valid_phone(phone: ir.StringValue) -> ir.BooleanValue:
    digits = phone.re_replace(r"[^0-9]", "").length()
    shaped = phone.re_search(PHONE_CHARACTERS)
    return (
        phone.notnull() & shaped & (digits >= PHONE_DIGITS[0]) & (digits <= PHONE_DIGITS[1])
    ).fill_null(False)


def _arrow_to_ibis(dtype: pa.DataType) -> str:
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    if pa.types.is_decimal(dtype):
        return f"decimal({dtype.precision}, {dtype.scale})"
    return {
        pa.string(): "string",
        pa.bool_(): "boolean",
        pa.int64(): "int64",
        pa.float64(): "float64",
        pa.date32(): "date",
    }[dtype]


def profile_schema(tags: Sequence[CompiledTag]) -> pa.Schema:
    """Columns of ``profiles``: the standard ones, then one per custom tag."""
    fields = [pa.field(c.name, c.type) for c in PROFILE_COLUMNS]
    fields += [pa.field(t.spec.name, _TAG_ARROW[t.kind]) for t in tags]
    return pa.schema(fields)


def profiles_expr(
    engine: Engine,
    *,
    as_of: dt.date,
    settings: ProfileSettings,
    tags: Sequence[CompiledTag],
    identity: IdentitySnapshot,
) -> ir.Table | None:
    """The ``profiles`` rows as one expression; None when there is nothing to profile."""
    day = _facts.AsOf(as_of, settings.include_late_loads)
    customers = _facts.customer_records(engine, day, identity)
    orders = _facts.orders(engine, day, identity)
    events = _facts.events(engine, day, identity)
    lines = _facts.bought_lines(engine, day, orders) if orders is not None else None
    categories = _facts.product_categories(engine, day)

    keys = [t.select(u_key=t.customer_key) for t in (customers, orders, events) if t is not None]
    if not keys:
        return None
    universe = (keys[0] if len(keys) == 1 else ibis.union(*keys)).distinct()

    aggregates = {a.column: a for t in tags for a in t.aggregates}
    parts: list[tuple[ir.Table, str]] = []
    if customers is not None:
        parts.append((_attributes(customers, settings), "a_key"))
    ids = identity.identifiers()
    parts.append((ids.select(n_key=ids.customer_key, identifiers=ids.identifiers), "n_key"))
    if orders is not None:
        figures = with_scores(order_figures(orders), settings)
        parts.append((figures.rename(o_key="customer_key"), "o_key"))
        parts.append((recent_gaps(orders, settings.lifecycle.active_days), "gap_key"))
    if events is not None:
        parts.append((_event_figures(events, settings, list(aggregates.values())), "e_key"))
    interests = _interests(lines, events, categories, settings)
    if interests is not None:
        parts.append((interests, "i_key"))

    joined = universe
    for part, key in parts:
        joined = joined.left_join(part, joined.u_key == part[key]).drop(key)

    t = joined
    present = set(t.columns)

    def col(name: str, dtype: str) -> ir.Value:
        return t[name] if name in present else ibis.null(dtype)

    zero_money = ibis.literal(0, type=_facts.MONEY)
    base: dict[str, ir.Value] = {
        "customer_key": t.u_key,
        "as_of": ibis.literal(as_of, type="date"),
    }
    for name in ATTRIBUTES:
        base[name] = col(name, _arrow_to_ibis(COLUMN_BY_NAME[name].type))
    gross = col("gross_revenue", _facts.MONEY).fill_null(zero_money)
    returned = col("returns_value", _facts.MONEY).fill_null(zero_money)
    base.update(
        identifiers=col("identifiers", "int64").fill_null(0),
        first_order_at=col("first_order_at", "timestamp"),
        last_order_at=col("last_order_at", "timestamp"),
        orders=col("orders", "int64").fill_null(0),
        revenue=col("revenue", _facts.MONEY).fill_null(zero_money),
        gross_revenue=gross,
        returns=col("returns", "int64").fill_null(0),
        returns_value=returned,
        return_rate=ibis.cases(
            (gross > 0, (returned.cast("float64") / gross.cast("float64")).round(4)),
            else_=ibis.null("float64"),
        ),
        recency_days=col("recency_days", "int64"),
        frequency=col("frequency", "int64").fill_null(0),
        monetary=col("monetary", _facts.MONEY).fill_null(zero_money),
        r_score=col("r_score", "int64"),
        f_score=col("f_score", "int64"),
        m_score=col("m_score", "int64"),
        fm_score=col("fm_score", "float64"),
        rfm_segment=col("rfm_segment", "string"),
        events=col("events", "int64").fill_null(0),
        activity_raw=col("activity_raw", "float64").fill_null(0.0),
        lead_raw=col("lead_raw", "float64").fill_null(0.0),
        first_order_age=col("first_order_age", "int64"),
        max_gap_recent=col("max_gap_recent", "int64"),
        first_seen=_earliest(
            col("first_any_order_at", "timestamp"), col("first_event_at", "timestamp")
        ),
        last_seen=_latest(col("last_any_order_at", "timestamp"), col("last_event_at", "timestamp")),
    )
    for i in range(INTERESTS):
        base[f"interest_{i + 1}"] = col(f"interest_{i + 1}", "string")
    for name, aggregate in aggregates.items():
        value = col(name, "int64")
        if aggregate.function is EventFunction.COUNT_EVENTS:
            value = value.fill_null(0)
        base[name] = value
    t = t.select(**base)

    email = trim(t.email).lower()
    half_score = settings.activity_half_score_events
    age = _age(t.birth_date, as_of)
    t = t.mutate(
        value_tier=_value_tier(t, settings),
        lifecycle_stage=_lifecycle(t, settings),
        activity_score=(
            100.0 * (1.0 - ibis.literal(0.5) ** (t.activity_raw / float(half_score)))
        ).round(2),
        lead_score=t.lead_raw.round(2),
        has_valid_email=(t.email.notnull() & email.re_search(EMAIL_SHAPE)).fill_null(False),
        has_valid_phone=_valid_phone(t.phone),
        has_push=t.push_consent.fill_null(False),
        age=age,
        age_band=_age_band(age, settings.age_bands),
    )

    def env(name: str) -> ir.Value:
        value = t[name]
        if COLUMN_BY_NAME.get(name) is not None and pa.types.is_decimal(COLUMN_BY_NAME[name].type):
            return value.cast("float64")
        return value

    custom = {tag.spec.name: tag.build(env) for tag in tags}
    schema = profile_schema(tags)
    values = {**{c.name: t[c.name] for c in PROFILE_COLUMNS}, **custom}
    return t.select(**{f.name: values[f.name].cast(_arrow_to_ibis(f.type)) for f in schema})


def _history_value(column: ir.Value, kind: Kind, dtype: pa.DataType) -> ir.StringValue:
    """A tag value as text, written the same by every engine."""
    if kind is Kind.NUMBER and pa.types.is_floating(dtype):
        return column.cast("decimal(18, 4)").cast("string")
    if kind is Kind.TIMESTAMP:
        return column.date().cast("string")
    return column.cast("string")


def _tag_values(profiles: ir.Table, columns: Sequence[str], schema: pa.Schema) -> ir.Table:
    """(customer_key, tag, value) for every tracked column with a value."""
    parts = []
    for name in columns:
        dtype = schema.field(name).type
        kind = COLUMN_BY_NAME[name].kind if name in COLUMN_BY_NAME else None
        if kind is None:
            kind = (
                Kind.BOOLEAN
                if pa.types.is_boolean(dtype)
                else Kind.NUMBER
                if pa.types.is_floating(dtype)
                else Kind.STRING
            )
        value = _history_value(profiles[name], kind, dtype)
        parts.append(
            profiles.select(
                customer_key=profiles.customer_key,
                tag=ibis.literal(name, type="string"),
                value=value,
            ).filter(lambda r: r.value.notnull())
        )
    return parts[0] if len(parts) == 1 else ibis.union(*parts)


def _next_history(previous: ir.Table | None, values: ir.Table, as_of: dt.date) -> ir.Table:
    """The history after a build on ``as_of``.

    A build rewinds the history to ``as_of`` first: rows that started on or after it are
    dropped and rows closed on or after it are open again (so rebuilding a date gives the
    same rows, and a build of an earlier date discards what later builds recorded). Then an
    open row whose value still holds stays open; any other open row closes on ``as_of``; a
    value with no open row starts a row on ``as_of``.
    """
    day = ibis.literal(as_of, type="date")
    no_date = ibis.null("date")
    started = values.select("customer_key", "tag", "value", valid_from=day, valid_to=no_date)
    if previous is None:
        return started
    kept = previous.filter(previous.valid_from < day)
    kept = kept.mutate(
        valid_to=ibis.cases(
            (kept.valid_to.notnull() & (kept.valid_to >= day), no_date), else_=kept.valid_to
        )
    )
    closed = kept.filter(kept.valid_to.notnull())
    open_rows = kept.filter(kept.valid_to.isnull())
    now = values.select(v_key=values.customer_key, v_tag=values.tag, v_value=values.value)
    matched = open_rows.left_join(
        now, [open_rows.customer_key == now.v_key, open_rows.tag == now.v_tag]
    )
    still = matched.v_value.notnull() & (matched.v_value == matched.value)
    updated = matched.select(
        "customer_key",
        "tag",
        "value",
        "valid_from",
        valid_to=ibis.cases((still, no_date), else_=day),
    )
    fresh = values.anti_join(
        open_rows,
        [
            values.customer_key == open_rows.customer_key,
            values.tag == open_rows.tag,
            values.value == open_rows.value,
        ],
    )
    fresh = fresh.select("customer_key", "tag", "value", valid_from=day, valid_to=no_date)
    return ibis.union(closed, updated, fresh)


def _replace(engine: Engine, name: str, schema: pa.Schema, staging: str) -> None:
    engine.drop(name)
    engine.create(name, schema)
    engine.write(name, engine.read(staging))


def _stage(engine: Engine, name: str, schema: pa.Schema, rows: ir.Table) -> None:
    engine.drop(name)
    engine.create(name, schema)
    engine.write(name, rows.select(*schema.names))


def _distributions(engine: Engine, profiles: ir.Table) -> dict[str, dict[str, int]]:
    """Customers per RFM segment, lifecycle stage and value tier (one query), most first."""
    columns = ("rfm_segment", "lifecycle_stage", "value_tier")
    grouped = profiles.group_by(list(columns)).aggregate(n=profiles.count())
    rows = engine.execute(grouped).to_pylist()
    out: dict[str, dict[str, int]] = {}
    for column in columns:
        counts: dict[str, int] = {}
        for row in rows:
            name = row[column] if row[column] is not None else "none"
            counts[name] = counts.get(name, 0) + int(row["n"])
        out[column] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return out


def _swap(engine: Engine, schema: pa.Schema) -> None:
    """Replace ``profiles`` and ``tag_history`` with the staged tables, in one transaction."""
    with engine.transaction():
        _replace(engine, PROFILES, schema, _STAGING_PROFILES)
        _replace(engine, TAG_HISTORY, TAG_HISTORY_SCHEMA, _STAGING_HISTORY)


def _clear_staging(engine: Engine) -> None:
    engine.drop(_STAGED_MARKER)
    engine.drop(_STAGING_PROFILES)
    engine.drop(_STAGING_HISTORY)


def _recover(engine: Engine) -> bool:
    """Finish the swap of an earlier build that stopped after staging its tables in full;
    drop staging left by a build that stopped before. True when a swap was finished.
    """
    finished = False
    if engine.exists(_STAGED_MARKER):
        staged = engine.read(_STAGING_PROFILES).schema().to_pyarrow()
        # Instants are stored in UTC (an engine may report them without the zone).
        utc = pa.timestamp("us", tz="UTC")
        _swap(
            engine,
            pa.schema(
                pa.field(f.name, utc if pa.types.is_timestamp(f.type) else f.type) for f in staged
            ),
        )
        finished = True
    _clear_staging(engine)
    return finished


def _late_loads(engine: Engine, as_of: dt.date) -> list[str]:
    """Say how many raw rows a build leaves out because they were loaded after ``as_of``."""
    end = _facts.AsOf(as_of).end
    out = []
    for target in (Target.CUSTOMERS, Target.ORDERS, Target.EVENTS):
        table = _facts.raw(engine, target)
        if table is None:
            continue
        late = int(engine.scalar(table.filter(table._loaded_at >= end).count()) or 0)
        if late:
            out.append(
                f"{late:,} rows of {CONTRACTS[target].raw_table} were loaded after {as_of} and "
                "are left out; set include_late_loads to count them (a backfill of history)"
            )
    return out


def build_profiles(
    engine: Engine,
    *,
    as_of: dt.date,
    settings: ProfileSettings | None = None,
    tags: Sequence[TagSpec] = (),
) -> ProfileReport:
    """Build ``profiles`` for ``as_of`` and bring ``tag_history`` up to that date.

    ``profiles`` is replaced with one row per ``customer_key`` known on ``as_of`` (from
    ``identity_map``, or the no-identity fallback when there is none); ``tag_history`` keeps
    one row per stretch of days a tag held a value (``valid_from`` inclusive, ``valid_to``
    exclusive, null while it holds). Rebuilding the same ``as_of`` writes the same rows.

    Parameters
    ----------
    engine
        The warehouse with the raw tables (and ``identity_map`` once identity has run).
    as_of
        The day to describe; orders, events and loads after it are left out.
    settings
        Windows, weights, the RFM segment map and more (defaults when None).
    tags
        Custom tags (``load_tag_specs(project / "tags")``); each becomes a column and is
        kept in the history.
    """
    started = time.perf_counter()
    settings = settings or ProfileSettings()
    compiled = check_tags(tags)
    schema = profile_schema(compiled)
    tracked = list(dict.fromkeys([*settings.history_columns, *(t.spec.name for t in compiled)]))
    unknown = [c for c in tracked if c not in schema.names]
    if unknown:
        raise ValueError(
            f"history_columns names {', '.join(unknown)}, which are not profile columns"
        )
    identity = identity_snapshot(engine, as_of)
    warnings: list[str] = []
    if identity.description.startswith("fallback"):
        warnings.append(f"identity: {identity.description}")
    if not settings.include_late_loads:
        warnings.extend(_late_loads(engine, as_of))

    if _recover(engine):
        warnings.append(
            "the previous build stopped while swapping in its tables; its profiles and "
            "tag_history were put in place before this build"
        )
    rows = profiles_expr(engine, as_of=as_of, settings=settings, tags=compiled, identity=identity)
    try:
        engine.drop(_STAGING_PROFILES)
        engine.create(_STAGING_PROFILES, schema)
        if rows is not None:
            engine.write(_STAGING_PROFILES, rows)
        staged = engine.read(_STAGING_PROFILES)
        previous = engine.read(TAG_HISTORY) if engine.exists(TAG_HISTORY) else None
        history = _next_history(previous, _tag_values(staged, tracked, schema), as_of)
        _stage(engine, _STAGING_HISTORY, TAG_HISTORY_SCHEMA, history)
        # From here the staged tables are complete: if the swap fails half way (Spark drops
        # a table at once, outside the transaction), the next build finishes it from them.
        engine.create(_STAGED_MARKER, _MARKER_SCHEMA)
        _swap(engine, schema)
    except BaseException:
        if not engine.exists(_STAGED_MARKER):
            engine.drop(_STAGING_PROFILES)
            engine.drop(_STAGING_HISTORY)
        raise
    _clear_staging(engine)

    profiles = engine.read(PROFILES)
    history_table = engine.read(TAG_HISTORY)
    day = ibis.literal(as_of, type="date")
    counts = history_table.aggregate(
        rows=history_table.count(),
        opened=history_table.count(where=history_table.valid_from == day),
        closed=history_table.count(where=history_table.valid_to == day),
    )
    (summary,) = engine.execute(counts).to_pylist()
    spread = _distributions(engine, profiles)
    return ProfileReport(
        as_of=as_of,
        customers=sum(spread["rfm_segment"].values()),
        identity=identity.description,
        segments=spread["rfm_segment"],
        lifecycle=spread["lifecycle_stage"],
        value_tiers=spread["value_tier"],
        custom_tags=[t.spec.name for t in compiled],
        history_rows=int(summary["rows"] or 0),
        history_opened=int(summary["opened"] or 0),
        history_closed=int(summary["closed"] or 0),
        seconds=time.perf_counter() - started,
        warnings=warnings,
    )
