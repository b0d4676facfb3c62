"""The decision server: picks the ad for a request, signs its impression, bills valid clicks.

A decision, all in memory (no database call on the request path):

1. who: the request's ``customer_key``, source ``customer_id`` or ``anonymous_id``
   (``identity_map``) resolved in the audience index; unknown visitors only see untargeted
   campaigns;
2. which campaigns: the index's eligible set, then flight dates, placement, the day's budget
   (billed spend below it), the frequency cap (impressions to this person in the last
   ``per_hours``) and pacing (``Pacer.allow``);
3. auction: per campaign the creative with the highest pCTR (``CtrModel``; a random creative
   with probability ``explore`` so new ones gather clicks), expected value per impression
   ``eCPM = max_cpc x pCTR``; the highest wins;
4. price (generalised second price): the runner-up's eCPM divided by the winner's pCTR,
   rounded up to the cent, at least ``reserve_cpc``, never above the winner's ``max_cpc``. The
   price is fixed at decision time and travels in the signed impression token, so a click
   costs what the auction said;
5. the impression is counted for frequency caps at once and queued for the log.

A click verifies the token's HMAC, runs the fraud rules and, when valid, is billed in one
transaction against the day's budget (``AdLedger.charge``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import math
import random
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from jingzhun.ads._ctr import CtrModel
from jingzhun.ads._fraud import ClickFacts, FraudRules, InvalidReason
from jingzhun.ads._index import AudienceIndex
from jingzhun.ads._ledger import AdLedger, LogWriter
from jingzhun.ads._pacing import Pacer
from jingzhun.ads._spec import AdCampaignSpec
from jingzhun.store import OperationalStore

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class DecideRequest:
    """One ad request from a placement."""

    placement: str
    customer_key: str | None = None
    customer_id: str | None = None
    anonymous_id: str | None = None
    device_id: str | None = None
    ip: str | None = None


@dataclass(frozen=True)
class Decision:
    """The ad to show and the token its click and render beacons carry."""

    impression_id: str
    campaign: str
    creative: str
    title: str
    body: str
    image_url: str | None
    landing_url: str
    price: float  # what a click will cost (<= max CPC)
    pctr: float
    candidates: int
    token: str

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "impression_id": self.impression_id,
            "campaign": self.campaign,
            "creative": self.creative,
            "title": self.title,
            "body": self.body,
            "image_url": self.image_url,
            "landing_url": self.landing_url,
            "price": self.price,
            "pctr": self.pctr,
            "token": self.token,
        }


@dataclass(frozen=True)
class ClickResult:
    """What a click did: valid or the reason it was refused, and what it cost."""

    click_id: str
    valid: bool
    reason: str | None
    charged: float
    campaign: str | None
    landing_url: str | None

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "click_id": self.click_id,
            "valid": self.valid,
            "reason": self.reason,
            "charged": self.charged,
            "campaign": self.campaign,
            "landing_url": self.landing_url,
        }


@dataclass(frozen=True)
class Impression:
    """A verified impression token."""

    impression_id: str
    campaign: str
    creative: str
    placement: str
    customer_key: str | None
    device_id: str | None
    served_at: float
    price: float


class _Live:
    """One campaign prepared for serving."""

    __slots__ = ("cap", "creatives", "index", "name", "placements", "spec", "window")

    def __init__(self, index: int, spec: AdCampaignSpec) -> None:
        self.index = index
        self.spec = spec
        self.name = spec.name
        self.placements = frozenset(spec.placements) if spec.placements else None
        self.creatives = spec.creatives
        cap = spec.frequency_cap
        self.cap = cap.impressions if cap is not None else None
        self.window = cap.per_hours * 3600.0 if cap is not None else 0.0


@dataclass
class ServerSettings:
    """Auction and serving settings."""

    reserve_cpc: float = 0.05
    explore: float = 0.05
    seed: int = 0
    token_max_age_hours: float = 24.0


@dataclass
class ServerStats:
    """Counters since start."""

    requests: int = 0
    served: int = 0
    clicks: int = 0
    valid_clicks: int = 0
    charged: float = 0.0
    throttled: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class AdServer:
    """Decisions, impression and click logging, billing; one per serving process."""

    def __init__(
        self,
        index: AudienceIndex,
        ctr: CtrModel,
        store: OperationalStore,
        *,
        secret: bytes,
        timezone: str = "UTC",
        pacer: Pacer | None = None,
        fraud: FraudRules | None = None,
        settings: ServerSettings | None = None,
        clock: Clock | None = None,
        log: LogWriter | None = None,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the token secret must have at least 16 bytes")
        self.index = index
        self.ctr = ctr
        self.store = store
        self.ledger = AdLedger(store)
        self.secret = secret
        self.zone = ZoneInfo(timezone)
        self.pacer = pacer or Pacer()
        self.fraud = fraud or FraudRules()
        self.settings = settings or ServerSettings()
        self.clock = clock or _utcnow
        self.stats = ServerStats()
        self._random = random.Random(self.settings.seed)
        self._lock = threading.Lock()
        self._click_lock = threading.Lock()
        self._live = [_Live(i, c.spec) for i, c in enumerate(index.campaigns)]
        self._by_name = {c.name: c for c in self._live}
        self._day: dt.date | None = None
        self._today: list[bool] = [False] * len(self._live)
        self._spent: dict[str, float] = {}
        self._seen: dict[tuple[str, int], deque[float]] = {}
        self._person_logits: dict[str, float] = {
            key: ctr.person_logit(p.age_band, p.gender, True) for key, p in index.people.items()
        }
        self._anonymous_logit = ctr.person_logit(None, None, False)
        self._clicks: dict[str, tuple[str, str, str | None]] = {}
        self.log = log or LogWriter(store, after_flush=self._sync_spend)

    # -- the day -------------------------------------------------------------------------------

    def _roll_day(self, day: dt.date) -> None:
        self._day = day
        self._today = [c.spec.live_on(day) for c in self._live]
        self._spent = self.ledger.spend_on(day)
        self.pacer.reset()

    def _sync_spend(self) -> None:
        """Take spend billed by other processes into account (after each log flush)."""
        day = self._day
        if day is None:
            return
        for campaign, spent in self.ledger.spend_on(day).items():
            if spent > self._spent.get(campaign, 0.0):
                self._spent[campaign] = spent

    def spent(self, campaign: str) -> float:
        """Billed spend of a campaign today, as this server knows it."""
        return self._spent.get(campaign, 0.0)

    # -- decisions -----------------------------------------------------------------------------

    def decide(self, request: DecideRequest, now: dt.datetime | None = None) -> Decision | None:
        """The ad for a request, or None when no campaign may show one."""
        at = now or self.clock()
        local = at.astimezone(self.zone)
        with self._lock:
            if local.date() != self._day:
                self._roll_day(local.date())
            return self._decide(request, at, local)

    def _decide(
        self, request: DecideRequest, at: dt.datetime, local: dt.datetime
    ) -> Decision | None:
        self.stats.requests += 1
        index = self.index
        key = index.resolve(request.customer_key, request.customer_id, request.anonymous_id)
        person = index.people.get(key) if key is not None else None
        who = key or request.anonymous_id or request.device_id or request.ip or "unknown"
        base = self.ctr.context_logit(request.placement, local.hour) + (
            self._person_logits.get(key, self._anonymous_logit)
            if key is not None
            else self._anonymous_logit
        )
        interests = person.interests if person is not None else frozenset()
        stamp = at.timestamp()
        best: tuple[float, float, _Live, Any, int] | None = None
        runner_up = 0.0
        candidates = 0
        ctr = self.ctr
        for i in index.campaigns_for(key):
            if not self._today[i]:
                continue
            live = self._live[i]
            if live.placements is not None and request.placement not in live.placements:
                continue
            spec = live.spec
            spent = self._spent.get(live.name, 0.0)
            if spent >= spec.daily_budget:
                continue
            seen = self._seen.get((who, i))
            earlier = 0
            if seen is not None:
                horizon = max(live.window, 86400.0)
                while seen and stamp - seen[0] > horizon:
                    seen.popleft()
                if live.cap is not None:
                    in_window = sum(1 for t in seen if stamp - t <= live.window)
                    if in_window >= live.cap:
                        continue
                earlier = sum(1 for t in seen if stamp - t <= 86400.0)
            if not self.pacer.allow(live.name, spec.daily_budget, spent, spec.max_cpc, local):
                self.stats.throttled += 1
                continue
            candidates += 1
            match = spec.category is not None and spec.category in interests
            if len(live.creatives) > 1 and self._random.random() < self.settings.explore:
                creative = live.creatives[self._random.randrange(len(live.creatives))]
                pctr = ctr.predict_one(base, live.name, creative.name, match, earlier)
            else:
                creative, pctr = None, -1.0
                for option in live.creatives:
                    p = ctr.predict_one(base, live.name, option.name, match, earlier)
                    if p > pctr:
                        creative, pctr = option, p
            ecpm = spec.max_cpc * pctr
            if best is None or ecpm > best[0]:
                if best is not None:
                    runner_up = max(runner_up, best[0])
                best = (ecpm, pctr, live, creative, earlier)
            else:
                runner_up = max(runner_up, ecpm)
        if best is None:
            return None
        ecpm, pctr, live, creative, _ = best
        max_cpc = live.spec.max_cpc
        price = max(self.settings.reserve_cpc, runner_up / pctr if pctr > 0 else 0.0)
        price = min(max_cpc, math.ceil(price * 100 - 1e-9) / 100)
        impression_id = secrets.token_hex(10)
        seen = self._seen.get((who, live.index))
        if seen is None:
            seen = self._seen[(who, live.index)] = deque()
        seen.append(stamp)
        token = self._sign(
            impression_id,
            live.name,
            creative.name,
            request.placement,
            key or "",
            request.device_id or "",
            int(stamp * 1000),
            round(price * 100),
        )
        self.log.impression(
            {
                "impression_id": impression_id,
                "served_at": at,
                "campaign": live.name,
                "creative": creative.name,
                "placement": request.placement,
                "customer_key": key,
                "anonymous_id": request.anonymous_id,
                "device_id": request.device_id,
                "ip": request.ip,
                "price": price,
                "pctr": pctr,
                "ecpm": ecpm * 1000,
                "runner_up_ecpm": runner_up * 1000,
                "candidates": candidates,
                "rendered_at": None,
            }
        )
        self.stats.served += 1
        return Decision(
            impression_id,
            live.name,
            creative.name,
            creative.title,
            creative.body,
            creative.image_url,
            creative.landing_url,
            price,
            pctr,
            candidates,
            token,
        )

    # -- tokens --------------------------------------------------------------------------------

    def _sign(self, *parts: object) -> str:
        payload = "|".join(str(p) for p in parts).encode()
        mac = hmac.new(self.secret, payload, hashlib.sha256).digest()[:16]
        return (
            base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
            + "."
            + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
        )

    def verify(self, token: str | None) -> Impression | None:
        """The impression a token stands for, or None when it is missing or forged."""
        if not token or "." not in token:
            return None
        body, _, mac = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
        except (ValueError, TypeError):
            return None
        expected = hmac.new(self.secret, payload, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(given, expected):
            return None
        parts = payload.decode().split("|")
        if len(parts) != 8:
            return None
        iid, campaign, creative, placement, key, device, served_ms, cents = parts
        return Impression(
            iid,
            campaign,
            creative,
            placement,
            key or None,
            device or None,
            int(served_ms) / 1000,
            int(cents) / 100,
        )

    # -- beacons -------------------------------------------------------------------------------

    def rendered(self, token: str, now: dt.datetime | None = None) -> bool:
        """Record that the placement rendered the ad (viewable impression); False when the
        token is not valid.
        """
        impression = self.verify(token)
        if impression is None:
            return False
        self.log.rendered(impression.impression_id, now or self.clock())
        return True

    def click(
        self,
        token: str | None,
        *,
        ip: str | None = None,
        device_id: str | None = None,
        user_agent: str | None = None,
        now: dt.datetime | None = None,
    ) -> ClickResult:
        """Check a click with the fraud rules and bill it when valid."""
        at = now or self.clock()
        impression = self.verify(token)
        click_id = secrets.token_hex(10)
        live = self._by_name.get(impression.campaign) if impression is not None else None
        facts = ClickFacts(
            at=at.timestamp(),
            ip=ip,
            device_id=device_id,
            campaign=impression.campaign if impression is not None else None,
            impression_id=impression.impression_id if impression is not None else None,
            served_at=impression.served_at if impression is not None else None,
            served_device=impression.device_id if impression is not None else None,
        )
        with self._click_lock:
            reason = self.fraud.check(facts)
        row: dict[str, Any] = {
            "click_id": click_id,
            "clicked_at": at,
            "impression_id": impression.impression_id if impression else None,
            "campaign": impression.campaign if impression else None,
            "creative": impression.creative if impression else None,
            "placement": impression.placement if impression else None,
            "customer_key": impression.customer_key if impression else None,
            "device_id": device_id,
            "ip": ip,
            "user_agent": (user_agent or "")[:300] or None,
            "price": min(impression.price, live.spec.max_cpc) if impression and live else 0.0,
        }
        self.stats.clicks += 1
        if reason is None and (impression is None or live is None):
            reason = InvalidReason.NO_IMPRESSION  # a campaign this server does not run
        if reason is not None:
            self.stats.by_reason[reason.value] = self.stats.by_reason.get(reason.value, 0) + 1
            self.log.click({**row, "valid": False, "reason": reason.value, "charged": 0.0})
            return ClickResult(click_id, False, reason.value, 0.0, row["campaign"], None)
        assert impression is not None and live is not None
        day = dt.datetime.fromtimestamp(impression.served_at, dt.UTC).astimezone(self.zone).date()
        charge = self.ledger.charge(
            {**row, "valid": True, "reason": None}, day=day, budget=live.spec.daily_budget, now=at
        )
        if day == self._day and charge.spent_after > self._spent.get(live.name, 0.0):
            self._spent[live.name] = charge.spent_after
        self.stats.valid_clicks += 1
        self.stats.charged += charge.charged
        if len(self._clicks) > 200_000:
            self._clicks.clear()
        self._clicks[click_id] = (impression.campaign, impression.creative, impression.customer_key)
        landing = next(
            (c.landing_url for c in live.creatives if c.name == impression.creative), None
        )
        return ClickResult(click_id, True, None, charge.charged, impression.campaign, landing)

    def conversion(
        self,
        click_id: str,
        *,
        value: float = 0.0,
        conversion_id: str | None = None,
        now: dt.datetime | None = None,
    ) -> bool:
        """Record a conversion (an order, a sign-up) that followed a valid click of this
        server; ``conversion_id`` (e.g. the order id) makes a repeated report count once.
        """
        known = self._clicks.get(click_id)
        if known is None:
            return False
        campaign, creative, customer_key = known
        self.log.conversion(
            {
                "conversion_id": conversion_id or f"{click_id}:conversion",
                "click_id": click_id,
                "campaign": campaign,
                "creative": creative,
                "customer_key": customer_key,
                "converted_at": now or self.clock(),
                "value": float(value),
            }
        )
        return True

    def close(self) -> None:
        """Write the queued log rows and stop the log thread."""
        self.log.close()
