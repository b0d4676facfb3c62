"""Campaign outcomes: who was planned, sent, delivered, opened, clicked, converted and paid,
per campaign × group × variant × segment × channel × day, and what the campaign added over its
holdout.

Definitions (the README and the tests rely on them):

- **The plan** is the campaign's newest *launched* plan; its rows in ``send_plan`` are the
  customers (treatment and holdout). The **segment** of a row is its holdout stratum (the value
  of the spec's ``holdout.stratify_by`` profile column, ``all`` when unstratified), so every
  segment has its own randomised holdout.
- **Sent**: the delivery log's status is ``sent``, ``complained`` or ``bounced`` (the channel
  took the message, or refused the address). **Delivered**: ``sent`` or ``complained`` (a
  bounce, at once or reported later, is not delivered). Failed, suppressed, in-doubt and still
  queued messages are neither.
- **Opened**, **clicked**, **unsubscribed**: the message has at least one tracking event of
  type ``email_open`` (or ``email_click``: a click is an open whose pixel was blocked),
  ``email_click``, ``unsubscribe`` in ``raw_events`` whose JSON ``properties`` carry the
  message's idempotency key as ``idempotency_key``; counted once per message.
- **Attribution window** of a planned customer: ``goal.within_days`` days from the moment the
  message was sent (``sent_at``); for a customer who was not sent anything (the holdout, and
  treated customers whose message bounced, failed or is still queued) from the planned
  ``send_at``, or from the campaign's first actual send when that is later, so that both groups
  are watched over the same days when the worker sent late.
- **Conversion**: the customer has a goal event in their window — for ``goal.event: order`` an
  order that is not a return, else an event of that type whose properties match
  ``goal.where``. Conversions count customers, not orders, and are counted for every planned
  customer (intent to treat), so treated and holdout rates compare like with like.
- **Revenue**: the gross of the customer's non-return orders in the window; **returns**: the
  value returned by orders dated in the window (return orders and return lines);
  **net revenue** = revenue − returns. Orders as in ``jingzhun.profile.customer_orders``:
  every order known by ``as_of`` (late loads included: measurement reads what is known now).
- **Cost** = ``cost_per_contact`` × sent. Ratios (``None`` when the denominator is 0):
  ``delivery_rate = delivered / sent``, ``open_rate = opened / delivered``,
  ``ctr = clicked / delivered``, ``conversion_rate = conversions / customers``,
  ``aov = revenue / orders``, ``cac = cost / conversions``, ``roas = revenue / cost``,
  ``roi = (net_revenue − cost) / cost``, ``clv`` = mean ``clv_12m`` score of the converted
  customers that have one, ``clv_cac = clv / cac``, ``return_rate = returns_value / revenue``,
  ``unsubscribe_rate = unsubscribed / delivered``.
- **Incrementality**: treated against holdout by ``holdout_incrementality`` (conversion rates
  by the two-proportion z, net revenue per customer by Welch), scaled to the treated group;
  per variant, the variant's treated customers against the whole holdout. Incremental ROI =
  ``(incremental net revenue − cost) / cost``; cost is fixed, so its interval is the revenue
  interval mapped by the same formula.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
from sqlalchemy import select

from jingzhun.campaigns import SEND_PLAN, CampaignSpec
from jingzhun.core import CONTRACTS, NotFoundError, Target
from jingzhun.engine import Engine
from jingzhun.measure._experiments import holdout_incrementality
from jingzhun.profile import AsOf, customer_events, customer_orders, identity_snapshot
from jingzhun.segments import SCORES
from jingzhun.store import CampaignPlan, Delivery, DeliveryStatus, OperationalStore

# Tracking events the HTTP API records in raw_events (event_type), each with the message's
# idempotency key under MESSAGE_KEY in its JSON properties.
OPENED_EVENT = "email_open"
CLICKED_EVENT = "email_click"
UNSUBSCRIBED_EVENT = "unsubscribe"
TRACKING_EVENTS = (OPENED_EVENT, CLICKED_EVENT, UNSUBSCRIBED_EVENT)
MESSAGE_KEY = "idempotency_key"
CLV_SCORE = "clv_12m"
HOLDOUT_VARIANT = "holdout"  # the holdout's label in the variant dimension
SENT_STATUSES = (DeliveryStatus.SENT, DeliveryStatus.COMPLAINED, DeliveryStatus.BOUNCED)
DELIVERED_STATUSES = (DeliveryStatus.SENT, DeliveryStatus.COMPLAINED)

DIMENSIONS = ("campaign", "group", "variant", "segment", "channel", "day")
COUNT_FIELDS = (
    "customers",
    "sent",
    "delivered",
    "bounced",
    "opened",
    "clicked",
    "unsubscribed",
    "conversions",
    "orders",
)
MONEY_FIELDS = ("revenue", "returns_value", "net_revenue", "cost")
RATIO_FIELDS = (
    "delivery_rate",
    "open_rate",
    "ctr",
    "conversion_rate",
    "aov",
    "cac",
    "roas",
    "roi",
    "clv",
    "clv_cac",
    "return_rate",
    "unsubscribe_rate",
)
FUNNEL_STEPS = ("planned", "sent", "delivered", "opened", "clicked", "converted")


def _div(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else float(numerator) / float(denominator)


def _cents(value: Decimal | float) -> float:
    return round(float(value), 2)


@dataclass(frozen=True)
class _Sums:
    """Additive figures of a set of planned customers (a KPI row, a group, a variant)."""

    counts: Mapping[str, int]
    revenue: Decimal
    returns_value: Decimal
    clv_sum: float
    clv_n: int

    def figures(self, cost_per_contact: float) -> dict[str, Any]:
        """Counts, money (to the cent) and ratios (exact) as the module docstring defines."""
        c = self.counts
        revenue = float(self.revenue)
        net = float(self.revenue - self.returns_value)
        cost = cost_per_contact * c["sent"]
        cac = _div(cost, c["conversions"]) if cost > 0 else None
        clv = _div(self.clv_sum, self.clv_n)
        out: dict[str, Any] = {name: int(c[name]) for name in COUNT_FIELDS}
        out.update(
            revenue=_cents(self.revenue),
            returns_value=_cents(self.returns_value),
            net_revenue=_cents(net),
            cost=_cents(cost),
            delivery_rate=_div(c["delivered"], c["sent"]),
            open_rate=_div(c["opened"], c["delivered"]),
            ctr=_div(c["clicked"], c["delivered"]),
            conversion_rate=_div(c["conversions"], c["customers"]),
            aov=_div(revenue, c["orders"]),
            cac=cac,
            roas=_div(revenue, cost),
            roi=_div(net - cost, cost),
            clv=clv,
            clv_cac=None if clv is None or not cac else clv / cac,
            return_rate=_div(float(self.returns_value), revenue),
            unsubscribe_rate=_div(c["unsubscribed"], c["delivered"]),
        )
        return out


def _add(parts: Sequence[_Sums]) -> _Sums:
    return _Sums(
        counts={k: sum(p.counts[k] for p in parts) for k in COUNT_FIELDS},
        revenue=sum((p.revenue for p in parts), Decimal(0)),
        returns_value=sum((p.returns_value for p in parts), Decimal(0)),
        clv_sum=sum(p.clv_sum for p in parts),
        clv_n=sum(p.clv_n for p in parts),
    )


@dataclass(frozen=True)
class Incrementality:
    """One treated set against the holdout: ``holdout_incrementality`` plus cost and ROI."""

    label: str
    cost: float
    result: dict[str, Any]  # HoldoutIncrementality.to_dict()
    incremental_roi: float | None
    incremental_roi_ci: tuple[float, float] | None
    incremental_cac: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values."""
        return {
            **self.result,
            "cost": self.cost,
            "incremental_roi": self.incremental_roi,
            "incremental_roi_ci": (
                None if self.incremental_roi_ci is None else list(self.incremental_roi_ci)
            ),
            "incremental_cac": self.incremental_cac,
        }


