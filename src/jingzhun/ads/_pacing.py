"""Budget pacing: spread each daily budget over the day the way traffic arrives.

The planned spend by local time ``t`` is ``budget x F(t)``, with ``F`` the share of a day's
traffic that has arrived by ``t`` (``TrafficCurve``: hourly shares learned from past
impressions, or a default shape; linear within the hour). Each campaign has a pass-through
probability ``p`` (probabilistic throttling, as in Agarwal et al. 2014, "Budget pacing for
targeted online advertisements at LinkedIn", KDD): a request takes part in the campaign's
auction with probability ``p``. Once a minute of local time ``p`` is multiplied by
``1 + rate`` when the spend is behind plan and by ``1 - rate`` when ahead by more than one
``max_cpc`` (kept within ``[min_rate, 1]``; within one click of plan it stays). On top, a hard
stop: a campaign whose spend is ahead of plan by more than ``allowance`` (a share of the
budget, at least two clicks) takes part in no auction until the plan catches up. So by 9:00 a
campaign has spent at most ``budget x F(9:00) + allowance`` plus the clicks on ads already
shown — never its whole day when traffic follows the curve.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass

# Share of a day's ad requests by local hour: quiet at night, a lunch bump and an evening peak
# (the shape of the generated shop's hourly profile).
DEFAULT_HOURLY = (
    0.012, 0.007, 0.005, 0.004, 0.005, 0.009, 0.018, 0.031, 0.042, 0.048, 0.052, 0.055,
    0.060, 0.057, 0.052, 0.050, 0.051, 0.054, 0.060, 0.068, 0.074, 0.072, 0.057, 0.037,
)  # fmt: skip


class TrafficCurve:
    """The share of a day's traffic that has arrived by each local time."""

    def __init__(self, hourly: Sequence[float] = DEFAULT_HOURLY) -> None:
        if len(hourly) != 24 or any(h < 0 for h in hourly) or sum(hourly) <= 0:
            raise ValueError("a traffic curve needs 24 non-negative hourly shares")
        total = float(sum(hourly))
        self.hourly = tuple(float(h) / total for h in hourly)
        cumulative = [0.0]
        for share in self.hourly:
            cumulative.append(cumulative[-1] + share)
        self._cumulative = cumulative

    @classmethod
    def from_hours(cls, hours: Sequence[int], *, smoothing: float = 1.0) -> TrafficCurve:
        """Learned from the local hours of past requests (add-``smoothing`` per hour)."""
        counts = [smoothing] * 24
        for hour in hours:
            counts[int(hour) % 24] += 1
        return cls(counts)

    def share_by(self, local: dt.time | dt.datetime) -> float:
        """F(t): the share of the day's traffic before local time ``t``."""
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        hour, within = divmod(seconds, 3600)
        return self._cumulative[hour] + self.hourly[hour] * within / 3600.0


@dataclass
class PacingSettings:
    """How hard pacing throttles."""

    rate: float = 0.2  # multiplicative step of the pass-through probability, once a minute
    min_rate: float = 0.01
    allowance_share: float = 0.05  # how far ahead of plan spend may run, share of the budget
    initial_rate: float = 1.0


class _State:
    __slots__ = ("minute", "p")

    def __init__(self, p: float) -> None:
        self.p = p
        self.minute = -1


class Pacer:
    """The throttle of every campaign; ``allow`` is called once per candidate per request."""

    def __init__(
        self,
        curve: TrafficCurve | None = None,
        settings: PacingSettings | None = None,
        *,
        seed: int = 0,
    ) -> None:
        self.curve = curve or TrafficCurve()
        self.settings = settings or PacingSettings()
        self._random = random.Random(seed)
        self._states: dict[str, _State] = {}

    def planned(self, budget: float, local: dt.datetime) -> float:
        """The spend planned by ``local`` time."""
        return budget * self.curve.share_by(local)

    def allow(
        self, campaign: str, budget: float, spent: float, max_cpc: float, local: dt.datetime
    ) -> bool:
        """Whether the campaign takes part in this request's auction."""
        settings = self.settings
        planned = budget * self.curve.share_by(local)
        allowance = max(budget * settings.allowance_share, 2 * max_cpc)
        if spent >= planned + allowance:
            return False
        state = self._states.get(campaign)
        if state is None:
            state = self._states[campaign] = _State(settings.initial_rate)
        minute = local.hour * 60 + local.minute
        if minute != state.minute:
            state.minute = minute
            # a dead band of one click: clicks come in steps of up to max_cpc
            if spent > planned + max_cpc:
                state.p = max(settings.min_rate, state.p * (1 - settings.rate))
            elif spent < planned:
                state.p = min(1.0, state.p * (1 + settings.rate))
        return state.p >= 1.0 or self._random.random() < state.p

    def rate(self, campaign: str) -> float:
        """The campaign's current pass-through probability."""
        state = self._states.get(campaign)
        return state.p if state is not None else self.settings.initial_rate

    def reset(self) -> None:
        """Forget every campaign's rate (a new day)."""
        self._states.clear()
