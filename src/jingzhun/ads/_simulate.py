"""Seeded ad traffic for a day, driven through a real ``AdServer``: people of the shop and
anonymous visitors asking for ads on the placements, clicking with a known true CTR, buying
after some clicks, and bots of six kinds. Every click's true kind is kept as an answer key
(``SimulationResult.truth``) so fraud detection can be scored.

Human behaviour (the CTR model has to find it): a base CTR per placement, times 1.4 for ages
18-34 and 0.7 for 55+, 2.5 when the campaign's category is among the person's interests, a
per-creative quality between 0.5 and 1.8, and 0.75 per earlier impression of the campaign
that day. Humans click 1 + LogNormal(1.3, 0.7) seconds after the impression; 6 % of their
clicks convert (9 % with an interest match), worth LogNormal(3.5, 0.6).

Bots (``BOT_KINDS``):

- ``ip_flood``: one IP asking for ads and clicking 25 times a minute for ten minutes,
  with a fresh device id on each request;
- ``data_centre``: clients in listed data-centre ranges clicking like people;
- ``no_impression``: clicks without a token or with a forged one;
- ``too_fast``: clicks 0.05-0.6 s after the impression;
- ``repeated``: a device clicking the same ad four times within a minute;
- ``click_farm``: devices on home IP addresses that view ads through the day and click 60 %
  of them at human speed, under every per-minute limit — only the anomaly model sees them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from jingzhun.ads._server import AdServer, DecideRequest, Decision

PLACEMENTS = {"app_home": 0.030, "site_sidebar": 0.012, "store_screen": 0.004}
BOT_KINDS = ("ip_flood", "data_centre", "no_impression", "too_fast", "repeated", "click_farm")
# RFC 5737 documentation ranges stand in for the published ranges of cloud providers.
SIMULATED_DATA_CENTRES = ("203.0.113.0/24", "198.51.100.0/24")
DEFAULT_BOTS = {
    "ip_flood": 1,
    "data_centre": 30,
    "no_impression": 150,
    "too_fast": 20,
    "repeated": 20,
    "click_farm": 25,
}


@dataclass
class SimulationResult:
    """What a simulated day did, and the answer key of every click."""

    day: dt.date
    requests: int = 0
    served: int = 0
    clicks: int = 0
    valid_clicks: int = 0
    charged: float = 0.0
    conversions: int = 0
    seconds: float = 0.0
    truth: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["click_id", "kind"]))

    def to_dict(self) -> dict[str, Any]:
        """Plain figures (the answer key left out)."""
        kinds = self.truth["kind"].value_counts().to_dict() if len(self.truth) else {}
        return {
            "day": self.day.isoformat(),
            "requests": self.requests,
            "served": self.served,
            "clicks": self.clicks,
            "valid_clicks": self.valid_clicks,
            "charged": round(self.charged, 2),
            "conversions": self.conversions,
            "clicks_by_kind": {str(k): int(v) for k, v in sorted(kinds.items())},
            "seconds": round(self.seconds, 2),
        }


def _quality(campaign: str, creative: str) -> float:
    digest = hashlib.sha256(f"{campaign}/{creative}".encode()).digest()
    return 0.5 + 1.3 * digest[0] / 255


def _home_ip(rng: np.random.Generator) -> str:
    a = int(rng.integers(81, 95))
    return (
        f"{a}.{int(rng.integers(0, 256))}.{int(rng.integers(0, 256))}.{int(rng.integers(1, 255))}"
    )


class _Events:
    """A time-ordered queue of things to do."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[..., object]]] = []
        self._seq = 0

    def at(self, when: float, action: Callable[..., object]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, action))

    def run(self) -> None:
        while self._heap:
            when, _, action = heapq.heappop(self._heap)
            action(when)