@dataclass(frozen=True)
class CampaignKpis:
    """A launched campaign's outcomes; see the module docstring for every definition.

    ``rows`` are the KPI rows (one per group × variant × segment × channel × day, the day being
    the UTC date the customer's window opened); ``totals`` the same figures per group
    (``treatment``, ``holdout``); ``variants`` per treated variant; ``funnel`` the treated
    customers at each step; ``daily`` conversions per UTC day of the first conversion in each
    group, with the share of the group; ``incrementality`` overall and per variant (``None``
    without a holdout or treated customers).
    """

    campaign: str
    plan_id: str
    channel: str
    currency: str
    as_of: dt.date
    attribution_window_days: int
    goal_event: str
    goal_where: dict[str, Any]
    cost_per_contact: float
    segment_by: str | None
    window_first_start: dt.datetime | None
    window_last_end: dt.datetime | None
    rows: list[dict[str, Any]]
    totals: dict[str, dict[str, Any]]
    variants: dict[str, dict[str, Any]]
    funnel: list[dict[str, Any]]
    daily: list[dict[str, Any]]
    incrementality: Incrementality | None
    incrementality_by_variant: dict[str, Incrementality]
    alpha: float
    notes: list[str] = field(default_factory=list)

    @property
    def window_complete(self) -> bool:
        """Whether every customer's window had closed by the end of ``as_of`` (UTC)."""
        if self.window_last_end is None:
            return False
        end_of_day = dt.datetime.combine(self.as_of + dt.timedelta(days=1), dt.time(), dt.UTC)
        return self.window_last_end <= end_of_day

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values: dates and times as ISO text, money rounded to cents."""
        return {
            "campaign": self.campaign,
            "plan_id": self.plan_id,
            "channel": self.channel,
            "currency": self.currency,
            "as_of": self.as_of.isoformat(),
            "attribution_window_days": self.attribution_window_days,
            "goal": {"event": self.goal_event, "where": self.goal_where},
            "cost_per_contact": self.cost_per_contact,
            "segment_by": self.segment_by,
            "alpha": self.alpha,
            "window": {
                "first_start": _iso(self.window_first_start),
                "last_end": _iso(self.window_last_end),
                "complete": self.window_complete,
            },
            "totals": self.totals,
            "variants": self.variants,
            "funnel": self.funnel,
            "daily": self.daily,
            "incrementality": (
                None
                if self.incrementality is None
                else {
                    "overall": self.incrementality.to_dict(),
                    "by_variant": {
                        name: inc.to_dict() for name, inc in self.incrementality_by_variant.items()
                    },
                }
            ),
            "rows": self.rows,
            "notes": self.notes,
        }


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# -- reading the store --------------------------------------------------------------------------


def launched_plan(store: OperationalStore, campaign: str) -> CampaignPlan:
    """The campaign's newest launched plan.

    Raises
    ------
    NotFoundError
        The campaign was never launched.
    """
    with store.session() as session:
        plan = session.scalars(
            select(CampaignPlan)
            .where(CampaignPlan.campaign == campaign, CampaignPlan.status == "launched")
            .order_by(CampaignPlan.launched_at.desc(), CampaignPlan.id.desc())
        ).first()
        if plan is None:
            raise NotFoundError(
                f"campaign '{campaign}' has no launched plan, so nothing to measure: run "
                f"'jingzhun campaign plan {campaign}', approve and launch it first"
            )
        session.expunge(plan)
        return plan


def launched_campaigns(store: OperationalStore) -> list[str]:
    """Names of the campaigns with a launched plan, sorted."""
    with store.session() as session:
        names = session.scalars(
            select(CampaignPlan.campaign).where(CampaignPlan.status == "launched").distinct()
        ).all()
    return sorted(names)


_DELIVERY_SCHEMA = pa.schema(
    [
        ("d_key", pa.string()),
        ("d_channel", pa.string()),
        ("d_message_key", pa.string()),
        ("d_status", pa.string()),
        ("d_sent_at", pa.timestamp("us", tz="UTC")),
    ]
)


def _deliveries(store: OperationalStore, campaign: str) -> pa.Table:
    """The campaign's rows of the delivery log (not journey steps)."""
    query = select(
        Delivery.customer_key,
        Delivery.channel,
        Delivery.idempotency_key,
        Delivery.status,
        Delivery.sent_at,
    ).where(Delivery.campaign == campaign, Delivery.journey_step.is_(None))
    with store.session() as session:
        rows = session.execute(query).all()
    columns: list[Sequence[Any]] = (
        list(zip(*rows, strict=True)) if rows else [[] for _ in _DELIVERY_SCHEMA]
    )
    return pa.table(
        [
            pa.array(list(values), f.type)
            for values, f in zip(columns, _DELIVERY_SCHEMA, strict=True)
        ],
        schema=_DELIVERY_SCHEMA,
    )


