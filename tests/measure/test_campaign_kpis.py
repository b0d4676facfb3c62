"""Campaign KPIs on a shop whose campaign really went out (worker → aiosmtpd on 127.0.0.1):
every KPI row equals a hand computation from the plan, the delivery log and the orders and
tracking events injected after the send, and the holdout's intervals equal statsmodels'."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from campaign_outcomes_project import (
    CAMPAIGN,
    COST_PER_CONTACT,
    WINDOW_DAYS,
    Shop,
    launched_shop,
)
from statsmodels.stats.proportion import confint_proportions_2indep
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from jingzhun.campaigns import CampaignSpec
from jingzhun.core import NotFoundError
from jingzhun.measure import CampaignKpis, campaign_kpis
from jingzhun.workspace import Workspace


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    return launched_shop(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def kpis(shop: Shop) -> CampaignKpis:
    with Workspace.open(shop.root) as ws:
        return campaign_kpis(
            ws.engine, ws.store, ws.campaigns.spec(CAMPAIGN), as_of=shop.as_of, currency="GBP"
        )


def _div(a: float, b: float) -> float | None:
    return None if b == 0 else a / b


def expected_customers(shop: Shop) -> list[dict[str, Any]]:
    """One dict per planned customer, by the README's definitions, from the raw facts."""
    first_sent = min(d["sent_at"] for d in shop.deliveries.values() if d["sent_at"] is not None)
    key_of = shop.keys
    orders_by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in shop.orders:
        orders_by_key[key_of[o["customer_id"]]].append(o)
    kinds_by_message: dict[str, set[str]] = defaultdict(set)
    for e in shop.events:
        key = json.loads(e["properties"]).get("idempotency_key")
        if key:
            kinds_by_message[key].add(e["event_type"])
    out = []
    for row in shop.plan:
        key = row["customer_key"]
        delivery = shop.deliveries.get(key, {})
        status = delivery.get("status")
        sent = status in ("sent", "complained", "bounced")
        delivered = status in ("sent", "complained")
        if sent and delivery["sent_at"] is not None:
            start = delivery["sent_at"]
        else:
            start = max(row["send_at"], first_sent)
        end = start + dt.timedelta(days=WINDOW_DAYS)
        inside = [
            o
            for o in orders_by_key[key]
            if start <= dt.datetime.fromisoformat(o["ordered_at"].replace("Z", "+00:00")) < end
        ]
        sales = [o for o in inside if o["is_return"] == "no"]
        returns = [o for o in inside if o["is_return"] == "yes"]
        kinds = kinds_by_message.get(delivery.get("message_key", ""), set())
        converted = bool(sales)
        out.append(
            {
                "group": row["group"],
                "variant": "holdout" if row["group"] == "holdout" else row["variant"],
                "segment": row["stratum"],
                "channel": row["channel"],
                "day": start.date().isoformat(),
                "sent": int(sent),
                "delivered": int(delivered),
                "bounced": int(status == "bounced"),
                "opened": int(bool(kinds & {"email_open", "email_click"})),
                "clicked": int("email_click" in kinds),
                "unsubscribed": int("unsubscribe" in kinds),
                "converted": int(converted),
                "orders": len(sales),
                "revenue": sum((Decimal(o["total_amount"]) for o in sales), Decimal(0)),
                "returns": sum((abs(Decimal(o["total_amount"])) for o in returns), Decimal(0)),
                "clv": shop.clv.get(key) if converted else None,
                "first_conversion": min(
                    (
                        dt.datetime.fromisoformat(o["ordered_at"].replace("Z", "+00:00"))
                        for o in sales
                    ),
                    default=None,
                ),
            }
        )
    return out


