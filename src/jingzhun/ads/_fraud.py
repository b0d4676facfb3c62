"""Click-fraud scoring: rules at click time, an anomaly model over the day's log.

**Rules** (``FraudRules.check``, called for every click before it is billed; the first that
fires is the click's reason):

- ``no_impression``: no valid signed impression token, or one served to another device;
- ``data_centre``: from a listed data-centre range (``data_centre_ranges``);
- ``too_fast``: less than ``min_click_seconds`` after its impression (or before it);
- ``stale``: more than ``max_click_hours`` after its impression;
- ``repeated``: a second click on the same impression, or the same device's click on the same
  campaign within ``repeat_seconds``;
- ``ip_flood`` / ``device_flood``: past ``max_clicks_per_ip_per_minute`` /
  ``max_clicks_per_device_per_minute`` in the last 60 s; the IP or device then stays blocked
  for ``block_seconds``.

**Anomaly model** (``anomalous_sources``): an ``IsolationForest`` over per-source features
(a source is a device, else an IP): impressions, clicks, CTR, the most clicks in one minute,
median and spread of the impression-to-click delay, distinct campaigns and IPs, conversions
per click. Sources scored in the most anomalous ``contamination`` share with a CTR far above
the log's are flagged; their clicks become ``anomaly``. Found after billing, such clicks are
credited back in the ledger (``AdLedger.credit``).
"""

from __future__ import annotations

import bisect
import ipaddress
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from jingzhun.core import SpecError, SpecProblem, parse_model
from jingzhun.core._yaml import load_yaml

FRAUD_FILE = "_fraud.yml"


class InvalidReason(StrEnum):
    """Why a click is not billed."""

    NO_IMPRESSION = "no_impression"
    DATA_CENTRE = "data_centre"
    TOO_FAST = "too_fast"
    STALE = "stale"
    REPEATED = "repeated"
    IP_FLOOD = "ip_flood"
    DEVICE_FLOOD = "device_flood"
    ANOMALY = "anomaly"