# -- the per-customer table -------------------------------------------------------------------


def _tracking(engine: Engine, as_of: AsOf) -> ir.Table | None:
    """Per message key: opened, clicked, unsubscribed (0/1) from the tracking events."""
    name = CONTRACTS[Target.EVENTS].raw_table
    if not engine.exists(name):
        return None
    events = engine.read(name)
    events = events.filter(
        events.event_type.isin(list(TRACKING_EVENTS)) & (events.occurred_at < as_of.end)
    )
    events = events.mutate(t_key=engine.json_text(events.properties, MESSAGE_KEY))
    events = events.filter(events.t_key.notnull())
    kind = events.event_type
    return events.group_by("t_key").aggregate(
        t_opened=kind.isin([OPENED_EVENT, CLICKED_EVENT]).any().cast("int64"),
        t_clicked=(kind == CLICKED_EVENT).any().cast("int64"),
        t_unsubscribed=(kind == UNSUBSCRIBED_EVENT).any().cast("int64"),
    )


def _where_matches(engine: Engine, events: ir.Table, where: Mapping[str, Any]) -> ir.BooleanValue:
    condition: ir.BooleanValue = ibis.literal(True)
    for key, expected in where.items():
        # JSON text as the engines give it back: booleans lower case, numbers as digits
        text = json.dumps(expected) if isinstance(expected, bool) else str(expected)
        value = (
            events[key] if key in ("sku", "channel") else engine.json_text(events.properties, key)
        )
        condition = condition & (value.cast("string") == text)
    return condition


