"""Plan before send: the eligibility waterfall, selection under the budget, the holdout, the
variants, expected conversions and ROI; stored, approved and launched to the delivery queue.

Waterfall (each step keeps the customers of the step before that pass it):

1. ``segment``: members of the audience segment on the profiles' date;
2. ``consent``: the latest consent for the campaign's purpose and channel is a grant;
3. ``reachable``: an address for the channel (a valid e-mail, a valid phone, push enabled);
4. ``not_suppressed``: the address is not on the suppression list;
5. ``under_caps``: fewer contacts than the frequency caps allow on the send day and week,
   counting every launched campaign's queued and sent messages;
6. ``selected``: the selection policy under the budget;
7. ``holdout`` / ``treatment``: a seeded, stratified random control group that gets nothing.

The plan rows go to the warehouse table ``send_plan``; the plan's waterfall, figures and
fingerprints to ``campaign_plans`` in the operational store. Launch refuses a plan whose data
changed since (a new profile build, segment build, scores, consents or suppressions).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import case, func, select

from jingzhun.campaigns._consent import (
    PHONE_DIGITS,
    ConsentLedger,
    SuppressionList,
    consented,
)
from jingzhun.campaigns._offers import COUPON_SCHEMA, coupon_rows, issue_codes, offer_for
from jingzhun.campaigns._spec import CampaignSpec, Channel, Policy
from jingzhun.core import EngineError, NotFoundError, RefusedError, SpecError, SpecProblem
from jingzhun.engine import Engine
from jingzhun.profile import PROFILES
from jingzhun.segments import SCORES, SEGMENT_MEMBERS, SEGMENT_SNAPSHOTS, sample_bucket
from jingzhun.store import CampaignPlan, OperationalStore, QueuedMessage

SEND_PLAN = "send_plan"
SEND_PLAN_SCHEMA = pa.schema(
    [
        ("plan_id", pa.string()),
        ("campaign", pa.string()),
        ("customer_key", pa.string()),
        ("group", pa.string()),  # treatment | holdout
        ("variant", pa.string()),
        ("phase", pa.string()),  # all | pilot | rollout
        ("channel", pa.string()),
        ("address", pa.string()),
        ("send_at", pa.timestamp("us", tz="UTC")),
        ("stratum", pa.string()),
        ("score", pa.float64()),
        ("uplift", pa.float64()),
        ("expected_profit", pa.float64()),
    ]
)
WATERFALL_STEPS = (
    "segment",
    "consent",
    "reachable",
    "not_suppressed",
    "under_caps",
    "selected",
    "treatment",
    "holdout",
)


@dataclass
class Plan:
    """A campaign plan: counts at each step, expected outcomes, and where its rows are."""

    plan_id: str
    campaign: str
    as_of: dt.date
    waterfall: list[dict[str, Any]]
    figures: dict[str, Any]
    status: str = "planned"
    spec_fingerprint: str = ""
    data_fingerprint: str = ""
    created_by: str = ""
    notes: list[str] = field(default_factory=list)

    def count(self, step: str) -> int:
        """Customers left after a waterfall step."""
        for row in self.waterfall:
            if row["step"] == step:
                return int(row["customers"])
        raise KeyError(step)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "plan_id": self.plan_id,
            "campaign": self.campaign,
            "status": self.status,
            "as_of": self.as_of.isoformat(),
            "waterfall": self.waterfall,
            "figures": self.figures,
            "spec_fingerprint": self.spec_fingerprint,
            "data_fingerprint": self.data_fingerprint,
            "created_by": self.created_by,
            "notes": self.notes,
        }


def _address(profiles: ir.Table, channel: Channel) -> tuple[ir.BooleanValue, ir.StringValue]:
    """Whether a customer is reachable on the channel, and the address to use."""
    if channel is Channel.EMAIL:
        return profiles.has_valid_email.fill_null(False), profiles.email.lower().strip()
    if channel in (Channel.SMS, Channel.CALL_CENTRE):
        return profiles.has_valid_phone.fill_null(False), profiles.phone
    if channel is Channel.PUSH:
        return profiles.has_push.fill_null(False), profiles.customer_key
    if channel is Channel.ADS:
        ok = profiles.has_valid_email.fill_null(False) | profiles.has_valid_phone.fill_null(False)
        return ok, ibis.coalesce(profiles.email.lower().strip(), profiles.phone)
    if channel is Channel.DIRECT_MAIL:
        ok = profiles.city.notnull() & profiles.country.notnull()
        return ok, profiles.city + ", " + profiles.country
    return ibis.literal(True), profiles.customer_key  # webhook: the customer is the address


def _suppressed_key(address: ir.StringValue, channel: Channel) -> ir.StringValue:
    if channel in (Channel.SMS, Channel.CALL_CENTRE):
        return address.re_replace(r"[^0-9]", "").right(PHONE_DIGITS)
    return address


def data_fingerprint(engine: Engine, store: OperationalStore, spec: CampaignSpec) -> str:
    """What the plan depended on: profiles' date and size, the last segment build, the scores,
    consents and suppressions. Launch compares it with the one stored with the plan.
    """
    parts: list[Any] = []
    profiles = engine.read(PROFILES)
    parts.append(
        engine.execute(profiles.aggregate(n=profiles.count(), d=profiles.as_of.max())).to_pylist()
    )
    if engine.exists(SEGMENT_SNAPSHOTS):
        snaps = engine.read(SEGMENT_SNAPSHOTS)
        parts.append(engine.scalar(snaps.built_at.max()))
    if engine.exists(SCORES):
        scores = engine.read(SCORES)
        parts.append(engine.scalar(scores.scored_at.max()))
    parts.append(ConsentLedger(store).count())
    parts.append(len(SuppressionList(store).addresses(spec.channel)))
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _send_time(spec: CampaignSpec, as_of: dt.date, timezone: str) -> dt.datetime:
    """When the messages go: the window's start (or 09:00 the day after ``as_of``), moved out
    of quiet hours, in the project's time zone; returned in UTC.
    """
    zone = ZoneInfo(timezone)
    if spec.send_window is not None:
        start = spec.send_window.start
        local = start.replace(tzinfo=zone) if start.tzinfo is None else start.astimezone(zone)
    else:
        local = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(9), tzinfo=zone)
    if spec.quiet_hours is not None:
        quiet_start, quiet_end = spec.quiet_hours.times()
        t = local.time()
        quiet = (
            (quiet_start <= t or t < quiet_end)
            if quiet_start > quiet_end
            else (quiet_start <= t < quiet_end)
        )
        if quiet:
            day = local.date() if t < quiet_end else local.date() + dt.timedelta(days=1)
            local = dt.datetime.combine(day, quiet_end, tzinfo=zone)
        if spec.send_window is not None:
            end = spec.send_window.end
            end_local = end.replace(tzinfo=zone) if end.tzinfo is None else end.astimezone(zone)
            if local > end_local:
                raise SpecError(
                    [
                        SpecProblem(
                            _campaign_file(spec),
                            None,
                            "send_window",
                            "the send window lies entirely in quiet hours; widen it",
                        )
                    ]
                )
    return local.astimezone(dt.UTC)


def _send_times(
    spec: CampaignSpec, as_of: dt.date, default: str, zones: list[str | None]
) -> pa.Table:
    """The send time for each time zone the customers live in (an unknown zone name counts
    as the project's).
    """
    out_zones, out_times = [], []
    for zone in zones:
        name = zone or default
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            name = default
        out_zones.append(zone or default)
        out_times.append(_send_time(spec, as_of, name))
    return pa.table(
        {
            "st_zone": pa.array(out_zones, pa.string()),
            "st_send_at": pa.array(out_times, pa.timestamp("us", tz="UTC")),
        }
    )


def _campaign_file(spec: CampaignSpec) -> Path:
    return Path(f"campaigns/{spec.name}.yml")


def _contacts(store: OperationalStore, spec: CampaignSpec, send_at: dt.datetime) -> pa.Table:
    """Queued or sent messages per customer on the send day and in the week up to it."""
    day_start = send_at - dt.timedelta(days=1)
    week_start = send_at - dt.timedelta(days=7)
    query = select(
        QueuedMessage.customer_key,
        func.sum(case((QueuedMessage.send_at > day_start, 1), else_=0)),
        func.count(QueuedMessage.id),
    ).where(
        QueuedMessage.send_at > week_start,
        QueuedMessage.send_at <= send_at + dt.timedelta(days=1),
        QueuedMessage.status.in_(("queued", "sent")),
        QueuedMessage.campaign != spec.name,
    )
    if spec.frequency_caps.per_channel:
        query = query.where(QueuedMessage.channel == spec.channel.value)
    query = query.group_by(QueuedMessage.customer_key)
    with store.session() as session:
        rows = session.execute(query).all()
    return pa.table(
        {
            "c_key": pa.array([r[0] for r in rows], pa.string()),
            "c_day": pa.array([int(r[1] or 0) for r in rows], pa.int64()),
            "c_week": pa.array([int(r[2] or 0) for r in rows], pa.int64()),
        }
    )


def _score(engine: Engine, name: str | None) -> ir.Table | None:
    if name is None:
        return None
    if not engine.exists(SCORES):
        raise NotFoundError(f"score '{name}' not found: no model has written scores yet")
    scores = engine.read(SCORES)
    found = scores.filter(scores.score_name == name)
    if int(engine.scalar(found.count())) == 0:
        names = engine.execute(scores.select("score_name").distinct()).column(0).to_pylist()
        raise NotFoundError(f"score '{name}' not found; scores: {', '.join(sorted(names))}")
    return found.group_by("customer_key").aggregate(value=found.score.max())


def _holdout_and_variants(
    spec: CampaignSpec, selected: ir.Table, stratum: ir.StringValue
) -> ir.Table:
    """Holdout: within each stratum the customers with the lowest seeded hash, exactly
    round(fraction × size) of them; the same customers stay out when the plan is remade.
    Variants and the pilot split the treated customers by other seeded hashes.
    """
    seed = spec.holdout.seed
    t = selected.mutate(
        stratum=stratum,
        _jz_h=sample_bucket(selected.customer_key, seed) * 100_000
        + sample_bucket(selected.customer_key, seed + 7_919),
        _jz_v=sample_bucket(selected.customer_key, seed + 1),
        _jz_p=sample_bucket(selected.customer_key, seed + 2),
    )
    size = t.count().over(group_by=t.stratum)
    order = ibis.row_number().over(group_by=t.stratum, order_by=[t._jz_h, t.customer_key])
    t = t.mutate(_jz_rank=order, _jz_size=size)
    cut = (t._jz_size * spec.holdout.fraction).round().cast("int64")
    t = t.mutate(group=ibis.cases((t._jz_rank < cut, "holdout"), else_="treatment"))
    # Shares are exact within the treated (and within each stratum): rank by another hash.
    in_group = t.count().over(group_by=[t.group, t.stratum])
    by_v = ibis.row_number().over(group_by=[t.group, t.stratum], order_by=[t._jz_v, t.customer_key])
    by_p = ibis.row_number().over(group_by=[t.group, t.stratum], order_by=[t._jz_p, t.customer_key])
    t = t.mutate(_jz_n=in_group, _jz_vr=by_v, _jz_pr=by_p)
    variant_cases = []
    edge = 0.0
    for v in spec.variants[:-1]:
        edge += v.share
        variant_cases.append((t._jz_vr < (t._jz_n * edge).round().cast("int64"), v.name))
    last = spec.variants[-1].name
    variant = ibis.cases(*variant_cases, else_=last) if variant_cases else ibis.literal(last)
    if spec.pilot is not None:
        pilot_cut = (t._jz_n * spec.pilot.share).round().cast("int64")
        phase = ibis.cases((t._jz_pr < pilot_cut, "pilot"), else_="rollout")
    else:
        phase = ibis.literal("all")
    return t.mutate(variant=variant, phase=phase)


def plan_campaign(
    engine: Engine,
    store: OperationalStore,
    spec: CampaignSpec,
    audience: ir.Table,
    *,
    as_of: dt.date,
    timezone: str,
    created_by: str,
    use_source_flags: bool = True,
    say: Callable[[str], None] | None = None,
) -> Plan:
    """Compute and store a plan for ``spec`` over the ``audience`` (``customer_key``)."""
    profiles = engine.read(PROFILES)
    counts: list[tuple[str, ir.Table]] = []
    members = profiles.semi_join(audience, profiles.customer_key == audience.customer_key)
    counts.append(("segment", members))

    ledger = ConsentLedger(store).latest(spec.purpose, spec.channel)
    allowed = consented(
        engine, ledger, spec.channel, spec.purpose, use_source_flags=use_source_flags
    )
    step = members.semi_join(allowed, members.customer_key == allowed.customer_key)
    counts.append(("consent", step))

    ok, address = _address(step, spec.channel)
    step = step.filter(ok).mutate(_jz_address=address)
    counts.append(("reachable", step))

    suppressed = SuppressionList(store).addresses(spec.channel)
    if suppressed:
        keys = [
            a[-PHONE_DIGITS:] if spec.channel in (Channel.SMS, Channel.CALL_CENTRE) else a
            for a in suppressed
        ]
        listed = engine.register(
            "_jz_suppressed", pa.table({"s_address": pa.array(keys, pa.string())})
        )
        step = step.anti_join(
            listed, _suppressed_key(step._jz_address, spec.channel) == listed.s_address
        )
    counts.append(("not_suppressed", step))

    send_at = _send_time(spec, as_of, timezone)
    caps = spec.frequency_caps
    if caps.per_day is not None or caps.per_week is not None:
        contacts = engine.register("_jz_contacts", _contacts(store, spec, send_at))
        joined = step.left_join(contacts, step.customer_key == contacts.c_key)
        step = joined.select(
            *step.columns, c_day=joined.c_day.fill_null(0), c_week=joined.c_week.fill_null(0)
        )
        if caps.per_day is not None:
            step = step.filter(step.c_day < caps.per_day)
        if caps.per_week is not None:
            step = step.filter(step.c_week < caps.per_week)
        step = step.drop("c_day", "c_week")
    counts.append(("under_caps", step))

    selection = spec.selection
    score = _score(engine, selection.score)
    uplift = _score(engine, selection.uplift_score)
    baseline = _score(engine, selection.baseline_score)
    t = step
    for name, table in (("_jz_score", score), ("_jz_uplift", uplift), ("_jz_base", baseline)):
        if table is None:
            t = t.mutate(**{name: ibis.null("float64")})
            continue
        joined = t.left_join(table, t.customer_key == table.customer_key)
        t = joined.select(*t.columns, **{name: joined.value.cast("float64")})
    uplift_value = t._jz_uplift.fill_null(spec.expected_uplift)
    profit = uplift_value * spec.value_per_conversion - spec.cost_per_contact
    t = t.mutate(_jz_profit=profit)
    treated_share = 1 - spec.holdout.fraction
    limit: int | None = selection.k
    if spec.budget is not None and spec.cost_per_contact > 0:
        affordable = int(spec.budget / (spec.cost_per_contact * treated_share))
        limit = affordable if limit is None else min(limit, affordable)
    t = t.mutate(_jz_tie=sample_bucket(t.customer_key, spec.holdout.seed + 3), _jz_up=uplift_value)
    if selection.policy is Policy.EVERYONE:
        candidates = t
        keys = [candidates._jz_tie, candidates.customer_key]
    elif selection.policy is Policy.TOP_K:
        candidates = t.filter(t._jz_score.notnull())
        keys = [candidates._jz_score.desc(), candidates._jz_tie, candidates.customer_key]
    elif selection.policy is Policy.TOP_UPLIFT:
        candidates = t
        keys = [candidates._jz_up.desc(), candidates._jz_tie, candidates.customer_key]
    else:  # max_profit: only contacts expected to pay for themselves, best first
        candidates = t.filter(t._jz_profit > 0)
        keys = [candidates._jz_profit.desc(), candidates._jz_tie, candidates.customer_key]
    ranked = candidates.mutate(_jz_pri=ibis.row_number().over(order_by=keys))
    selected = ranked.filter(ranked._jz_pri < limit) if limit is not None else ranked
    counts.append(("selected", selected))

    stratify = spec.holdout.stratify_by
    if stratify is not None and stratify not in profiles.columns:
        raise SpecError(
            [
                SpecProblem(
                    _campaign_file(spec),
                    None,
                    "holdout.stratify_by",
                    f"'{stratify}' is not a profile column",
                )
            ]
        )
    stratum = (
        selected[stratify].cast("string").fill_null("(none)")
        if stratify is not None
        else ibis.literal("all")
    )
    assigned = _holdout_and_variants(spec, selected, stratum)
    if spec.budget is not None and spec.cost_per_contact > 0:
        # The holdout rounds per stratum, so cap the treated at what the budget pays for;
        # the lowest-priority treated customers over the cap are left out of the plan.
        affordable = int(spec.budget // spec.cost_per_contact)
        order = ibis.row_number().over(group_by=assigned.group, order_by=assigned._jz_pri)
        assigned = assigned.mutate(_jz_tr=order)
        assigned = assigned.filter((assigned.group == "holdout") | (assigned._jz_tr < affordable))
    # Quiet hours hold in each customer's own time zone (the project's when unknown).
    local = (
        assigned.timezone.fill_null(timezone)
        if "timezone" in assigned.columns
        else ibis.literal(timezone)
    )
    assigned = assigned.mutate(_jz_zone=local)
    zones = engine.execute(assigned.select("_jz_zone").distinct()).column(0).to_pylist()
    times = engine.register("_jz_send_times", _send_times(spec, as_of, timezone, zones))
    joined = assigned.left_join(times, assigned._jz_zone == times.st_zone)
    assigned = joined.select(*assigned.columns, _jz_send_at=joined.st_send_at)
    plan_id = f"{spec.name}-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
    rows = assigned.select(
        plan_id=ibis.literal(plan_id),
        campaign=ibis.literal(spec.name),
        customer_key=assigned.customer_key,
        group=assigned.group,
        variant=assigned.variant,
        phase=assigned.phase,
        channel=ibis.literal(spec.channel.value),
        address=assigned._jz_address.cast("string"),
        send_at=assigned._jz_send_at,
        stratum=assigned.stratum,
        score=assigned._jz_score,
        uplift=assigned._jz_uplift,
        expected_profit=assigned._jz_profit,
    )
    engine.create(SEND_PLAN, SEND_PLAN_SCHEMA)
    with engine.transaction():
        engine.write(SEND_PLAN, rows)
    stored = engine.read(SEND_PLAN)
    mine = stored.filter(stored.plan_id == plan_id)

    counts[-1] = ("selected", mine)
    waterfall = []
    previous: int | None = None
    for name, table in counts:
        n = int(engine.scalar(table.count()))
        waterfall.append(
            {"step": name, "customers": n, "dropped": 0 if previous is None else previous - n}
        )
        previous = n
    by_group = {
        r["group"]: int(r["n"])
        for r in engine.execute(mine.group_by("group").aggregate(n=mine.count())).to_pylist()
    }
    waterfall.append({"step": "treatment", "customers": by_group.get("treatment", 0), "dropped": 0})
    waterfall.append({"step": "holdout", "customers": by_group.get("holdout", 0), "dropped": 0})

    treated = mine.filter(mine.group == "treatment")
    sums = engine.execute(
        treated.aggregate(
            contacts=treated.count(),
            uplift=treated.uplift.fill_null(spec.expected_uplift).sum(),
        )
    ).to_pylist()[0]
    contacts_n = int(sums["contacts"] or 0)
    incremental = float(sums["uplift"] or 0.0)
    if baseline is not None:
        joined = treated.left_join(baseline, treated.customer_key == baseline.customer_key)
        base_sum = float(
            engine.scalar(
                joined.value.cast("float64").fill_null(spec.expected_conversion_rate).sum()
            )
            or 0.0
        )
    else:
        base_sum = contacts_n * spec.expected_conversion_rate
    cost = contacts_n * spec.cost_per_contact
    value = incremental * spec.value_per_conversion
    variants = {
        r["variant"]: int(r["n"])
        for r in engine.execute(
            treated.group_by("variant").aggregate(n=treated.count())
        ).to_pylist()
    }
    figures = {
        "contacts": contacts_n,
        "holdout": by_group.get("holdout", 0),
        "holdout_fraction": spec.holdout.fraction,
        "variants": variants,
        "send_at": send_at.isoformat(),
        "send_at_by_zone": {
            r["_jz_zone"]: r["t"].isoformat()
            for r in engine.execute(
                assigned.group_by("_jz_zone").aggregate(t=assigned._jz_send_at.min()).limit(50)
            ).to_pylist()
        },
        "expected_conversions": round(base_sum + incremental, 4),
        "expected_incremental_conversions": round(incremental, 4),
        "cost": round(cost, 2),
        "expected_incremental_value": round(value, 2),
        "expected_roi": round((value - cost) / cost, 4) if cost > 0 else None,
        "budget": spec.budget,
        "policy": spec.selection.policy.value,
    }
    plan = Plan(
        plan_id,
        spec.name,
        as_of,
        waterfall,
        figures,
        spec_fingerprint=spec.fingerprint(),
        data_fingerprint=data_fingerprint(engine, store, spec),
        created_by=created_by,
    )
    with store.session(write=True) as session:
        for old in session.scalars(
            select(CampaignPlan).where(
                CampaignPlan.campaign == spec.name, CampaignPlan.status.in_(("planned", "approved"))
            )
        ):
            old.status = "superseded"
        session.add(
            CampaignPlan(
                plan_id=plan_id,
                campaign=spec.name,
                status="planned",
                as_of=as_of.isoformat(),
                spec_fingerprint=plan.spec_fingerprint,
                data_fingerprint=plan.data_fingerprint,
                waterfall=waterfall,
                figures=figures,
                created_by=created_by,
                created_at=dt.datetime.now(dt.UTC),
            )
        )
    return plan


COUPONS = "coupons"


def _offers(
    engine: Engine,
    spec: CampaignSpec,
    customer_keys: list[str],
    send_day: dt.date,
    secret: bytes | None,
) -> tuple[dict[str, dict[str, Any]], pa.Table | None]:
    """Each customer's offer (by their segments) and single-use coupon code, for the queue
    payload, and the coupon rows to store.
    """
    if spec.offer is None or not customer_keys:
        return {}, None
    memberships: dict[str, set[str]] = {}
    if engine.exists(SEGMENT_MEMBERS):
        members = engine.read(SEGMENT_MEMBERS)
        wanted = engine.register(
            "_jz_offer_keys", pa.table({"w_key": pa.array(customer_keys, pa.string())})
        )
        mine = members.semi_join(wanted, members.customer_key == wanted.w_key)
        for row in engine.execute(mine.select("customer_key", "segment")).to_pylist():
            memberships.setdefault(row["customer_key"], set()).add(row["segment"])
    offers = {
        k: offer_for(spec.offer, memberships.get(k, set()), issued_on=send_day)
        for k in customer_keys
    }
    codes: dict[str, str] = {}
    if spec.offer.coupon_prefix is not None:
        if secret is None:
            raise EngineError("coupon codes need the project's coupon secret")
        codes = issue_codes(
            spec.name, customer_keys, prefix=spec.offer.coupon_prefix, secret=secret
        )
    payloads = {k: {"offer": _jsonable(offers[k].to_context(codes.get(k)))} for k in customer_keys}
    rows = coupon_rows(spec.name, codes, offers=offers) if codes else None
    return payloads, rows


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(value, default=str))


def _store_coupons(engine: Engine, rows: pa.Table | None, queued: set[str]) -> None:
    if rows is None or not queued:
        return
    mask = pa.array([k in queued for k in rows.column("customer_key").to_pylist()])
    engine.create(COUPONS, COUPON_SCHEMA)
    with engine.transaction():
        engine.write(COUPONS, rows.filter(mask).cast(COUPON_SCHEMA))


def latest_plan(store: OperationalStore, campaign: str) -> CampaignPlan:
    """The newest plan of a campaign that is not superseded."""
    with store.session() as session:
        plan = session.scalars(
            select(CampaignPlan)
            .where(CampaignPlan.campaign == campaign, CampaignPlan.status != "superseded")
            .order_by(CampaignPlan.created_at.desc(), CampaignPlan.id.desc())
        ).first()
        if plan is None:
            raise NotFoundError(
                f"campaign '{campaign}' has no plan: run 'jingzhun campaign plan {campaign}'"
            )
        session.expunge(plan)
        return plan


def approve_plan(store: OperationalStore, spec: CampaignSpec, *, by: str) -> CampaignPlan:
    """Approve the latest plan; when approval is required the approver is not its author."""
    plan = latest_plan(store, spec.name)
    if plan.status != "planned":
        raise RefusedError(f"plan {plan.plan_id} is {plan.status}; only a new plan can be approved")
    if spec.approval_required and by == plan.created_by:
        raise RefusedError(
            f"plan {plan.plan_id} was made by {by}; approval must come from someone else"
        )
    with store.session(write=True) as session:
        row = session.scalars(
            select(CampaignPlan).where(CampaignPlan.plan_id == plan.plan_id)
        ).one()
        row.status = "approved"
        row.approved_by = by
        row.approved_at = dt.datetime.now(dt.UTC)
    return latest_plan(store, spec.name)


def launch_plan(
    engine: Engine,
    store: OperationalStore,
    spec: CampaignSpec,
    *,
    by: str,
    secret: bytes | None = None,
) -> tuple[CampaignPlan, int]:
    """Hand the treated customers of the latest plan to delivery (``delivery_queue``).

    Refused when approval is required and missing, when the spec changed, or when the data
    changed since the plan. Each message's idempotency key is campaign:customer:channel, so a
    second launch queues nothing twice. Returns the plan and the messages queued now.
    """
    plan = latest_plan(store, spec.name)
    if plan.status == "launched":
        raise RefusedError(f"plan {plan.plan_id} was launched at {plan.launched_at}")
    if spec.approval_required and plan.status != "approved":
        raise RefusedError(f"plan {plan.plan_id} needs approval first (jingzhun campaign approve)")
    if plan.spec_fingerprint != spec.fingerprint():
        raise RefusedError(
            f"campaigns/{spec.name}.yml changed since plan {plan.plan_id}; plan it again"
        )
    current = data_fingerprint(engine, store, spec)
    if current != plan.data_fingerprint:
        raise RefusedError(
            f"the data changed since plan {plan.plan_id} was made (profiles, segments, scores, "
            "consents or suppressions); plan it again"
        )
    rows = engine.read(SEND_PLAN)
    treated = rows.filter(
        (rows.plan_id == plan.plan_id) & (rows.group == "treatment") & (rows.phase != "rollout")
    )
    messages = engine.execute(treated).to_pylist()
    now = dt.datetime.now(dt.UTC)
    send_day = messages[0]["send_at"].date() if messages else now.date()
    queued = _queue(engine, store, spec, plan, messages, send_day=send_day, secret=secret)
    with store.session(write=True) as session:
        row = session.scalars(
            select(CampaignPlan).where(CampaignPlan.plan_id == plan.plan_id)
        ).one()
        row.status = "launched"
        row.launched_by = by
        row.launched_at = now
    return latest_plan(store, spec.name), queued


def _queue(
    engine: Engine,
    store: OperationalStore,
    spec: CampaignSpec,
    plan: CampaignPlan,
    messages: list[dict[str, Any]],
    *,
    send_day: dt.date,
    secret: bytes | None,
    winner: str | None = None,
    extra: dict[str, Any] | None = None,
) -> int:
    """Queue plan rows for delivery, each once (key campaign:customer:channel), with their
    offer and coupon; store the coupons of the messages queued now. Returns how many.
    """
    now = dt.datetime.now(dt.UTC)
    payloads, coupons = _offers(
        engine, spec, [m["customer_key"] for m in messages], send_day, secret
    )
    fresh: set[str] = set()
    with store.session(write=True) as session:
        existing = set(
            session.scalars(
                select(QueuedMessage.idempotency_key).where(QueuedMessage.campaign == spec.name)
            ).all()
        )
        for m in messages:
            key = f"{spec.name}:{m['customer_key']}:{m['channel']}"
            if key in existing:
                continue
            variant = winner or m["variant"]
            body = {"variant": variant, "phase": m["phase"], **(extra or {})}
            body.update(payloads.get(m["customer_key"], {}))
            session.add(
                QueuedMessage(
                    idempotency_key=key,
                    plan_id=plan.plan_id,
                    campaign=spec.name,
                    customer_key=m["customer_key"],
                    channel=m["channel"],
                    address=m["address"] or "",
                    variant=variant,
                    send_at=max(m["send_at"], now) if winner else m["send_at"],
                    payload=body,
                    status="queued",
                    created_at=now,
                )
            )
            fresh.add(m["customer_key"])
    _store_coupons(engine, coupons, fresh)
    return len(fresh)


def rollout_plan(
    engine: Engine,
    store: OperationalStore,
    spec: CampaignSpec,
    *,
    winner: str,
    by: str,
    secret: bytes | None = None,
) -> tuple[CampaignPlan, int]:
    """After a pilot: queue the rest of the treated customers (phase ``rollout``) with the
    winning variant. The pilot must have been launched; each message is still queued once.
    """
    if spec.pilot is None:
        raise RefusedError(f"campaign {spec.name} has no pilot; everything went out at launch")
    names = [v.name for v in spec.variants]
    if winner not in names:
        raise RefusedError(f"'{winner}' is not a variant of {spec.name}; variants: {names}")
    plan = latest_plan(store, spec.name)
    if plan.status != "launched":
        raise RefusedError(f"plan {plan.plan_id} is {plan.status}; launch the pilot first")
    rows = engine.read(SEND_PLAN)
    rest = rows.filter(
        (rows.plan_id == plan.plan_id) & (rows.group == "treatment") & (rows.phase == "rollout")
    )
    messages = engine.execute(rest).to_pylist()
    queued = _queue(
        engine,
        store,
        spec,
        plan,
        messages,
        send_day=dt.datetime.now(dt.UTC).date(),
        secret=secret,
        winner=winner,
        extra={"rolled_out_by": by},
    )
    return latest_plan(store, spec.name), queued