class FraudSettings(BaseModel):
    """Thresholds of the rules and the model (``ads/_fraud.yml``; every key optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_clicks_per_ip_per_minute: int = Field(default=6, ge=1)
    max_clicks_per_device_per_minute: int = Field(default=3, ge=1)
    block_seconds: float = Field(default=600.0, ge=0)  # an IP or device that flooded, blocked
    repeat_seconds: float = Field(default=600.0, gt=0)
    min_click_seconds: float = Field(default=1.0, ge=0)
    max_click_hours: float = Field(default=24.0, gt=0)
    data_centre_ranges: list[str] = Field(default_factory=list)
    contamination: float = Field(default=0.01, gt=0, lt=0.5)
    min_ctr_ratio: float = Field(default=5.0, ge=1)  # flagged sources' CTR vs the log's
    seed: int = 0

    @field_validator("data_centre_ranges")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"'{text}' is not an IP range like 203.0.113.0/24") from None
        return value


def load_fraud_settings(folder: Path) -> FraudSettings:
    """``ads/_fraud.yml`` when present, else the defaults; problems name the file and line."""
    path = folder / FRAUD_FILE
    if not path.exists():
        return FraudSettings()
    doc = load_yaml(path)
    settings, problems = parse_model(FraudSettings, doc)
    if problems or settings is None:
        raise SpecError(problems or [SpecProblem(path, 1, "", "not fraud settings")])
    return settings


class IpRanges:
    """Listed IP ranges, looked up by bisection."""

    def __init__(self, ranges: Iterable[str]) -> None:
        spans: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for text in ranges:
            network = ipaddress.ip_network(text, strict=False)
            spans[network.version].append(
                (int(network.network_address), int(network.broadcast_address))
            )
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for version, items in spans.items():
            items.sort()
            self._starts[version] = [a for a, _ in items]
            self._ends[version] = [b for _, b in items]

    def __contains__(self, ip: object) -> bool:
        try:
            address = ipaddress.ip_address(str(ip))
        except ValueError:
            return False
        starts = self._starts[address.version]
        value = int(address)
        i = bisect.bisect_right(starts, value) - 1
        return i >= 0 and value <= self._ends[address.version][i]


@dataclass(frozen=True, slots=True)
class ClickFacts:
    """What the rules see of one click."""

    at: float  # seconds since the epoch
    ip: str | None
    device_id: str | None
    campaign: str | None
    impression_id: str | None  # None: no valid impression token
    served_at: float | None
    served_device: str | None


@dataclass
class FraudRules:
    """The click-time rules with their sliding-window state (one instance per server)."""

    settings: FraudSettings = field(default_factory=FraudSettings)

    def __post_init__(self) -> None:
        self.ranges = IpRanges(self.settings.data_centre_ranges)
        self._by_ip: dict[str, deque[float]] = {}
        self._by_device: dict[str, deque[float]] = {}
        self._clicked: dict[str, float] = {}  # impression id -> first click
        self._last: dict[tuple[str, str], float] = {}  # (device, campaign) -> last click
        self._blocked: dict[str, tuple[float, InvalidReason]] = {}  # ip or device -> until
        self._pruned = 0.0

    def check(self, click: ClickFacts) -> InvalidReason | None:
        """The click's reason to be refused, or None; every click updates the counters."""
        s = self.settings
        now = click.at
        ip_count = _count(self._by_ip, click.ip, now) if click.ip else 0
        device_count = _count(self._by_device, click.device_id, now) if click.device_id else 0
        repeated = False
        if click.impression_id is not None:
            repeated = click.impression_id in self._clicked
            self._clicked.setdefault(click.impression_id, now)
        if click.device_id and click.campaign:
            key = (click.device_id, click.campaign)
            last = self._last.get(key)
            repeated = repeated or (last is not None and now - last < s.repeat_seconds)
            self._last[key] = now
        if now - self._pruned > 600:
            self._prune(now)
        if click.impression_id is None or click.served_at is None:
            return InvalidReason.NO_IMPRESSION
        if click.served_device and click.device_id and click.served_device != click.device_id:
            return InvalidReason.NO_IMPRESSION
        if click.ip and click.ip in self.ranges:
            return InvalidReason.DATA_CENTRE
        delay = now - click.served_at
        if delay < s.min_click_seconds:
            return InvalidReason.TOO_FAST
        if delay > s.max_click_hours * 3600:
            return InvalidReason.STALE
        if repeated:
            return InvalidReason.REPEATED
        if ip_count > s.max_clicks_per_ip_per_minute and click.ip:
            self._blocked["ip:" + click.ip] = (now + s.block_seconds, InvalidReason.IP_FLOOD)
        if device_count > s.max_clicks_per_device_per_minute and click.device_id:
            self._blocked["device:" + click.device_id] = (
                now + s.block_seconds,
                InvalidReason.DEVICE_FLOOD,
            )
        for source in ("ip:" + (click.ip or ""), "device:" + (click.device_id or "")):
            blocked = self._blocked.get(source)
            if blocked is not None and now <= blocked[0]:
                return blocked[1]
        return None

    def _prune(self, now: float) -> None:
        self._pruned = now
        keep = self.settings.max_click_hours * 3600
        self._clicked = {k: t for k, t in self._clicked.items() if now - t <= keep}
        window = self.settings.repeat_seconds
        self._last = {k: t for k, t in self._last.items() if now - t < window}
        self._blocked = {k: v for k, v in self._blocked.items() if v[0] >= now}
        for table in (self._by_ip, self._by_device):
            for key in [k for k, q in table.items() if not q or now - q[-1] > 60]:
                del table[key]


def _count(table: dict[str, deque[float]], key: str, now: float) -> int:
    """Clicks of ``key`` in the 60 s up to ``now``, this one included."""
    times = table.get(key)
    if times is None:
        times = table[key] = deque()
    times.append(now)
    while times and now - times[0] >= 60:
        times.popleft()
    return len(times)