def _customers(
    engine: Engine,
    store: OperationalStore,
    spec: CampaignSpec,
    plan_id: str,
    as_of: AsOf,
) -> tuple[ir.Table, dt.datetime | None]:
    """One row per planned customer with their delivery, tracking, window and outcomes."""
    plan = engine.read(SEND_PLAN)
    plan = plan.filter(plan.plan_id == plan_id)
    deliveries = _deliveries(store, spec.name)
    sent_times = [t for t in deliveries.column("d_sent_at").to_pylist() if t is not None]
    first_sent = min(sent_times) if sent_times else None
    logged = engine.register("_jz_kpi_deliveries", deliveries)
    joined = plan.left_join(
        logged, [plan.customer_key == logged.d_key, plan.channel == logged.d_channel]
    )
    rows = joined.select(
        "customer_key",
        "group",
        "channel",
        "send_at",
        variant=ibis.cases(
            (joined.group == "holdout", ibis.literal(HOLDOUT_VARIANT)), else_=joined.variant
        ),
        segment=joined.stratum.fill_null("all"),
        message_key=joined.d_message_key,
        status=joined.d_status,
        sent_at=joined.d_sent_at,
    )
    status = rows.status
    sent = status.isin([s.value for s in SENT_STATUSES]).fill_null(False)
    delivered = status.isin([s.value for s in DELIVERED_STATUSES]).fill_null(False)
    planned_start = (
        ibis.greatest(rows.send_at, ibis.literal(first_sent))
        if first_sent is not None
        else rows.send_at
    )
    start = ibis.cases((rows.sent_at.notnull() & sent, rows.sent_at), else_=planned_start)
    rows = rows.mutate(
        sent=sent.cast("int64"),
        delivered=delivered.cast("int64"),
        bounced=(status == DeliveryStatus.BOUNCED.value).fill_null(False).cast("int64"),
        w_start=start,
    )
    rows = rows.mutate(
        w_end=rows.w_start + ibis.interval(days=spec.goal.within_days),
        day=rows.w_start.date(),
    )

    tracking = _tracking(engine, as_of)
    if tracking is not None:
        j = rows.left_join(tracking, rows.message_key == tracking.t_key)
        rows = j.select(
            *rows.columns,
            opened=j.t_opened.fill_null(0),
            clicked=j.t_clicked.fill_null(0),
            unsubscribed=j.t_unsubscribed.fill_null(0),
        )
    else:
        zero = ibis.literal(0, type="int64")
        rows = rows.mutate(opened=zero, clicked=zero, unsubscribed=zero)

    identity = identity_snapshot(engine, as_of.day)
    orders = customer_orders(engine, as_of, identity)
    windows = rows.select(o_key=rows.customer_key, o_start=rows.w_start, o_end=rows.w_end)
    money = ibis.literal(Decimal(0), type="decimal(18, 4)")
    if orders is not None:
        o = windows.join(
            orders,
            [
                windows.o_key == orders.customer_key,
                orders.ordered_at >= windows.o_start,
                orders.ordered_at < windows.o_end,
            ],
        )
        sale = ~o.is_return
        bought = o.group_by("o_key").aggregate(
            o_orders=sale.sum().cast("int64"),
            o_revenue=o.gross.sum(where=sale),
            o_returns=o.returned.sum(),
            o_first=o.ordered_at.min(where=sale),
        )
        j = rows.left_join(bought, rows.customer_key == bought.o_key)
        rows = j.select(
            *rows.columns,
            orders=j.o_orders.fill_null(0),
            revenue=j.o_revenue.fill_null(money).cast("decimal(18, 4)"),
            returns_value=j.o_returns.fill_null(money).cast("decimal(18, 4)"),
            first_order_at=j.o_first,
        )
    else:
        rows = rows.mutate(
            orders=ibis.literal(0, type="int64"),
            revenue=money,
            returns_value=money,
            first_order_at=ibis.null("timestamp('UTC')"),
        )

    if spec.goal.event == "order":
        rows = rows.mutate(converted_at=rows.first_order_at)
    else:
        events = customer_events(engine, as_of, identity)
        if events is None:
            rows = rows.mutate(converted_at=ibis.null("timestamp('UTC')"))
        else:
            goal = events.filter(
                (events.event_type == spec.goal.event)
                & _where_matches(engine, events, spec.goal.where)
            )
            g = windows.join(
                goal,
                [
                    windows.o_key == goal.customer_key,
                    goal.occurred_at >= windows.o_start,
                    goal.occurred_at < windows.o_end,
                ],
            )
            first = g.group_by("o_key").aggregate(g_first=g.occurred_at.min())
            j = rows.left_join(first, rows.customer_key == first.o_key)
            rows = j.select(*rows.columns, converted_at=j.g_first)
    rows = rows.mutate(converted=rows.converted_at.notnull().cast("int64"))

    if engine.exists(SCORES):
        scores = engine.read(SCORES)
        clv = scores.filter(scores.score_name == CLV_SCORE)
        newest = ibis.row_number().over(
            group_by=clv.customer_key, order_by=[clv.scored_at.desc(), clv.score.desc()]
        )
        clv = clv.mutate(_jz_n=newest)
        clv = clv.filter(clv._jz_n == 0).select(s_key=clv.customer_key, s_clv=clv.score)
        j = rows.left_join(clv, rows.customer_key == clv.s_key)
        rows = j.select(*rows.columns, clv=j.s_clv.cast("float64"))
    else:
        rows = rows.mutate(clv=ibis.null("float64"))
    return rows, first_sent


