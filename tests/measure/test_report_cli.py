"""``jingzhun report [CAMPAIGN]``: the JSON is the campaign's figures, every number of the HTML
page equals it, the all-campaigns page summarises every launched campaign beside the
overview, and mistakes exit non-zero with a message that names them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from campaign_outcomes_project import CAMPAIGN, Shop, launched_shop
from test_campaign_report import check_page_against_json
from typer.testing import CliRunner

from jingzhun.cli._report import register
from jingzhun.core import ExitCode
from jingzhun.measure import campaign_kpis
from jingzhun.workspace import Workspace


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    return launched_shop(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """jingzhun (test)."""

    register(app)
    return app


def test_campaign_report_json_and_page(shop: Shop, cli: typer.Typer, tmp_path: Path) -> None:
    target = tmp_path / "spring.html"
    args = ["report", CAMPAIGN, "--out", str(target), "--as-of", shop.as_of.isoformat()]
    result = CliRunner().invoke(cli, [*args, "--no-images", "--project", str(shop.root), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    files = payload.pop("report")
    assert files == {"html": str(target), "images": [], "notes": []}
    with Workspace.open(shop.root) as ws:
        direct = campaign_kpis(
            ws.engine, ws.store, ws.campaigns.spec(CAMPAIGN), as_of=shop.as_of, currency="GBP"
        )
    assert payload == json.loads(json.dumps(direct.to_dict()))
    check_page_against_json(target.read_text(encoding="utf-8"), payload)

    people = CliRunner().invoke(cli, [*args, "--no-images", "--project", str(shop.root)])
    assert people.exit_code == 0, people.output
    assert "incremental conversions" in people.stdout and str(target.name) in people.stdout


def test_all_campaigns_report(shop: Shop, cli: typer.Typer, tmp_path: Path) -> None:
    target = tmp_path / "all.html"
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "--out",
            str(target),
            "--as-of",
            shop.as_of.isoformat(),
            "--no-images",
            "--project",
            str(shop.root),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [c["campaign"] for c in payload["campaigns"]] == [CAMPAIGN]
    assert payload["overview"]["customers"] == 40
    page = target.read_text(encoding="utf-8")
    covered = check_page_against_json(page, payload)
    assert ("campaigns", 0, "totals", "treatment", "conversions") in covered
    assert ("campaigns", 0, "incrementality", "overall", "incremental_roi_ci", 1) in covered
    assert "Overview of the warehouse" in page


def test_mistakes_exit_non_zero_and_say_what(shop: Shop, cli: typer.Typer) -> None:
    runner = CliRunner()
    unknown = runner.invoke(cli, ["report", "winter", "--project", str(shop.root), "--json"])
    assert unknown.exit_code == ExitCode.NOT_FOUND
    assert "no campaign named 'winter'" in json.loads(unknown.stdout)["message"]
    bad_date = runner.invoke(cli, ["report", CAMPAIGN, "--as-of", "31/12", "-p", str(shop.root)])
    assert bad_date.exit_code == ExitCode.SPEC_ERROR
    assert "--as-of '31/12' is not a date" in bad_date.stderr
