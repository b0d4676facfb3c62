"""Ad campaign files: validation with file and line, targeting compiled through the segments
compiler into the audience index, checked against the profiles computed with pandas.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jingzhun.ads import load_ad_campaigns, project_index, targeting_rule
from jingzhun.core import SpecError
from jingzhun.workspace import Workspace

BAD = """\
name: bad
max_cpc: -1
daily_budget: 10
flight: {start: 2024-05-02, end: 2024-05-01}
creatives:
  - {name: Glow, title: x, landing_url: ftp://nowhere}
"""

UNKNOWN_FIELD = """\
name: graduates
targeting:
  gender: [F]
  education: [university]
  rule: "frequencyy >= 2"
max_cpc: 0.5
daily_budget: 10
flight: {start: 2024-04-01, end: 2024-06-30}
creatives:
  - {name: a, title: x, landing_url: https://shop.example/a}
"""


def test_bad_campaign_names_every_problem_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text(BAD)
    with pytest.raises(SpecError) as info:
        load_ad_campaigns(tmp_path)
    problems = {(p.field, p.line) for p in info.value.problems}
    assert ("max_cpc", 2) in problems
    assert ("flight", 4) in problems
    assert ("creatives.0.name", 6) in problems
    assert ("creatives.0.landing_url", 6) in problems


def test_unknown_targeting_fields_point_at_their_lines(project: Path) -> None:
    (project / "ads" / "graduates.yml").write_text(UNKNOWN_FIELD)
    with Workspace.open(project) as ws, pytest.raises(SpecError) as info:
        project_index(ws.project, ws.engine)
    by_line = {p.line: p.message for p in info.value.problems if p.file.name == "graduates.yml"}
    assert "unknown field 'education'" in by_line[4]  # the generated shop has no education
    assert "frequencyy" in by_line[5] and "frequency" in by_line[5]


def test_targeting_is_a_segment_rule(project: Path) -> None:
    campaigns = load_ad_campaigns(project / "ads")
    assert targeting_rule(campaigns["spring_sale"]) is None  # untargeted: everyone
    rule = targeting_rule(campaigns["gadgets_city"])
    assert rule is not None and len(rule.rule.rules) == 2


def test_index_matches_the_profiles(workspace: Workspace) -> None:
    index = project_index(workspace.project, workspace.engine)
    profiles = workspace.engine.execute(workspace.engine.read("profiles")).to_pandas()
    interests = profiles[["interest_1", "interest_2", "interest_3"]].isin(["beauty", "apparel"])
    beauty = profiles[(profiles.gender == "F") & interests.any(axis=1)]
    gadgets = profiles[
        profiles.age.between(18, 44)
        & (
            profiles.city.isin(["London", "Manchester"])
            | profiles.country.isin(["London", "Manchester"])
        )
    ]
    assert len(beauty) > 30 and len(gadgets) > 30
    position = {c.spec.name: i for i, c in enumerate(index.campaigns)}
    members = {
        name: {k for k, found in index.eligible.items() if position[name] in found}
        for name in ("beauty_women", "gadgets_city")
    }
    assert members["beauty_women"] == set(beauty.customer_key)
    assert members["gadgets_city"] == set(gadgets.customer_key)
    assert index.campaigns_for(None) == (position["spring_sale"],)
    some = next(iter(members["beauty_women"]))
    assert position["spring_sale"] in index.campaigns_for(some)
    assert index.devices  # anonymous ids of the shop's devices resolve to customers
