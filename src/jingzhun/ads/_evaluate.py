"""Scoring click-fraud detection on a simulated day with injected bots of every kind."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update

from jingzhun.ads._fraud import FraudResult, InvalidReason, detect_fraud, fraud_scores
from jingzhun.ads._ledger import AdLedger, read_logs
from jingzhun.ads._server import AdServer
from jingzhun.ads._simulate import SimulationResult, simulate_day
from jingzhun.store import AdClick, OperationalStore


@dataclass
class FraudEvaluation:
    """The simulated day, what the rules and the model flagged, and how well."""

    simulation: SimulationResult
    result: FraudResult
    scores: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Plain figures."""
        return {
            "simulation": self.simulation.to_dict(),
            "detection": self.result.summary(),
            "scores": self.scores,
        }


def evaluate_fraud(
    server: AdServer,
    day: dt.date,
    *,
    visitors: int = 5000,
    bots: Mapping[str, int] | None = None,
    seed: int = 0,
) -> FraudEvaluation:
    """Simulate ``day`` through ``server`` with bots (``DEFAULT_BOTS`` unless given), then
    score the rules (as applied at click time) and the anomaly model on that day's log
    against the answer key.
    """
    simulation = simulate_day(server, day, visitors=visitors, bots=bots, seed=seed)
    start = dt.datetime.combine(day, dt.time(), tzinfo=server.zone) - dt.timedelta(hours=1)
    end = start + dt.timedelta(days=1, hours=3)
    logs = read_logs(server.store, start=start, end=end)
    ids = set(simulation.truth["click_id"])
    clicks = logs.clicks[logs.clicks["click_id"].isin(ids)]
    result = detect_fraud(logs.impressions, clicks, logs.conversions, server.fraud.settings)
    return FraudEvaluation(simulation, result, fraud_scores(result, simulation.truth))


def apply_fraud(
    store: OperationalStore, result: FraudResult, *, now: dt.datetime
) -> dict[str, int]:
    """Act on the anomaly model's flags: billed clicks are credited back in the ledger, unbilled
    ones are marked invalid (``anomaly``). Running it again changes nothing.
    """
    c = result.clicks
    new = c[c["anomaly"] & c["reason"].isna()]
    billed = new[new["charged"] > 0]
    credited = AdLedger(store).credit(
        [(str(i), InvalidReason.ANOMALY.value) for i in billed["click_id"]], now=now
    )
    unbilled = [str(i) for i in new.loc[new["charged"] <= 0, "click_id"]]
    if unbilled:
        with store.session(write=True) as session:
            session.execute(
                update(AdClick)
                .where(AdClick.click_id.in_(unbilled), AdClick.reason.is_(None))
                .values(valid=False, reason=InvalidReason.ANOMALY.value)
            )
    return {"credited": credited, "marked": len(unbilled)}
