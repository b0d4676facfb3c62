"""``ProfileSettings``: the knobs of the profile build, with their defaults and sources.

They are read from ``tags/_settings.yml`` in a project (``load_profile_settings``) or built in
Python. Every window is in days and every decay is a half-life in days, so a setting reads the
way a marketer says it ("active = ordered within 90 days").
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jingzhun.core import SpecError, SpecProblem
from jingzhun.core._yaml import LocatedYaml, load_yaml

SETTINGS_FILE = "_settings.yml"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

# Every cell of the R x FM grid a segment map must cover: R in 1..5, FM = (F + M) / 2 in
# steps of a half.
RFM_CELLS: tuple[tuple[int, float], ...] = tuple(
    (r, fm / 2) for r in range(1, 6) for fm in range(2, 11)
)


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RfmSegment(_Settings):
    """One named RFM segment: the R score range and the FM = (F + M) / 2 range, inclusive."""

    name: str
    r: tuple[int, int]
    fm: tuple[float, float]

    @field_validator("r")
    @classmethod
    def _r_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if not 1 <= low <= high <= 5:
            raise ValueError("r must be [low, high] with 1 <= low <= high <= 5")
        return value

    @field_validator("fm")
    @classmethod
    def _fm_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 1 <= low <= high <= 5:
            raise ValueError("fm must be [low, high] with 1 <= low <= high <= 5")
        return value

    def contains(self, r: int, fm: float) -> bool:
        """Whether a customer with these scores falls in the segment."""
        return self.r[0] <= r <= self.r[1] and self.fm[0] <= fm <= self.fm[1]


def _segment(name: str, r: tuple[int, int], fm: tuple[float, float]) -> RfmSegment:
    return RfmSegment(name=name, r=r, fm=fm)


# The eleven named segments of the widely used R x average(F, M) grid: Putler's table in "RFM
# Analysis For Successful Customer Segmentation" (https://www.putler.com/rfm-analysis/) gives
# each segment an R range and an F&M range on 0-5 scores (0 is read as 1 here); churned.io's
# "RFM-Model" page (docs.churned.io, rfv-model-segment-best-practices/rfm-model) reproduces
# eight of them: Champion 4-5 / 4-5, Loyalist 2-5 / 3-5, Potential Loyalist 3-5 / 1-3, New
# 4-5 / 0-1, Need Attention 2-3 / 2-3, At Risk 0-2 / 2-5, Hibernating 1-2 / 1-2, Lost 0-2 /
# 0-2. The ranges overlap and, taken in the table's order, leave New, Promising, Can't lose
# and Lost empty. Here the first match in list order wins and the narrow boxes come before the
# wide ones that swallowed them: Can't lose (R 1, FM 4-5), New (R 4-5, FM 1), Promising (R 3,
# FM 1; R 4 with FM 1 is New), Lost (R 1, FM 1) before Hibernating. Every other cell gets the
# name Putler's order gives it, so each cell of the grid has exactly one reachable name:
#
#   R \ FM   1      1.5    2      2.5    3      3.5    4      4.5    5
#   5        New    PotL   PotL   PotL   Loyal  Loyal  Champ  Champ  Champ
#   4        New    PotL   PotL   PotL   Loyal  Loyal  Champ  Champ  Champ
#   3        Prom   PotL   PotL   PotL   Loyal  Loyal  Loyal  Loyal  Loyal
#   2        Sleep  Sleep  NeedA  NeedA  Loyal  Loyal  Loyal  Loyal  Loyal
#   1        Lost   Hib    AtRisk AtRisk AtRisk AtRisk Can't  Can't  Can't
DEFAULT_RFM_SEGMENTS: tuple[RfmSegment, ...] = (
    _segment("Champions", (4, 5), (4, 5)),
    _segment("Can't lose", (1, 1), (4, 5)),
    _segment("New", (4, 5), (1, 1)),
    _segment("Promising", (3, 3), (1, 1)),
    _segment("Loyal", (2, 5), (3, 5)),
    _segment("Potential loyalist", (3, 5), (1, 3)),
    _segment("Need attention", (2, 3), (2, 3)),
    _segment("About to sleep", (2, 3), (1, 2)),
    _segment("Lost", (1, 1), (1, 1)),
    _segment("At risk", (1, 2), (2, 5)),
    _segment("Hibernating", (1, 2), (1, 2)),
)


class ValueTierSettings(_Settings):
    """Value tiers from the monetary quintile (``m_score``) and recency.

    A buyer whose last order is more than ``dormant_after_days`` old is ``dormant``; otherwise
    ``high value`` from ``high_value_min_m_score``, ``potential`` from
    ``potential_min_m_score`` (or with an R score of at least ``potential_min_r_score``), and
    ``general`` for the rest. Customers who never bought have no tier.
    """

    high_value_min_m_score: int = Field(default=5, ge=1, le=5)
    potential_min_m_score: int = Field(default=3, ge=1, le=5)
    potential_min_r_score: int = Field(default=5, ge=1, le=5)
    dormant_after_days: int = Field(default=180, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> ValueTierSettings:
        if self.potential_min_m_score > self.high_value_min_m_score:
            raise ValueError("potential_min_m_score must not exceed high_value_min_m_score")
        return self


class LifecycleSettings(_Settings):
    """Lifecycle windows in days, counted back from ``as_of`` (0 = an order on ``as_of``).

    ``new``: first order at most ``new_days`` ago; ``reactivated``: an order at most
    ``active_days`` ago that came more than ``reactivation_gap_days`` after the order before
    it; ``active``: last order at most ``active_days`` ago; ``at risk``: at most
    ``at_risk_days``; ``dormant``: at most ``dormant_days``; ``churned``: longer ago;
    ``prospect``: no order yet. The first that applies wins, in that order.
    """

    new_days: int = Field(default=30, ge=0)
    active_days: int = Field(default=90, ge=0)
    at_risk_days: int = Field(default=180, ge=0)
    dormant_days: int = Field(default=365, ge=0)
    reactivation_gap_days: int = Field(default=180, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> LifecycleSettings:
        if not self.new_days <= self.active_days <= self.at_risk_days <= self.dormant_days:
            raise ValueError(
                "windows must grow: new_days <= active_days <= at_risk_days <= dormant_days"
            )
        return self


class LeadRule(_Settings):
    """Points for each event of a type, halved every ``half_life_days`` of the event's age.

    ``max_age_days`` leaves out events older than that (no limit when absent).
    """

    event: str = Field(min_length=1)
    points: float
    half_life_days: float = Field(default=30, gt=0)
    max_age_days: int | None = Field(default=None, ge=0)


DEFAULT_LEAD_RULES: tuple[LeadRule, ...] = (
    LeadRule(event="checkout_started", points=10, half_life_days=14),
    LeadRule(event="added_to_cart", points=5, half_life_days=14),
    LeadRule(event="email_clicked", points=3, half_life_days=30),
    LeadRule(event="product_viewed", points=1, half_life_days=7),
)

DEFAULT_HISTORY_COLUMNS: tuple[str, ...] = (
    "rfm_segment",
    "r_score",
    "f_score",
    "m_score",
    "value_tier",
    "lifecycle_stage",
)


class ProfileSettings(_Settings):
    """Everything the profile build can be told; every field has a working default.

    Parameters
    ----------
    source_priority
        Source names, most trusted first. An attribute (email, phone, names, birth date,
        gender, city, country, consents) comes from the most trusted source that has it, then
        from the most recently loaded record. Sources not listed come after those listed.
    include_late_loads
        ``False`` (default): a build ``as_of`` D sees only rows loaded by the end of D, as a
        build run on D would have. ``True``: rows loaded later count too, which is what a
        backfill of history loaded today needs (the event and order dates still apply).
    rfm_segments
        The segment map; the first segment whose R and FM ranges hold wins. It must cover
        every cell of the R (1-5) x FM (1-5, steps of 0.5) grid.
    activity_half_life_days, activity_half_score_events, activity_ignored_events
        Activity score = 100 x (1 - 0.5 ^ (w / half_score)), where w is the number of events
        each weighted 0.5 ^ (age in days / half-life); ignored event types do not count.
    interest_half_life_days, interest_weights
        Interest affinity per category: each bought line (key ``order``) and each event of a
        listed type about a product adds its weight, halved every half-life.
    lead_score
        Point rules for the lead score.
    age_bands
        Lower bounds of the age bands after the first ("<18" below 18 with the default).
    history_columns
        Profile columns whose values are kept in ``tag_history`` (custom tags always are).
    """

    source_priority: list[str] = Field(default_factory=list)
    include_late_loads: bool = False
    rfm_segments: list[RfmSegment] = Field(default_factory=lambda: list(DEFAULT_RFM_SEGMENTS))
    value_tiers: ValueTierSettings = Field(default_factory=ValueTierSettings)
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    activity_half_life_days: float = Field(default=30, gt=0)
    activity_half_score_events: float = Field(default=10, gt=0)
    activity_ignored_events: list[str] = Field(default_factory=lambda: ["identify", "alias"])
    interest_half_life_days: float = Field(default=90, gt=0)
    interest_weights: dict[str, float] = Field(
        default_factory=lambda: {"order": 5.0, "added_to_cart": 2.0, "product_viewed": 1.0}
    )
    lead_score: list[LeadRule] = Field(default_factory=lambda: list(DEFAULT_LEAD_RULES))
    age_bands: list[int] = Field(default_factory=lambda: [18, 25, 35, 45, 55, 65])
    history_columns: list[str] = Field(default_factory=lambda: list(DEFAULT_HISTORY_COLUMNS))

    @field_validator("rfm_segments")
    @classmethod
    def _covers_grid(cls, segments: list[RfmSegment]) -> list[RfmSegment]:
        if not segments:
            raise ValueError("at least one segment is needed")
        names = [s.name for s in segments]
        if len(set(names)) != len(names):
            raise ValueError("segment names must be unique")
        missing = [
            f"R {r} / FM {fm:g}"
            for r, fm in RFM_CELLS
            if not any(s.contains(r, fm) for s in segments)
        ]
        if missing:
            raise ValueError(f"no segment covers {', '.join(missing)}")
        return segments

    @field_validator("age_bands")
    @classmethod
    def _increasing(cls, bands: list[int]) -> list[int]:
        if not bands or any(b <= a for a, b in itertools.pairwise(bands)):
            raise ValueError("age_bands must be a non-empty list of increasing ages")
        if bands[0] <= 0:
            raise ValueError("age_bands must be positive ages")
        return bands

    @field_validator("history_columns")
    @classmethod
    def _history_names(cls, columns: list[str]) -> list[str]:
        for name in columns:
            if not _NAME.match(name):
                raise ValueError(f"'{name}' is not a column name")
        return columns

    def segment_of(self, r: int, fm: float) -> str:
        """The segment name for an R score and an FM score (first match in list order)."""
        for segment in self.rfm_segments:
            if segment.contains(r, fm):
                return segment.name
        raise ValueError(f"no segment for R {r}, FM {fm}")  # the validator makes this unreachable


def _problems(doc: LocatedYaml, exc: ValidationError) -> list[SpecProblem]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "is not a known setting here"
        name = ".".join(str(p) for p in loc)
        problems.append(SpecProblem(doc.path, doc.line_of(loc), name, message))
    return problems


def load_profile_settings(path: Path) -> ProfileSettings:
    """Read profile settings from a YAML file; a missing file gives the defaults.

    Every problem is reported at once as a ``SpecError`` naming file, line and setting.
    """
    if not path.exists():
        return ProfileSettings()
    doc = load_yaml(path)
    data: Any = doc.data
    if data == {}:
        return ProfileSettings()
    if not isinstance(data, dict):
        raise SpecError([SpecProblem(path, 1, "", "must be a YAML mapping of setting: value")])
    try:
        return ProfileSettings.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_problems(doc, exc)) from None
