"""What a marketer writes in ``campaigns/NAME.yml``: ``CampaignSpec`` (pydantic, every problem
reported with file and line).

```yaml
name: credit_card_offer
audience: credit_card_offer          # a segment
channel: sms                         # email, sms, push, webhook, ads, call_centre, direct_mail
purpose: marketing
goal: {event: product_opened, where: {product: credit_card}, within_days: 30}
offer: {name: no_annual_fee, kind: gift, value: 0, coupon_prefix: CC}
variants:
  - {name: a, template: cc_sms_a, share: 0.5}
  - {name: b, template: cc_sms_b, share: 0.5}
cost_per_contact: 0.05
value_per_conversion: 120
budget: 500
selection: {policy: max_profit, uplift_score: cc_uplift, baseline_score: cc_propensity}
holdout: {fraction: 0.1, seed: 7, stratify_by: rfm_segment}
frequency_caps: {per_day: 1, per_week: 3}
quiet_hours: {start: "21:00", end: "08:00"}
send_window: {start: 2024-07-01T09:00:00, end: 2024-07-03T18:00:00}
approval_required: true
```
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from jingzhun.campaigns._offers import OfferSpec
from jingzhun.core import SpecError, SpecProblem, parse_model
from jingzhun.core._yaml import load_yaml

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class Channel(StrEnum):
    """Where a message goes."""

    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    WEBHOOK = "webhook"
    ADS = "ads"
    CALL_CENTRE = "call_centre"
    DIRECT_MAIL = "direct_mail"


class Purpose(StrEnum):
    """What a person consents to (PIPL's separate consent for sensitive data is its own)."""

    MARKETING = "marketing"
    PERSONALISATION = "personalisation"
    ANALYTICS = "analytics"
    THIRD_PARTY_SHARING = "third_party_sharing"
    SENSITIVE_DATA = "sensitive_data"


class Policy(StrEnum):
    """How the eligible customers are chosen."""

    EVERYONE = "everyone"
    TOP_K = "top_k"  # by a score (propensity)
    TOP_UPLIFT = "top_uplift"  # by predicted uplift
    MAX_PROFIT = "max_profit"  # expected incremental profit, under the budget


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Variant(_Model):
    """A content variant and its share of the treated customers."""

    name: str
    template: str | None = None
    share: float = Field(gt=0, le=1)


class Selection(_Model):
    """The selection policy and the scores it reads (names in the ``scores`` table)."""

    policy: Policy = Policy.EVERYONE
    score: str | None = None  # top_k: e.g. a propensity score
    uplift_score: str | None = None  # top_uplift and max_profit
    baseline_score: str | None = None  # expected conversion without contact
    k: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _scores_present(self) -> Selection:
        if self.policy is Policy.TOP_K and not self.score:
            raise ValueError("policy top_k needs 'score' (a score name, e.g. propensity)")
        if self.policy in (Policy.TOP_UPLIFT, Policy.MAX_PROFIT) and not self.uplift_score:
            raise ValueError(f"policy {self.policy.value} needs 'uplift_score'")
        return self


class Holdout(_Model):
    """A random control group, seeded and recorded; stratified by a profile column if given."""

    fraction: float = Field(default=0.1, ge=0, lt=1)
    seed: int = 0
    stratify_by: str | None = None


class FrequencyCaps(_Model):
    """Contacts per customer across all campaigns (per channel when ``per_channel``)."""

    per_day: int | None = Field(default=None, ge=1)
    per_week: int | None = Field(default=None, ge=1)
    per_channel: bool = True


class QuietHours(_Model):
    """No message between ``start`` and ``end`` in the customer's local time."""

    start: str = "21:00"
    end: str = "08:00"

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _TIME.match(value):
            raise ValueError(f"'{value}' is not a time like 21:00")
        return value

    def times(self) -> tuple[dt.time, dt.time]:
        """Start and end as times."""
        return dt.time.fromisoformat(self.start), dt.time.fromisoformat(self.end)


class SendWindow(_Model):
    """When messages may go out (in the project's time zone when naive)."""

    start: dt.datetime
    end: dt.datetime

    @model_validator(mode="after")
    def _ordered(self) -> SendWindow:
        if self.end <= self.start:
            raise ValueError(f"send window ends ({self.end}) before it starts ({self.start})")
        return self


class Goal(_Model):
    """What counts as a conversion: an event (with property filters) within days of contact."""

    event: str = "order"
    where: dict[str, Any] = Field(default_factory=dict)
    within_days: int = Field(default=14, ge=1, le=365)


class Pilot(_Model):
    """Send the variants to a test share first; roll the winner out to the rest later."""

    share: float = Field(gt=0, lt=1)
    metric: str = "conversion"


class CampaignSpec(_Model):
    """One campaign as written."""

    name: str
    description: str = ""
    audience: str
    channel: Channel
    purpose: Purpose = Purpose.MARKETING
    goal: Goal = Goal()
    offer: OfferSpec | None = None
    variants: list[Variant] = Field(default_factory=lambda: [Variant(name="default", share=1.0)])
    cost_per_contact: float = Field(default=0.0, ge=0)
    value_per_conversion: float = Field(default=0.0, ge=0)
    budget: float | None = Field(default=None, gt=0)
    expected_conversion_rate: float = Field(default=0.02, ge=0, le=1)
    expected_uplift: float = Field(default=0.01, ge=-1, le=1)
    selection: Selection = Selection()
    holdout: Holdout = Holdout()
    frequency_caps: FrequencyCaps = FrequencyCaps()
    quiet_hours: QuietHours | None = None
    send_window: SendWindow | None = None
    approval_required: bool = False
    pilot: Pilot | None = None

    @field_validator("name", "audience")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"'{value}' must be lower-case letters, digits and _")
        return value

    @model_validator(mode="after")
    def _shares(self) -> CampaignSpec:
        total = sum(v.share for v in self.variants)
        if abs(total - 1) > 1e-9:
            raise ValueError(f"variant shares add up to {total:g}, not 1")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names repeat: {names}")
        return self

    def fingerprint(self) -> str:
        """A hash of the spec as validated (a plan records which spec it was made from)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def load_campaign(path: Path) -> CampaignSpec:
    """One campaign file; every problem at once as a ``SpecError`` with file and line."""
    doc = load_yaml(path)
    data = doc.data if isinstance(doc.data, dict) else {}
    if isinstance(doc.data, dict) and "name" not in data:
        data["name"] = path.stem
    spec, problems = parse_model(CampaignSpec, doc)
    if problems or spec is None:
        raise SpecError(problems or [SpecProblem(path, 1, "", "not a campaign")])
    return spec


def load_campaigns(folder: Path) -> dict[str, CampaignSpec]:
    """Every ``campaigns/*.yml``; names must be unique."""
    specs: dict[str, CampaignSpec] = {}
    problems: list[SpecProblem] = []
    if not folder.is_dir():
        return specs
    for path in sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]):
        try:
            spec = load_campaign(path)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        if spec.name in specs:
            problems.append(SpecProblem(path, 1, "name", f"'{spec.name}' is already defined"))
        specs[spec.name] = spec
    if problems:
        raise SpecError(problems)
    return specs