def expected_figures(customers: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {
        name: sum(c[name] for c in customers)
        for name in ("sent", "delivered", "bounced", "opened", "clicked", "unsubscribed")
    }
    conversions = sum(c["converted"] for c in customers)
    orders = sum(c["orders"] for c in customers)
    revenue = sum((c["revenue"] for c in customers), Decimal(0))
    returns = sum((c["returns"] for c in customers), Decimal(0))
    net = float(revenue - returns)
    cost = COST_PER_CONTACT * counts["sent"]
    clvs = [c["clv"] for c in customers if c["clv"] is not None]
    clv = sum(clvs) / len(clvs) if clvs else None
    cac = cost / conversions if cost > 0 and conversions else None
    return {
        "customers": len(customers),
        **counts,
        "conversions": conversions,
        "orders": orders,
        "revenue": round(float(revenue), 2),
        "returns_value": round(float(returns), 2),
        "net_revenue": round(net, 2),
        "cost": round(cost, 2),
        "delivery_rate": _div(counts["delivered"], counts["sent"]),
        "open_rate": _div(counts["opened"], counts["delivered"]),
        "ctr": _div(counts["clicked"], counts["delivered"]),
        "conversion_rate": _div(conversions, len(customers)),
        "aov": _div(float(revenue), orders),
        "cac": cac,
        "roas": _div(float(revenue), cost),
        "roi": _div(net - cost, cost),
        "clv": clv,
        "clv_cac": None if clv is None or not cac else clv / cac,
        "return_rate": _div(float(returns), float(revenue)),
        "unsubscribe_rate": _div(counts["unsubscribed"], counts["delivered"]),
    }


def test_the_campaign_really_went_out(shop: Shop) -> None:
    statuses = [d["status"] for d in shop.deliveries.values()]
    treated = [r for r in shop.plan if r["group"] == "treatment"]
    assert len(treated) == 30 and len(shop.plan) == 40  # holdout 25% of GB 24 and FR 16
    assert statuses.count("bounced") == 2  # the two addresses the server refused
    assert shop.received == statuses.count("sent") == 28


def test_every_kpi_row_equals_the_hand_computation(shop: Shop, kpis: CampaignKpis) -> None:
    customers = expected_customers(shop)
    cells: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for c in customers:
        cells[(c["group"], c["variant"], c["segment"], c["channel"], c["day"])].append(c)
    got = {(r["group"], r["variant"], r["segment"], r["channel"], r["day"]): r for r in kpis.rows}
    assert set(got) == set(cells)
    for dims, members in cells.items():
        row = dict(got[dims])
        assert row.pop("campaign") == CAMPAIGN
        for name in ("group", "variant", "segment", "channel", "day"):
            row.pop(name)
        assert row == expected_figures(members), dims  # exact, not approximate

    treated = [c for c in customers if c["group"] == "treatment"]
    holdout = [c for c in customers if c["group"] == "holdout"]
    assert kpis.totals["treatment"] == expected_figures(treated)
    assert kpis.totals["holdout"] == expected_figures(holdout)
    for name in ("a", "b"):
        assert kpis.variants[name] == expected_figures([c for c in treated if c["variant"] == name])
    t = kpis.totals["treatment"]
    # the injected facts, counted by hand: 8 first orders + 1 bounced customer's order convert;
    # a return inside the window, an order after it and one before the send do not count
    assert (t["conversions"], t["orders"], t["revenue"], t["returns_value"]) == (
        9,
        10,
        651.25,
        12.0,
    )
    assert (t["opened"], t["clicked"], t["unsubscribed"]) == (16, 9, 1)
    assert (kpis.totals["holdout"]["conversions"], kpis.totals["holdout"]["revenue"]) == (2, 56.0)
    assert [s["customers"] for s in kpis.funnel] == [30, 30, 28, 16, 9, 9]

    by_day: dict[tuple[str, str], int] = defaultdict(int)
    for c in customers:
        if c["first_conversion"] is not None:
            by_day[(c["first_conversion"].date().isoformat(), c["group"])] += 1
    assert [d["day"] for d in kpis.daily] == sorted({day for day, _ in by_day})
    for d in kpis.daily:
        assert d["treated_conversions"] == by_day[(d["day"], "treatment")]
        assert d["holdout_conversions"] == by_day[(d["day"], "holdout")]
        assert d["treated_rate"] == by_day[(d["day"], "treatment")] / len(treated)
        assert d["holdout_rate"] == by_day[(d["day"], "holdout")] / len(holdout)
    assert kpis.window_complete and not kpis.notes


def test_holdout_intervals_equal_statsmodels(shop: Shop, kpis: CampaignKpis) -> None:
    customers = expected_customers(shop)
    assert kpis.incrementality is not None

    def check(
        result: dict[str, Any], treated: list[dict[str, Any]], holdout: list[dict[str, Any]]
    ) -> None:
        nt, nh = len(treated), len(holdout)
        ct, ch = sum(c["converted"] for c in treated), sum(c["converted"] for c in holdout)
        low, high = confint_proportions_2indep(ct, nt, ch, nh, method="wald", compare="diff")
        assert result["incremental_conversions"] == pytest.approx(
            (ct / nt - ch / nh) * nt, abs=1e-9
        )
        assert result["incremental_conversions_ci"] == pytest.approx(
            [low * nt, high * nt], abs=1e-9
        )
        net_t = np.array([float(c["revenue"] - c["returns"]) for c in treated])
        net_h = np.array([float(c["revenue"] - c["returns"]) for c in holdout])
        rlow, rhigh = CompareMeans(DescrStatsW(net_t), DescrStatsW(net_h)).tconfint_diff(
            usevar="unequal"
        )
        lift = net_t.mean() - net_h.mean()
        assert result["incremental_revenue"] == pytest.approx(lift * nt, abs=1e-9)
        assert result["incremental_revenue_ci"] == pytest.approx([rlow * nt, rhigh * nt], abs=1e-9)
        cost = COST_PER_CONTACT * sum(c["sent"] for c in treated)
        assert result["cost"] == cost
        assert result["incremental_roi"] == pytest.approx((lift * nt - cost) / cost, abs=1e-12)
        assert result["incremental_roi_ci"] == pytest.approx(
            [(rlow * nt - cost) / cost, (rhigh * nt - cost) / cost], abs=1e-9
        )

    treated = [c for c in customers if c["group"] == "treatment"]
    holdout = [c for c in customers if c["group"] == "holdout"]
    check(kpis.incrementality.to_dict(), treated, holdout)
    for name, inc in kpis.incrementality_by_variant.items():
        check(inc.to_dict(), [c for c in treated if c["variant"] == name], holdout)
    overall = kpis.to_dict()["incrementality"]["overall"]
    assert overall["treated_n"] == 30 and overall["holdout_n"] == 10
    assert overall["conversions"]["treatment_mean"] == 9 / 30
    assert overall["conversions"]["control_mean"] == 2 / 10


def test_an_unlaunched_campaign_is_a_clear_error(shop: Shop) -> None:
    spec = CampaignSpec(name="autumn", audience="everyone", channel="email")
    with Workspace.open(shop.root) as ws, pytest.raises(NotFoundError, match=r"autumn.*launch"):
        campaign_kpis(ws.engine, ws.store, spec)


def test_measured_early_the_windows_are_open_and_say_so(shop: Shop) -> None:
    first = min(d["sent_at"] for d in shop.deliveries.values() if d["sent_at"] is not None)
    with Workspace.open(shop.root) as ws:
        early = campaign_kpis(ws.engine, ws.store, ws.campaigns.spec(CAMPAIGN), as_of=first.date())
    # nothing injected happened by the end of the send day: no conversions yet
    assert early.totals["treatment"]["conversions"] == 0
    assert not early.window_complete
    assert any("conversions may still come" in note for note in early.notes)