# -- figures ------------------------------------------------------------------------------------


def _cell_sums(engine: Engine, customers: ir.Table) -> list[tuple[dict[str, Any], _Sums]]:
    """Per KPI cell (group, variant, segment, channel, day): the additive figures."""
    t = customers
    converted_clv = t.clv.notnull() & (t.converted == 1)
    cells = t.group_by(["group", "variant", "segment", "channel", "day"]).aggregate(
        customers=t.count(),
        sent=t.sent.sum(),
        delivered=t.delivered.sum(),
        bounced=t.bounced.sum(),
        opened=t.opened.sum(),
        clicked=t.clicked.sum(),
        unsubscribed=t.unsubscribed.sum(),
        conversions=t.converted.sum(),
        orders=t.orders.sum(),
        revenue=t.revenue.sum(),
        returns_value=t.returns_value.sum(),
        clv_sum=t.clv.sum(where=converted_clv),
        clv_n=converted_clv.sum(),
    )
    out = []
    for r in engine.execute(cells).to_pylist():
        dims = {
            "group": r["group"],
            "variant": r["variant"],
            "segment": r["segment"],
            "channel": r["channel"],
            "day": r["day"].isoformat() if r["day"] is not None else None,
        }
        sums = _Sums(
            counts={k: int(r[k] or 0) for k in COUNT_FIELDS},
            revenue=Decimal(r["revenue"] or 0),
            returns_value=Decimal(r["returns_value"] or 0),
            clv_sum=float(r["clv_sum"] or 0.0),
            clv_n=int(r["clv_n"] or 0),
        )
        out.append((dims, sums))
    order = {"treatment": 0, "holdout": 1}
    out.sort(
        key=lambda c: (
            order.get(c[0]["group"], 2),
            c[0]["variant"],
            c[0]["segment"],
            c[0]["channel"],
            c[0]["day"] or "",
        )
    )
    return out


