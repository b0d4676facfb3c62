"""``jingzhun report [CAMPAIGN]``: a campaign's outcomes, or every launched campaign and the
overview, as an offline HTML page with PNG charts; ``--json`` prints the same numbers.

``register(app)`` adds the command to the ``jingzhun`` application.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from jingzhun.cli._common import (
    AsOfOption,
    JsonOption,
    ProjectOption,
    err,
    handles_errors,
    out,
    parse_date,
    print_json,
)
from jingzhun.core import NotFoundError
from jingzhun.measure import (
    CampaignKpis,
    ReportFiles,
    campaign_kpis,
    campaigns_payload,
    launched_campaigns,
    write_campaigns_report,
)
from jingzhun.workspace import Workspace


def _value(value: Any, kind: str = "") -> str:
    if value is None:
        return "—"
    if kind == "rate":
        return f"{value:.2%}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.2f}"


def _print_campaign(kpis: CampaignKpis, files: ReportFiles) -> None:
    figures = kpis.to_dict()
    treated, holdout = figures["totals"]["treatment"], figures["totals"]["holdout"]
    table = Table(
        title=f"campaign {kpis.campaign} ({kpis.plan_id}), as of {kpis.as_of}",
        title_justify="left",
    )
    table.add_column("figure")
    table.add_column("treated", justify="right")
    table.add_column("holdout", justify="right")
    for name, kind in (
        ("customers", ""),
        ("sent", ""),
        ("delivered", ""),
        ("opened", ""),
        ("clicked", ""),
        ("conversions", ""),
        ("conversion_rate", "rate"),
        ("revenue", ""),
        ("net_revenue", ""),
        ("cost", ""),
        ("roi", ""),
    ):
        table.add_row(name, _value(treated[name], kind), _value(holdout[name], kind))
    out.print(table)
    inc = figures["incrementality"]
    if inc is not None:
        o = inc["overall"]
        low, high = o["incremental_conversions_ci"]
        out.print(
            f"incremental conversions {_value(o['incremental_conversions'])} "
            f"[{_value(low)}, {_value(high)}]; incremental net revenue "
            f"{_value(o['incremental_revenue'])}; incremental ROI {_value(o['incremental_roi'])}",
            highlight=False,
        )
    for note in kpis.notes:
        out.print(f"[yellow]note:[/] {note}", highlight=False)
    _print_files(files)


def _print_files(files: ReportFiles) -> None:
    out.print(f"report written to [bold]{files.html}[/]")
    for image in files.images:
        out.print(f"  chart {image}", highlight=False)
    for note in files.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)


@handles_errors
def report(
    campaign: Annotated[
        str | None,
        typer.Argument(help="A launched campaign; without one, every launched campaign."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="HTML file (default reports/campaign_NAME.html, or reports/overview.html "
            "without a campaign); PNG charts go beside it.",
        ),
    ] = None,
    as_of: AsOfOption = None,
    images: Annotated[
        bool, typer.Option("--images/--no-images", help="Write PNG charts (kaleido).")
    ] = True,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Write a campaign's report (delivery, opens, clicks, conversions, revenue, ROI, holdout
    lift), or without a campaign every launched campaign's summary and the overview.
    """
    cutoff = parse_date(as_of)
    with Workspace.open(project) as ws:
        root = ws.project.root
        currency = ws.project.settings.currency
        if campaign is not None:
            kpis, files = ws.measure.campaign_report(campaign, output, as_of=cutoff, images=images)
            if as_json:
                print_json({**kpis.to_dict(), "report": files.to_dict()})
            else:
                _print_campaign(kpis, files)
            return
        specs = ws.campaigns.specs()
        names = launched_campaigns(ws.store)
        missing = [name for name in names if name not in specs]
        if missing:
            raise NotFoundError(
                f"launched campaign(s) {', '.join(missing)} have no file under "
                f"{root / 'campaigns'}; restore the spec to measure them"
            )
        measured = [
            campaign_kpis(ws.engine, ws.store, specs[name], as_of=cutoff, currency=currency)
            for name in names
        ]
        figures = ws.measure.overview(cutoff)
        target = output or root / "reports" / "overview.html"
        files = write_campaigns_report(
            measured,
            target,
            overview=figures,
            title=f"{ws.project.name} — campaigns and overview",
            project=ws.project.name,
            images=images,
        )
    if as_json:
        print_json({**campaigns_payload(measured, figures), "report": files.to_dict()})
        return
    table = Table(title=f"launched campaigns ({len(measured)})", title_justify="left")
    for column in ("campaign", "treated", "conversions", "incremental", "net revenue", "ROI"):
        table.add_column(column, justify="left" if column == "campaign" else "right")
    for k in measured:
        t = k.totals["treatment"]
        incremental = (
            _value(k.incrementality.result["incremental_conversions"])
            if k.incrementality is not None
            else "—"
        )
        table.add_row(
            k.campaign,
            _value(t["customers"]),
            _value(t["conversions"]),
            incremental,
            _value(t["net_revenue"]),
            _value(t["roi"]),
        )
    out.print(table)
    _print_files(files)


def register(app: typer.Typer) -> None:
    """Add ``report`` to the ``jingzhun`` application (replacing the overview-only one)."""
    app.command("report")(report)
