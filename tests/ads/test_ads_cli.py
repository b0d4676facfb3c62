"""``jingzhun ads``: every command end to end on the generated shop, with JSON output and
exit codes.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from jingzhun.cli._ads import ads_app

app = typer.Typer()
app.add_typer(ads_app, name="ads")
runner = CliRunner()


def _json(args: list[str], code: int = 0) -> dict:
    result = runner.invoke(app, ["ads", *args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def test_ads_commands(project: Path, tmp_path: Path) -> None:
    p = ["--project", str(project)]
    validated = _json(["validate", *p])
    assert {c["campaign"] for c in validated["campaigns"]} == {
        "beauty_women", "gadgets_city", "spring_sale",
    }  # fmt: skip
    simulated = _json(["simulate", "--visitors", "800", "--seed", "2", *p])
    assert simulated["days"][0]["served"] > 0 and Path(simulated["answer_key"]).exists()
    fraud = _json(["fraud", *p])
    assert fraud["detection"]["invalid"] > 0 and 0 <= fraud["scores"]["precision"] <= 1
    assert set(fraud["scores"]["by_kind"]) >= {"no_impression", "too_fast"}
    trained = _json(["train-ctr", *p])
    assert trained["impressions"] > 0
    report = _json(["report", "--out", str(tmp_path / "ads.html"), *p])
    assert Path(report["path"]).exists() and report["totals"]["impressions"] > 0
    plan = _json(["plan", "--campaign", "spring_sale", "--budget", "20", *p])
    assert plan["campaign"] == "spring_sale" and plan["daily_budget"] == 20
    audience = _json(
        ["audience", "beauty_women", "--platform", "meta", "--out", str(tmp_path / "m.csv"), *p]
    )
    assert audience["rows"] > 0 and (tmp_path / "m.csv").exists()
    missing = _json(["plan", "--campaign", "nope", *p], code=3)
    assert "spring_sale" in missing["message"]


def test_a_bad_campaign_exits_2_with_file_and_line(project: Path) -> None:
    (project / "ads" / "broken.yml").write_text("name: broken\nmax_cpc: cheap\n")
    result = runner.invoke(app, ["ads", "validate", "--project", str(project), "--json"])
    assert result.exit_code == 2
    problems = json.loads(result.stdout)["problems"]
    assert any(p["field"] == "max_cpc" and p["line"] == 2 for p in problems)