def simulate_day(
    server: AdServer,
    day: dt.date,
    *,
    visitors: int = 5000,
    requests_per_visitor: float = 4.0,
    known_share: float = 0.6,
    bots: Mapping[str, int] | None = None,
    seed: int = 0,
    placements: Mapping[str, float] | None = None,
) -> SimulationResult:
    """One day of requests, clicks and conversions through ``server`` (its clock is not used:
    every call passes its simulated time). ``bots`` maps bot kinds to how many bots (or, for
    ``no_impression``, clicks) of that kind; ``None`` = ``DEFAULT_BOTS``, ``{}`` = none.
    """
    started = time.perf_counter()
    rng = np.random.default_rng([seed, day.toordinal()])
    rates = dict(placements or PLACEMENTS)
    names = list(rates)
    zone = server.zone
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(str(zone))).timestamp()
    hourly = np.array(server.pacer.curve.hourly)
    result = SimulationResult(day)
    truth: list[tuple[str, str]] = []
    events = _Events()
    # sorted: the warehouse returns rows in no fixed order, the simulation must not depend on it
    people = sorted(server.index.people.values(), key=lambda p: p.customer_key)
    by_person_device: dict[str, str] = {}
    for anonymous_id, owner in sorted(server.index.devices.items()):
        by_person_device.setdefault(owner, anonymous_id)
    seen_today: dict[tuple[str, str], int] = {}
    specs = {c.spec.name: c.spec for c in server.index.campaigns}

    def moment() -> float:
        hour = int(rng.choice(24, p=hourly))
        return midnight + hour * 3600 + float(rng.uniform(0, 3600))

    def when(t: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(t, dt.UTC)

    def ask(t: float, request: DecideRequest) -> Decision | None:
        result.requests += 1
        decision = server.decide(request, now=when(t))
        if decision is not None:
            result.served += 1
        return decision

    def click(t: float, token: str | None, ip: str, device: str, kind: str) -> str:
        outcome = server.click(token, ip=ip, device_id=device, user_agent=kind, now=when(t))
        result.clicks += 1
        if outcome.valid:
            result.valid_clicks += 1
            result.charged += outcome.charged
        truth.append((outcome.click_id, kind))
        return outcome.click_id

    # -- people ------------------------------------------------------------------------------
    for v in range(visitors):
        known = people and rng.random() < known_share
        person = people[int(rng.integers(len(people)))] if known else None
        key = person.customer_key if person is not None else None
        device = (by_person_device.get(key) if key else None) or f"dev-{seed}-{day}-{v}"
        anonymous = device if key is None else None
        ip = _home_ip(rng)
        age_factor = 1.0
        if person is not None and person.age_band in ("18-24", "25-34"):
            age_factor = 1.4
        elif person is not None and person.age_band in ("55-64", "65+"):
            age_factor = 0.7
        interests = person.interests if person is not None else frozenset()
        for _ in range(1 + int(rng.poisson(requests_per_visitor - 1))):
            placement = names[int(rng.integers(len(names)))]
            request = DecideRequest(
                placement, customer_key=key, anonymous_id=anonymous, device_id=device, ip=ip
            )

            def visit(
                t: float,
                request: DecideRequest = request,
                age_factor: float = age_factor,
                interests: frozenset[str] = interests,
                who: str = device,
            ) -> None:
                decision = ask(t, request)
                if decision is None:
                    return
                spec = specs[decision.campaign]
                earlier = seen_today.get((who, decision.campaign), 0)
                seen_today[(who, decision.campaign)] = earlier + 1
                match = spec.category is not None and spec.category in interests
                p = (
                    rates[request.placement]
                    * age_factor
                    * (2.5 if match else 1.0)
                    * _quality(decision.campaign, decision.creative)
                    * 0.75**earlier
                )
                if rng.random() < min(p, 0.5):
                    delay = 1.0 + float(rng.lognormal(1.3, 0.7))
                    converts = rng.random() < (0.09 if match else 0.06)
                    value = float(rng.lognormal(3.5, 0.6))

                    def human_click(t2: float, token: str = decision.token) -> None:
                        click_id = click(t2, token, request.ip or "", who, "human")
                        if converts:
                            done = server.conversion(
                                click_id, value=round(value, 2), now=when(t2 + 600)
                            )
                            result.conversions += int(done)

                    events.at(t + delay, human_click)

            events.at(moment(), visit)

    # -- bots --------------------------------------------------------------------------------
    counts = dict(DEFAULT_BOTS if bots is None else bots)
    unknown = set(counts) - set(BOT_KINDS)
    if unknown:
        raise ValueError(f"unknown bot kinds {sorted(unknown)}; known: {', '.join(BOT_KINDS)}")

    def bot_visit(
        t: float, kind: str, ip: str, device: str, delay: float, repeats: int = 1
    ) -> None:
        placement = names[int(rng.integers(len(names)))]
        decision = ask(t, DecideRequest(placement, anonymous_id=device, device_id=device, ip=ip))
        if decision is None:
            return
        for r in range(repeats):
            events.at(
                t + delay + r * float(rng.uniform(2, 15)),
                lambda t2, token=decision.token: click(t2, token, ip, device, kind),
            )

    for b in range(counts.get("ip_flood", 0)):
        ip, start = _home_ip(rng), moment()
        for n in range(250):  # 25 a minute for ten minutes
            events.at(
                start + n * 2.4,
                lambda t, n=n, ip=ip, b=b: bot_visit(
                    t, "ip_flood", ip, f"flood-{b}-{n}", float(rng.uniform(1.5, 4))
                ),
            )
    for b in range(counts.get("data_centre", 0)):
        base = SIMULATED_DATA_CENTRES[b % len(SIMULATED_DATA_CENTRES)].split("/")[0]
        ip = base.rsplit(".", 1)[0] + f".{int(rng.integers(1, 255))}"
        for _ in range(10):
            events.at(
                moment(),
                lambda t, ip=ip, b=b: bot_visit(
                    t, "data_centre", ip, f"dc-{b}", 1.0 + float(rng.lognormal(1.3, 0.7))
                ),
            )
    for n in range(counts.get("no_impression", 0)):
        token = None if n % 2 else "aW1wcmVzc2lvbg.Zm9yZ2Vk"  # none, or forged
        events.at(
            moment(),
            lambda t, token=token, n=n: click(
                t, token, _home_ip(rng), f"noimp-{n}", "no_impression"
            ),
        )
    for b in range(counts.get("too_fast", 0)):
        ip = _home_ip(rng)
        for _ in range(5):
            events.at(
                moment(),
                lambda t, ip=ip, b=b: bot_visit(
                    t, "too_fast", ip, f"fast-{b}", float(rng.uniform(0.05, 0.6))
                ),
            )
    for b in range(counts.get("repeated", 0)):
        ip = _home_ip(rng)
        events.at(
            moment(),
            lambda t, ip=ip, b=b: bot_visit(
                t, "repeated", ip, f"rep-{b}", float(rng.uniform(2, 6)), repeats=4
            ),
        )
    for b in range(counts.get("click_farm", 0)):
        ip = _home_ip(rng)
        for _ in range(30):

            def farm(t: float, ip: str = ip, b: int = b) -> None:
                device = f"farm-{b}"
                placement = names[int(rng.integers(len(names)))]
                decision = ask(
                    t, DecideRequest(placement, anonymous_id=device, device_id=device, ip=ip)
                )
                if decision is not None and rng.random() < 0.6:
                    events.at(
                        t + 2 + float(rng.uniform(0, 6)),
                        lambda t2, token=decision.token: click(t2, token, ip, device, "click_farm"),
                    )

            events.at(moment(), farm)

    events.run()
    server.log.flush()
    result.truth = pd.DataFrame(truth, columns=["click_id", "kind"])
    result.seconds = time.perf_counter() - started
    return result
