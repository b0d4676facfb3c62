"""What an advertiser writes in ``ads/NAME.yml``: ``AdCampaignSpec`` (pydantic, every problem
reported with file and line), and its targeting turned into a segment rule.

```yaml
name: winter_skincare
description: Moisturiser for women 25-44 in the big cities who like beauty products
placements: [app_home, site_sidebar]     # where it may run; default: every placement
category: beauty                          # what it sells: lifts pCTR for people interested in it
targeting:
  region: [London, Manchester, GB]        # city or country
  age: {min: 25, max: 44}
  gender: [F]
  interests: [beauty]                     # any of interest_1..3
  rule: "value_tier != 'dormant'"         # any segment rule: tags, scores, behaviour
max_cpc: 0.80                             # the most a click may cost
daily_budget: 40
flight: {start: 2011-12-01, end: 2011-12-31}
frequency_cap: {impressions: 3, per_hours: 24}
creatives:
  - {name: serum_a, title: Winter glow, body: 20% off serums, landing_url: https://shop.example/s}
  - {name: serum_b, title: Dry skin?, body: Our best moisturiser, landing_url: https://shop.example/m}
```
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from jingzhun.core import SpecError, SpecProblem, parse_model
from jingzhun.core._yaml import LocatedYaml, load_yaml
from jingzhun.segments import SegmentSpec, parse_segment

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
ADS_FOLDER = "ads"

# The seed's targeting fields and the profile columns they read. Fields the generated shop
# does not have (education, occupation, marital status) read a profile column or custom tag of
# the same name; compiling a campaign that names one the project lacks is an error with its line.
SEED_FIELDS = {
    "region": ("city", "country"),
    "age": ("age",),
    "gender": ("gender",),
    "interests": ("interest_1", "interest_2", "interest_3"),
    "education": ("education",),
    "occupation": ("occupation",),
    "marital_status": ("marital_status",),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Creative(_Model):
    """One ad: what it says and where a click lands."""

    name: str
    title: str
    body: str = ""
    image_url: str | None = None
    landing_url: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"'{value}' must be lower-case letters, digits and _")
        return value

    @field_validator("landing_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"'{value}' is not an http(s) URL")
        return value


class AgeRange(_Model):
    """Whole years, both ends included."""

    min: int | None = Field(default=None, ge=0, le=120)
    max: int | None = Field(default=None, ge=0, le=120)

    @model_validator(mode="before")
    @classmethod
    def _pair(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and len(value) == 2:
            return {"min": value[0], "max": value[1]}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> AgeRange:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.max < self.min:
            raise ValueError(f"max {self.max} is below min {self.min}")
        return self


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str | int | float) else value


class Targeting(_Model):
    """Whom the ad is shown to. Every criterion given must hold; none at all means everyone,
    anonymous visitors included.
    """

    region: list[str] | None = None
    age: AgeRange | None = None
    gender: list[str] | None = None
    education: list[str] | None = None
    occupation: list[str] | None = None
    marital_status: list[str] | None = None
    interests: list[str] | None = None
    segment: str | None = None
    rule: Any = None

    _lists = field_validator(
        "region", "gender", "education", "occupation", "marital_status", "interests", mode="before"
    )(_as_list)

    def is_everyone(self) -> bool:
        """No criterion: every visitor, known or not."""
        return all(getattr(self, name) is None for name in type(self).model_fields)


class FrequencyCap(_Model):
    """At most ``impressions`` of the campaign per person in any ``per_hours`` hours."""

    impressions: int = Field(ge=1)
    per_hours: int = Field(default=24, ge=1, le=24 * 31)


class Flight(_Model):
    """The days the campaign runs, both included (project time zone)."""

    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Flight:
        if self.end < self.start:
            raise ValueError(f"flight ends ({self.end}) before it starts ({self.start})")
        return self


class AdCampaignSpec(_Model):
    """One ad campaign as written."""

    name: str
    description: str = ""
    advertiser: str = ""
    category: str | None = None
    placements: list[str] | None = None
    targeting: Targeting = Targeting()
    max_cpc: float = Field(gt=0)
    daily_budget: float = Field(gt=0)
    flight: Flight
    frequency_cap: FrequencyCap | None = None
    creatives: list[Creative] = Field(min_length=1)
    paused: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"'{value}' must be lower-case letters, digits and _")
        return value

    @model_validator(mode="after")
    def _checks(self) -> AdCampaignSpec:
        names = [c.name for c in self.creatives]
        if len(set(names)) != len(names):
            raise ValueError(f"creative names repeat: {names}")
        if self.max_cpc > self.daily_budget:
            raise ValueError(
                f"max_cpc {self.max_cpc:g} is above the daily budget {self.daily_budget:g}: "
                "one click would spend the day"
            )
        return self

    def live_on(self, day: dt.date) -> bool:
        """Whether the campaign runs on ``day``."""
        return not self.paused and self.flight.start <= day <= self.flight.end


class LoadedCampaign:
    """A validated campaign with where it came from (for errors while compiling)."""

    def __init__(self, spec: AdCampaignSpec, doc: LocatedYaml | None) -> None:
        self.spec = spec
        self.doc = doc

    @property
    def path(self) -> Path:
        """The campaign's file (``<ads>`` when built in code)."""
        return self.doc.path if self.doc is not None else Path("<ads>")


