"""Click fraud: each rule on its own, then rules and the anomaly model on a simulated day with
six kinds of injected bots, scored against the answer key; and the CTR model and its prior.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ads_shop import DAY, FRAUD

from jingzhun.ads import (
    BOT_KINDS,
    FraudRules,
    FraudSettings,
    InvalidReason,
    evaluate_fraud,
    fit_beta_prior,
    load_ctr_model,
    open_ad_server,
)
from jingzhun.ads._fraud import ClickFacts
from jingzhun.workspace import Workspace


def _click(at: float, *, ip: str = "81.0.0.1", device: str = "d", impression: str | None = "i1",
           served: float | None = 0.0, campaign: str = "c") -> ClickFacts:  # fmt: skip
    return ClickFacts(at, ip, device, campaign, impression, served, device)


def test_each_rule() -> None:
    rules = FraudRules(FraudSettings(data_centre_ranges=["203.0.113.0/24"]))
    assert rules.check(_click(10, impression=None, served=None)) is InvalidReason.NO_IMPRESSION
    assert rules.check(_click(10, ip="203.0.113.77", impression="i2")) is InvalidReason.DATA_CENTRE
    assert rules.check(_click(0.4, device="e", impression="i3")) is InvalidReason.TOO_FAST
    assert rules.check(_click(90_000, device="f", impression="i4")) is InvalidReason.STALE
    assert rules.check(_click(20, device="g", impression="i5")) is None
    assert rules.check(_click(25, device="g", impression="i5")) is InvalidReason.REPEATED
    flood = [
        rules.check(
            _click(100 + n, ip="81.9.9.9", device=f"x{n}", impression=f"f{n}", campaign=f"c{n}")
        )
        for n in range(10)
    ]
    assert flood[:6] == [None] * 6 and set(flood[6:]) == {InvalidReason.IP_FLOOD}
    # a flooding IP stays blocked for block_seconds
    later = _click(400, ip="81.9.9.9", device="y", impression="z", campaign="other")
    assert rules.check(later) is InvalidReason.IP_FLOOD


def test_rules_and_model_on_injected_bots(simulated: Path) -> None:
    with Workspace.open(simulated) as ws:
        server = open_ad_server(ws.project, ws.engine, ws.store, fraud=FRAUD)
        try:
            evaluation = evaluate_fraud(server, DAY, visitors=2500, seed=11)
        finally:
            server.close()
    scores = evaluation.scores
    assert set(scores["by_kind"]) == set(BOT_KINDS)
    assert scores["precision"] >= 0.95
    assert scores["recall"] >= 0.9
    for kind in ("data_centre", "no_impression", "too_fast"):
        assert scores["by_kind"][kind]["recall"] == 1.0, kind
    assert scores["by_kind"]["ip_flood"]["recall"] >= 0.95
    assert scores["by_kind"]["repeated"]["recall"] >= 0.7  # the first click of each looks human
    # no rule catches the click farm: the anomaly model does
    assert scores["by_kind"]["click_farm"]["recall"] >= 0.8
    assert scores["by_detector"]["anomaly"]["precision"] >= 0.9
    assert scores["human_clicks_flagged"] <= 0.05 * (scores["clicks"] - scores["bot_clicks"])


def test_beta_prior_is_recovered() -> None:
    rng = np.random.default_rng(0)
    rates = rng.beta(4.0, 196.0, size=400)  # mean 2 %, worth 200 impressions
    n = rng.integers(200, 5000, size=400)
    alpha, beta = fit_beta_prior(n, rng.binomial(n, rates))
    assert abs(alpha / (alpha + beta) - 0.02) < 0.002
    assert 120 < alpha + beta < 330


def test_ctr_model_beats_the_base_rate(simulated: Path) -> None:
    with Workspace.open(simulated) as ws:
        model = load_ctr_model(ws.project)
    m = model.metrics
    assert m["holdout_log_loss"] < m["base_rate_log_loss"]
    assert m["holdout_auc"] > 0.6
    # what the simulation put in: app_home > site_sidebar > store_screen
    w = model.weights
    assert (
        w["placement"]["app_home"] > w["placement"]["site_sidebar"] > w["placement"]["store_screen"]
    )
    # a creative nobody has seen gets the context model alone (delta 0) - the prior's mean
    assert "new/creative" not in model.creative_effects
    assert 0.002 < model.prior_mean() < 0.05
