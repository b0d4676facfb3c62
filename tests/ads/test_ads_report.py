"""Reports and planning on simulated logs: the figures add up to the logs and the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from jingzhun.ads import (
    ad_report,
    audience_of,
    load_campaigns,
    load_ctr_model,
    plan_campaign,
    project_index,
    read_logs,
    write_ad_report,
)
from jingzhun.core import NotFoundError
from jingzhun.workspace import Workspace


def test_report_adds_up(simulated: Path, tmp_path: Path) -> None:
    with Workspace.open(simulated) as ws:
        logs = read_logs(ws.store)
        report = ad_report(ws.store, ws.engine, timezone="Europe/London", currency="GBP")
        with pytest.raises(ValueError, match="not a profile column"):
            ad_report(ws.store, ws.engine, segment_by="shoe_size")
    by_campaign = report.tables["campaign"].set_index("campaign")
    assert by_campaign["impressions"].sum() == len(logs.impressions)
    assert report.totals["impressions"] == len(logs.impressions)
    valid = logs.clicks[logs.clicks["valid"].astype(bool) & logs.clicks["impression_id"].notna()]
    assert by_campaign["clicks"].sum() == len(valid)
    assert abs(by_campaign["spend"].sum() - logs.ledger["amount"].sum()) < 1e-6
    assert by_campaign["conversions"].sum() == len(logs.conversions)
    for table in report.tables.values():
        assert table["impressions"].sum() == len(logs.impressions)
        assert (table["reach"] <= table["impressions"]).all()
    row = by_campaign.loc["spring_sale"]
    assert row["ctr"] == pytest.approx(row["clicks"] / row["impressions"])
    assert row["cpc"] == pytest.approx(row["spend"] / row["clicks"])
    if row["conversions"]:
        assert row["roas"] == pytest.approx(row["conversion_value"] / row["spend"])
    assert set(report.tables["segment"]["segment"]) >= {"anonymous"}
    assert len(report.tables["day"]) >= 2
    path = write_ad_report(report, tmp_path / "ads.html")
    page = path.read_text(encoding="utf-8")
    assert "Plotly.newPlot" in page and "spring_sale" in page and "<script src" not in page


def test_plan_from_past_logs(simulated: Path, project: Path) -> None:
    with Workspace.open(simulated) as ws:
        campaigns = load_campaigns(ws.project)
        index = project_index(ws.project, ws.engine)
        logs = read_logs(ws.store)
        ctr = load_ctr_model(ws.project)
        spec = campaigns["beauty_women"].spec
        audience = audience_of(index, "beauty_women")
        plan = plan_campaign(spec, logs.impressions, ctr, index, audience=audience,
                             timezone="Europe/London", days=7)  # fmt: skip
        rich = plan_campaign(spec, logs.impressions, ctr, index, audience=audience,
                             timezone="Europe/London", days=7, budget=1000)  # fmt: skip
        poor = plan_campaign(spec, logs.impressions, ctr, index, audience=audience,
                             timezone="Europe/London", days=7, budget=0.5)  # fmt: skip
    assert plan.audience == len(audience or ())
    assert 0 < plan.impressions_per_day <= plan.opportunities_per_day
    assert 0 < plan.reach <= plan.audience
    assert plan.cpc is not None and plan.cpc <= spec.max_cpc
    assert plan.cost_per_day <= spec.daily_budget + 1e-9
    assert poor.budget_limited and poor.cost_per_day == pytest.approx(0.5)
    assert poor.clicks < rich.clicks and poor.reach < rich.reach
    with Workspace.open(project) as ws, pytest.raises(NotFoundError, match="no impressions"):
        plan_campaign(spec, read_logs(ws.store).impressions, ctr, index, audience=audience)
