"""Planning: given a campaign's targeting, bid and budget, the reach, impressions, clicks and
cost to expect, estimated from past logs.

Every logged impression is an ad opportunity that was sold. For the campaign's audience (the
people its targeting admits; everyone for an untargeted campaign) each opportunity is
replayed against the campaign: its pCTR there (the CTR model for that placement, hour and
person, a new creative's prior), its eCPM ``max_cpc x pCTR`` against the winner's logged eCPM
— higher wins, paying the winner's eCPM divided by its own pCTR (second price, at most
``max_cpc``). Wins per person and day are held to the frequency cap. Daily figures are the
sums divided by the days of log; when the expected daily cost passes the budget, pacing
throttles evenly, so everything scales by ``budget / cost``. Reach over ``days`` treats each
person's daily wins as Poisson: ``sum(1 - exp(-wins_per_day x scale x days))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from jingzhun.ads._ctr import CtrModel, sigmoid
from jingzhun.ads._index import AudienceIndex
from jingzhun.ads._spec import AdCampaignSpec
from jingzhun.core import NotFoundError

RESERVE_CPC = 0.05


@dataclass(frozen=True)
class AdPlan:
    """Expected delivery of one campaign."""

    campaign: str
    audience: int | None  # None: everyone (untargeted)
    log_days: int
    opportunities_per_day: float
    win_rate: float
    daily_budget: float
    budget_limited: bool
    impressions_per_day: float
    clicks_per_day: float
    cost_per_day: float
    days: int
    reach: float
    impressions: float
    clicks: float
    cost: float

    @property
    def cpc(self) -> float | None:
        """Expected cost per click."""
        return self.cost / self.clicks if self.clicks else None

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``--json``, rounded."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = round(value, 4) if isinstance(value, float) else value
        cpc = self.cpc
        out["cpc"] = None if cpc is None else round(cpc, 4)
        return out


def plan_campaign(
    spec: AdCampaignSpec,
    impressions: pd.DataFrame,
    ctr: CtrModel,
    index: AudienceIndex,
    *,
    audience: set[str] | None,
    timezone: str = "UTC",
    budget: float | None = None,
    max_cpc: float | None = None,
    days: int | None = None,
) -> AdPlan:
    """Expected reach, impressions, clicks and cost of ``spec`` (``budget``, ``max_cpc`` and
    ``days`` override the campaign's daily budget, bid and flight length).
    """
    if len(impressions) == 0:
        raise NotFoundError(
            "no impressions logged yet: planning replays past ad requests (run ads, or "
            "`jingzhun ads simulate`, first)"
        )
    bid = max_cpc or spec.max_cpc
    daily_budget = budget or spec.daily_budget
    flight_days = days or (spec.flight.end - spec.flight.start).days + 1
    frame = impressions
    if spec.placements:
        frame = frame[frame["placement"].isin(spec.placements)]
    if audience is not None:
        frame = frame[frame["customer_key"].isin(audience)]
    local = impressions["served_at"].dt.tz_convert(timezone)
    log_days = max(1, int(local.dt.date.nunique()))
    if len(frame) == 0:
        return AdPlan(
            spec.name, None if audience is None else len(audience), log_days, 0.0, 0.0,
            daily_budget, False, 0.0, 0.0, 0.0, flight_days, 0.0, 0.0, 0.0, 0.0,
        )  # fmt: skip
    hours = frame["served_at"].dt.tz_convert(timezone).dt.hour.to_numpy()
    people = index.people
    anonymous = ctr.person_logit(None, None, False)
    pctr = np.empty(len(frame))
    for n, (placement, hour, key) in enumerate(
        zip(frame["placement"], hours, frame["customer_key"], strict=True)
    ):
        person = people.get(key) if isinstance(key, str) else None
        base = ctr.context_logit(placement, int(hour))
        if person is None:
            base += anonymous
            match = False
        else:
            base += ctr.person_logit(person.age_band, person.gender, True)
            match = spec.category is not None and spec.category in person.interests
        base += ctr.level("interest_match", int(match)) + ctr.level("frequency", 0)
        pctr[n] = sigmoid(base)
    ecpm = bid * pctr
    rival = frame["ecpm"].to_numpy(dtype=float) / 1000.0
    win = ecpm > rival
    price = np.minimum(bid, np.maximum(RESERVE_CPC, rival / np.maximum(pctr, 1e-9)))
    who = (
        frame["customer_key"]
        .fillna(frame["anonymous_id"])
        .fillna(frame["device_id"])
        .fillna(frame["ip"])
        .fillna("unknown")
    )
    day = frame["served_at"].dt.tz_convert(timezone).dt.date.to_numpy()
    wins = pd.DataFrame(
        {"who": who.to_numpy(), "day": day, "win": win, "p": pctr, "cost": pctr * price}
    )
    wins = wins[wins["win"]]
    if spec.frequency_cap is not None and len(wins):
        cap = spec.frequency_cap.impressions * max(1, 24 // spec.frequency_cap.per_hours)
        wins = wins[wins.groupby(["who", "day"]).cumcount() < cap]
    impressions_day = len(wins) / log_days
    clicks_day = float(wins["p"].sum()) / log_days
    cost_day = float(wins["cost"].sum()) / log_days
    scale = min(1.0, daily_budget / cost_day) if cost_day > 0 else 1.0
    per_person = wins.groupby("who").size() / log_days
    reach = float(np.sum(1 - np.exp(-per_person.to_numpy() * scale * flight_days)))
    return AdPlan(
        campaign=spec.name,
        audience=None if audience is None else len(audience),
        log_days=log_days,
        opportunities_per_day=len(frame) / log_days,
        win_rate=float(win.mean()),
        daily_budget=daily_budget,
        budget_limited=scale < 1.0,
        impressions_per_day=impressions_day * scale,
        clicks_per_day=clicks_day * scale,
        cost_per_day=cost_day * scale,
        days=flight_days,
        reach=reach,
        impressions=impressions_day * scale * flight_days,
        clicks=clicks_day * scale * flight_days,
        cost=min(cost_day * scale, daily_budget) * flight_days,
    )


def audience_of(index: AudienceIndex, name: str) -> set[str] | None:
    """The customers a campaign of the index targets (None: everyone)."""
    position = next((i for i, c in enumerate(index.campaigns) if c.spec.name == name), None)
    if position is None:
        raise NotFoundError(f"campaign '{name}' is not in the index")
    if position in index.everyone:
        return None
    return {key for key, found in index.eligible.items() if position in found}