def parse_ad_campaign(doc: LocatedYaml) -> LoadedCampaign:
    """One campaign from a located YAML document; every problem at once as a ``SpecError``."""
    data = doc.data if isinstance(doc.data, dict) else {}
    if isinstance(doc.data, dict) and "name" not in data:
        data["name"] = doc.path.stem
    spec, problems = parse_model(AdCampaignSpec, doc)
    if problems or spec is None:
        raise SpecError(problems or [SpecProblem(doc.path, 1, "", "not an ad campaign")])
    loaded = LoadedCampaign(spec, doc)
    targeting_rule(loaded)  # the rule's shape is checked now; its names when compiled
    return loaded


def campaign_from_dict(data: dict[str, Any], path: Path = Path("<ads>")) -> LoadedCampaign:
    """A campaign built in code (tests, the API, the benchmark) from the YAML structure."""
    return parse_ad_campaign(LocatedYaml(path, dict(data), {}))


def load_ad_campaigns(folder: Path) -> dict[str, LoadedCampaign]:
    """Every ``ads/*.yml`` (files starting with ``_`` are skipped); names must be unique."""
    campaigns: dict[str, LoadedCampaign] = {}
    problems: list[SpecProblem] = []
    if not folder.is_dir():
        return campaigns
    for path in sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]):
        if path.name.startswith("_"):
            continue
        try:
            loaded = parse_ad_campaign(load_yaml(path))
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        name = loaded.spec.name
        if name in campaigns:
            problems.append(
                SpecProblem(
                    path, 1, "name", f"'{name}' is already defined in {campaigns[name].path}"
                )
            )
        campaigns[name] = loaded
    if problems:
        raise SpecError(problems)
    return campaigns


def targeting_rule(campaign: LoadedCampaign) -> SegmentSpec | None:
    """The campaign's targeting as a segment rule (``None``: everyone). Each criterion is one
    branch of an ``all``; errors point at the criterion's line in the campaign file.
    """
    spec = campaign.spec
    targeting = spec.targeting
    if targeting.is_everyone():
        return None
    branches: list[Any] = []
    lines: dict[tuple[str | int, ...], int] = {}
    doc = campaign.doc

    def line_of(*loc: str | int) -> int | None:
        return doc.line_of(("targeting", *loc)) if doc is not None else None

    def add(branch: Any, key: str) -> None:
        line = line_of(key)
        if line is not None:
            lines[("rule", "all", len(branches))] = line
        branches.append(branch)

    for key in ("region", "gender", "education", "occupation", "marital_status", "interests"):
        values = getattr(targeting, key)
        if values is None:
            continue
        columns = SEED_FIELDS[key]
        if len(columns) == 1:
            add({"field": columns[0], "op": "in", "value": list(values)}, key)
        else:
            add({"any": [{"field": c, "op": "in", "value": list(values)} for c in columns]}, key)
    if targeting.age is not None:
        age = targeting.age
        if age.min is not None and age.max is not None:
            add({"field": "age", "op": "between", "value": [age.min, age.max]}, "age")
        elif age.min is not None:
            add({"field": "age", "op": ">=", "value": age.min}, "age")
        else:
            add({"field": "age", "op": "<=", "value": age.max}, "age")
    if targeting.segment is not None:
        add({"segment": targeting.segment}, "segment")
    if targeting.rule is not None:
        index = len(branches)
        add(targeting.rule, "rule")
        if doc is not None:  # the user's own rule keeps its own lines
            for loc, line in doc.lines.items():
                if loc[:2] == ("targeting", "rule"):
                    lines[("rule", "all", index, *loc[2:])] = line
    rule_doc = LocatedYaml(campaign.path, None, lines)
    data = {"name": spec.name, "rule": {"all": branches}}
    segment, problems = parse_segment(data, file=campaign.path, located=rule_doc)
    if problems or segment is None:
        raise SpecError(
            [
                SpecProblem(p.file, p.line, _targeting_path(p.field), p.message)
                for p in problems
                or [SpecProblem(campaign.path, line_of(), "targeting", "not a valid rule")]
            ]
        )
    return segment


def _targeting_path(path: str) -> str:
    """``rule.all[3].x`` (the generated rule) in the campaign's words: ``targeting[3].x``."""
    return re.sub(r"^rule\.all", "targeting", path)