def _incrementality(
    label: str,
    treated: Any,
    holdout: Any,
    cost: float,
    alpha: float,
) -> Incrementality:
    """``holdout_incrementality`` on per-customer conversions and net revenue, plus ROI."""
    result = holdout_incrementality(
        int(treated["converted"].sum()),
        len(treated),
        int(holdout["converted"].sum()),
        len(holdout),
        treated["net"].to_numpy(dtype=float),
        holdout["net"].to_numpy(dtype=float),
        alpha=alpha,
    )
    payload = _plain(result.to_dict())
    roi: float | None = None
    roi_ci: tuple[float, float] | None = None
    revenue = result.incremental_revenue
    if cost > 0 and revenue is not None and math.isfinite(revenue):
        roi = (revenue - cost) / cost
        if result.incremental_revenue_ci is not None:
            low, high = result.incremental_revenue_ci
            if math.isfinite(low) and math.isfinite(high):
                roi_ci = ((float(low) - cost) / cost, (float(high) - cost) / cost)
    conversions = result.incremental_conversions
    cac = (
        cost / conversions if cost > 0 and math.isfinite(conversions) and conversions > 0 else None
    )
    return Incrementality(label, _cents(cost), payload, roi, roi_ci, cac)


def _plain(value: Any) -> Any:
    """Numpy scalars to Python numbers, NaN and infinities to None, recursively."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def campaign_kpis(
    engine: Engine,
    store: OperationalStore,
    spec: CampaignSpec,
    *,
    as_of: dt.date | None = None,
    currency: str = "",
    alpha: float = 0.05,
) -> CampaignKpis:
    """Outcomes, KPIs and incrementality of a launched campaign (module docstring).

    Parameters
    ----------
    engine, store
        The project's warehouse (``send_plan``, raw orders and events, ``scores``) and
        operational store (``campaign_plans``, ``deliveries``).
    spec
        The campaign as written; its goal gives the event and the window.
    as_of
        Count orders and events up to the end of this UTC day (default today).
    currency
        The project's currency, carried into the output.
    alpha
        Intervals are at ``1 - alpha``.

    Raises
    ------
    NotFoundError
        The campaign has no launched plan.
    """
    day = as_of or dt.datetime.now(dt.UTC).date()
    cutoff = AsOf(day, include_late_loads=True)
    plan = launched_plan(store, spec.name)
    customers, first_sent = _customers(engine, store, spec, plan.plan_id, cutoff)
    cells = _cell_sums(engine, customers)
    cpc = spec.cost_per_contact
    rows = [{"campaign": spec.name, **dims, **sums.figures(cpc)} for dims, sums in cells]
    totals = {
        group: _add([s for d, s in cells if d["group"] == group]).figures(cpc)
        for group in ("treatment", "holdout")
    }
    variant_names = [v.name for v in spec.variants]
    seen = sorted({d["variant"] for d, _ in cells if d["group"] == "treatment"})
    variant_names += [v for v in seen if v not in variant_names]
    variants = {
        name: _add(
            [s for d, s in cells if d["group"] == "treatment" and d["variant"] == name]
        ).figures(cpc)
        for name in variant_names
        if name in seen
    }
    treated = totals["treatment"]
    funnel = [
        {"step": "planned", "customers": treated["customers"]},
        {"step": "sent", "customers": treated["sent"]},
        {"step": "delivered", "customers": treated["delivered"]},
        {"step": "opened", "customers": treated["opened"]},
        {"step": "clicked", "customers": treated["clicked"]},
        {"step": "converted", "customers": treated["conversions"]},
    ]

    per_customer = engine.execute(
        customers.select(
            "group",
            "variant",
            "sent",
            "converted",
            net=(customers.revenue - customers.returns_value).cast("float64"),
            conversion_day=customers.converted_at.date(),
            w_start=customers.w_start,
            w_end=customers.w_end,
        )
    ).to_pandas()
    sizes = per_customer.groupby("group").size().to_dict()
    converted = per_customer[per_customer.converted == 1]
    by_day = converted.groupby(["conversion_day", "group"]).size().to_dict()
    daily = []
    for conversion_day in sorted({d for d, _ in by_day}):
        entry: dict[str, Any] = {"day": conversion_day.isoformat()}
        for group, prefix in (("treatment", "treated"), ("holdout", "holdout")):
            n = int(by_day.get((conversion_day, group), 0))
            entry[f"{prefix}_conversions"] = n
            entry[f"{prefix}_rate"] = _div(n, int(sizes.get(group, 0)))
        daily.append(entry)

    notes: list[str] = []
    treated_units = per_customer[per_customer.group == "treatment"]
    holdout_units = per_customer[per_customer.group == "holdout"]
    overall: Incrementality | None = None
    by_variant: dict[str, Incrementality] = {}
    if len(holdout_units) and len(treated_units):
        overall = _incrementality(
            "overall", treated_units, holdout_units, cpc * int(treated_units.sent.sum()), alpha
        )
        for name in variants:
            units = treated_units[treated_units.variant == name]
            by_variant[name] = _incrementality(
                name, units, holdout_units, cpc * int(units.sent.sum()), alpha
            )
    elif not len(holdout_units):
        notes.append(
            f"Campaign {spec.name} has no holdout (holdout.fraction is 0), so its incremental "
            "effect cannot be measured; the figures are what the treated customers did."
        )
    starts = per_customer.w_start.dropna()
    ends = per_customer.w_end.dropna()
    result = CampaignKpis(
        campaign=spec.name,
        plan_id=plan.plan_id,
        channel=spec.channel.value,
        currency=currency,
        as_of=day,
        attribution_window_days=spec.goal.within_days,
        goal_event=spec.goal.event,
        goal_where=dict(spec.goal.where),
        cost_per_contact=cpc,
        segment_by=spec.holdout.stratify_by,
        window_first_start=starts.min().to_pydatetime() if len(starts) else None,
        window_last_end=ends.max().to_pydatetime() if len(ends) else None,
        rows=rows,
        totals=totals,
        variants=variants,
        funnel=funnel,
        daily=daily,
        incrementality=overall,
        incrementality_by_variant=by_variant,
        alpha=alpha,
        notes=notes,
    )
    if not result.window_complete and result.window_last_end is not None:
        notes.append(
            f"The attribution windows run until {result.window_last_end:%Y-%m-%d %H:%M} UTC, "
            f"after {day} (as of): conversions may still come."
        )
    if first_sent is None and totals["treatment"]["customers"]:
        notes.append(
            "Nothing of this campaign has been sent yet (run 'jingzhun worker'); every window "
            "opens at the planned send time."
        )
    return result
