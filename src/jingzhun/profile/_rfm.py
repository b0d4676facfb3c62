"""RFM: recency, frequency, monetary, their quintile scores and the named segments.

- ``recency_days``: ``as_of`` minus the date (UTC) of the last order that is not a return.
- ``frequency``: orders that are not returns (one per ``(_source, order_id)``).
- ``monetary``: net revenue, the customer's gross sales minus everything returned.
- ``r_score``, ``f_score``, ``m_score``: quintiles 1-5 among buyers (frequency >= 1), higher
  is better for all three (the most recent fifth gets R 5). Scores are ``ntile(5)`` over the
  value and then ``customer_key``, so ties split at the same place on every engine:
  R orders by ``recency_days`` descending, F by ``frequency``, M by ``monetary`` ascending.
- ``fm_score = (f_score + m_score) / 2``; ``rfm_segment`` is the first segment of
  ``ProfileSettings.rfm_segments`` whose R and FM ranges hold (see ``_settings.py``).
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from jingzhun.engine import Engine
from jingzhun.profile import _facts
from jingzhun.profile._identity import identity_snapshot
from jingzhun.profile._settings import ProfileSettings

QUINTILES = 5


def order_figures(orders: ir.Table) -> ir.Table:
    """Per customer: order counts, money, first/last order, recency and the repeat gap.

    ``max_gap_recent`` is the longest gap (days) before an order of the last
    ``active_days``; the lifecycle uses it, so it is added later (``with_gaps``).
    """
    sale = ~orders.is_return
    return orders.group_by("customer_key").aggregate(
        orders=orders.count(where=sale),
        returns=orders.count(where=orders.is_return),
        gross_revenue=orders.gross.sum(),
        returns_value=orders.returned.sum(),
        revenue=orders.net.sum(),
        first_order_at=orders.ordered_at.min(where=sale),
        last_order_at=orders.ordered_at.max(where=sale),
        first_order_age=orders.age_days.max(where=sale),
        recency_days=orders.age_days.min(where=sale),
        first_any_order_at=orders.ordered_at.min(),
        last_any_order_at=orders.ordered_at.max(),
    )


def recent_gaps(orders: ir.Table, active_days: int) -> ir.Table:
    """Per customer: the longest gap in days before an order of the last ``active_days``."""
    sales = orders.filter(~orders.is_return)
    previous = sales.order_date.lag().over(
        group_by=sales.customer_key,
        order_by=[sales.order_date, sales.ordered_at, sales._source, sales.order_id],
    )
    gaps = sales.mutate(gap_days=sales.order_date.delta(previous, unit="day"))
    recent = gaps.filter(gaps.age_days <= active_days)
    return recent.group_by(gap_key=recent.customer_key).aggregate(
        max_gap_recent=recent.gap_days.max()
    )


def with_scores(figures: ir.Table, settings: ProfileSettings) -> ir.Table:
    """Add frequency, monetary, the three quintile scores, fm_score and rfm_segment."""
    buyer = figures.orders > 0
    # Non-buyers are partitioned apart so they do not shift the buyers' quintiles.
    r_tile = ibis.ntile(QUINTILES).over(
        group_by=buyer, order_by=[figures.recency_days.desc(), figures.customer_key]
    )
    f_tile = ibis.ntile(QUINTILES).over(
        group_by=buyer, order_by=[figures.orders, figures.customer_key]
    )
    m_tile = ibis.ntile(QUINTILES).over(
        group_by=buyer, order_by=[figures.revenue, figures.customer_key]
    )
    scored = figures.mutate(
        frequency=figures.orders,
        monetary=figures.revenue,
        r_score=ibis.cases((buyer, (r_tile + 1).cast("int64"))),
        f_score=ibis.cases((buyer, (f_tile + 1).cast("int64"))),
        m_score=ibis.cases((buyer, (m_tile + 1).cast("int64"))),
    )
    scored = scored.mutate(fm_score=(scored.f_score + scored.m_score).cast("float64") / 2)
    return scored.mutate(rfm_segment=segment_expr(scored, settings))


def segment_expr(scored: ir.Table, settings: ProfileSettings) -> ir.StringValue:
    """The first configured segment whose R and FM ranges hold; null without scores."""
    r, fm = scored.r_score, scored.fm_score
    branches = [
        (
            r.between(s.r[0], s.r[1]) & fm.between(float(s.fm[0]), float(s.fm[1])),
            ibis.literal(s.name),
        )
        for s in settings.rfm_segments
    ]
    return ibis.cases(*branches, else_=ibis.null("string"))


RFM_COLUMNS = (
    "customer_key",
    "recency_days",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "fm_score",
    "rfm_segment",
)


def rfm_table(
    engine: Engine, *, as_of: dt.date, settings: ProfileSettings | None = None
) -> ir.Table:
    """RFM figures, scores and segment of every customer with an order up to ``as_of``.

    The expression the profile build uses, on its own (for the benchmark and for a quick
    look): ``customer_key, recency_days, frequency, monetary, r_score, f_score, m_score,
    fm_score, rfm_segment``. Customers with returns only have no scores and no segment.
    """
    settings = settings or ProfileSettings()
    day = _facts.AsOf(as_of, settings.include_late_loads)
    identity = identity_snapshot(engine, as_of)
    orders = _facts.orders(engine, day, identity)
    if orders is None:
        raise ValueError("the warehouse has no raw_orders table: nothing to score")
    scored = with_scores(order_figures(orders), settings)
    return scored.select(
        "customer_key",
        "recency_days",
        "frequency",
        scored.monetary.cast(_facts.MONEY).name("monetary"),
        "r_score",
        "f_score",
        "m_score",
        "fm_score",
        "rfm_segment",
    )