# -- the anomaly model -----------------------------------------------------------------------

SOURCE_FEATURES = (
    "log_impressions",
    "log_clicks",
    "ctr",
    "max_clicks_minute",
    "log_median_delay",
    "delay_spread",
    "campaign_share",
    "ips",
    "conversions_per_click",
)


def source_features(
    impressions: pd.DataFrame, clicks: pd.DataFrame, conversions: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per source (device, else IP) that was served or clicked, with
    ``SOURCE_FEATURES``. Sources that never click are most of the rows: they are what normal
    looks like, so a small group of heavy clickers stands out.
    """
    columns = ["source", "clicks", "impressions", *SOURCE_FEATURES]
    if len(clicks) == 0 and len(impressions) == 0:
        return pd.DataFrame(columns=columns)
    c = clicks.copy()
    c["source"] = c["device_id"].fillna("ip:" + c["ip"].fillna("unknown"))
    i = impressions.copy()
    i["source"] = i["device_id"].fillna("ip:" + i["ip"].fillna("unknown"))
    served = i.set_index("impression_id")["served_at"]
    c["delay"] = (c["clicked_at"] - c["impression_id"].map(served)).dt.total_seconds()
    c["minute"] = c["clicked_at"].dt.floor("min")
    per_minute = c.groupby(["source", "minute"]).size().groupby("source").max()
    converted = set() if conversions is None or len(conversions) == 0 else set(conversions.click_id)
    c["converted"] = c["click_id"].isin(converted)
    grouped = c.groupby("source")
    out = pd.DataFrame(
        {
            "clicks": grouped.size(),
            "campaigns": grouped["campaign"].nunique(),
            "median_delay": grouped["delay"].median(),
            "delay_std": grouped["delay"].std(),
            "delay_mean": grouped["delay"].mean(),
            "conversions": grouped["converted"].sum(),
        }
    )
    served_by = i.groupby("source")
    everyone = out.index.union(pd.Index(served_by.size().index))
    out = out.reindex(everyone)
    out["impressions"] = served_by.size().reindex(everyone).fillna(0)
    ips = pd.concat([c[["source", "ip"]], i[["source", "ip"]]]).groupby("source")["ip"].nunique()
    out["ips"] = ips.reindex(everyone).fillna(0)
    out["clicks"] = out["clicks"].fillna(0)
    out["max_clicks_minute"] = per_minute.reindex(everyone).fillna(0)
    out["log_impressions"] = np.log1p(out["impressions"])
    out["log_clicks"] = np.log1p(out["clicks"])
    out["ctr"] = out["clicks"] / out["impressions"].clip(lower=1)
    out["log_median_delay"] = np.log1p(out["median_delay"].clip(lower=0).fillna(0))
    out["delay_spread"] = (out["delay_std"] / out["delay_mean"].abs().clip(lower=1)).fillna(0)
    out["campaign_share"] = (out["campaigns"] / out["clicks"].clip(lower=1)).fillna(0)
    out["conversions_per_click"] = out["conversions"].fillna(0) / out["clicks"].clip(lower=1)
    out.index.name = "source"
    return out.reset_index()[columns]


def anomalous_sources(features: pd.DataFrame, settings: FraudSettings) -> pd.DataFrame:
    """``features`` with ``score`` (lower = more anomalous) and ``flagged``."""
    from sklearn.ensemble import IsolationForest

    out = features.copy()
    if len(out) < 20:
        out["score"] = 0.0
        out["flagged"] = False
        return out
    x = out[list(SOURCE_FEATURES)].to_numpy(dtype=float)
    forest = IsolationForest(
        n_estimators=200, contamination=settings.contamination, random_state=settings.seed
    )
    forest.fit(x)
    out["score"] = forest.score_samples(x)
    anomalous = forest.predict(x) == -1
    # An isolated source is suspicious for clicking, not for being rare: keep the ones whose
    # CTR is far above the log's (a heavy but ordinary reader is left alone).
    overall = out["clicks"].sum() / max(out["impressions"].sum(), 1.0)
    out["flagged"] = (
        anomalous & (out["ctr"] >= settings.min_ctr_ratio * overall) & (out["clicks"] >= 3)
    )
    return out


@dataclass
class FraudResult:
    """Every click with its rule reason, its model flag and the final verdict."""

    clicks: pd.DataFrame  # click_id, reason (rules), anomaly, invalid, final_reason, charged
    sources: pd.DataFrame

    def summary(self) -> dict[str, Any]:
        """Counts by reason and what was billed for invalid clicks."""
        c = self.clicks
        reasons = c.loc[c.invalid, "final_reason"].value_counts().to_dict()
        return {
            "clicks": len(c),
            "invalid": int(c.invalid.sum()),
            "by_reason": {str(k): int(v) for k, v in sorted(reasons.items())},
            "flagged_sources": int(self.sources["flagged"].sum()) if len(self.sources) else 0,
            "to_credit": int((c.anomaly & (c.charged > 0) & c.reason.isna()).sum()),
        }


def detect_fraud(
    impressions: pd.DataFrame,
    clicks: pd.DataFrame,
    conversions: pd.DataFrame | None,
    settings: FraudSettings,
) -> FraudResult:
    """The rules' reasons already on the log plus the anomaly model's flags. The model looks
    at the clicks the rules let through (sources the rules caught would only crowd out the
    subtler ones) and at every impression.
    """
    passed = clicks[clicks["reason"].isna()]
    features = source_features(impressions, passed, conversions)
    sources = anomalous_sources(features, settings)
    c = clicks[["click_id", "device_id", "ip", "campaign", "reason", "charged"]].copy()
    c["source"] = c["device_id"].fillna("ip:" + c["ip"].fillna("unknown"))
    flagged = set(sources.loc[sources["flagged"], "source"]) if len(sources) else set()
    c["anomaly"] = c["source"].isin(flagged)
    c["reason"] = c["reason"].where(c["reason"].notna(), None)
    c["invalid"] = c["reason"].notna() | c["anomaly"]
    model = pd.Series(InvalidReason.ANOMALY.value, index=c.index).where(c["anomaly"])
    c["final_reason"] = c["reason"].fillna(model)
    return FraudResult(c, sources)


def fraud_scores(result: FraudResult, truth: pd.DataFrame) -> dict[str, Any]:
    """Precision and recall against the simulation's answer key (``click_id``, ``kind``:
    ``human`` or a bot kind): per bot kind (recall), per detector (precision) and overall.
    """
    c = result.clicks.merge(truth[["click_id", "kind"]], on="click_id", how="left")
    c["kind"] = c["kind"].fillna("human")
    bot = c["kind"] != "human"
    flagged = c["invalid"]
    true_positive = int((bot & flagged).sum())
    out: dict[str, Any] = {
        "clicks": len(c),
        "bot_clicks": int(bot.sum()),
        "flagged": int(flagged.sum()),
        "precision": true_positive / max(int(flagged.sum()), 1),
        "recall": true_positive / max(int(bot.sum()), 1),
        "human_clicks_flagged": int((~bot & flagged).sum()),
        "by_kind": {},
        "by_detector": {},
    }
    for kind, rows in c[bot].groupby("kind"):
        out["by_kind"][str(kind)] = {
            "clicks": len(rows),
            "flagged": int(rows["invalid"].sum()),
            "recall": float(rows["invalid"].mean()),
        }
    for reason, rows in c[flagged].groupby("final_reason"):
        out["by_detector"][str(reason)] = {
            "flagged": len(rows),
            "bots": int((rows["kind"] != "human").sum()),
            "precision": float((rows["kind"] != "human").mean()),
        }
    return out
