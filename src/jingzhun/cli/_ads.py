"""``jingzhun ads``: precision ads — validate campaigns, simulate traffic, train the CTR model,
score click fraud, report, plan, and write audience lists for outside platforms.

The decision endpoints themselves are served by ``jingzhun serve`` (``ads_router``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from jingzhun.ads import (
    SIMULATED_DATA_CENTRES,
    AudienceKind,
    FraudSettings,
    ad_report,
    ads_state,
    apply_fraud,
    audience_of,
    campaign,
    detect_fraud,
    export_ad_audience,
    fraud_scores,
    load_campaigns,
    load_ctr_model,
    load_fraud_settings,
    open_ad_server,
    plan_campaign,
    project_index,
    read_logs,
    simulate_day,
    train_ctr,
    write_ad_report,
)
from jingzhun.ads._service import TRUTH_FILE
from jingzhun.cli._common import (
    JsonOption,
    ProjectOption,
    handles_errors,
    out,
    parse_date,
    print_json,
)
from jingzhun.core import ExitCode
from jingzhun.delivery import AdFormat
from jingzhun.workspace import Workspace

ads_app = typer.Typer(
    help="Precision ads: campaigns in ads/*.yml, traffic simulation, CTR model, click fraud, "
    "reports, planning and audience lists."
)


def _print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    table = Table(title=title, title_justify="left")
    if not rows:
        out.print(f"{title}: nothing")
        return
    for column in rows[0]:
        table.add_column(str(column))
    for row in rows:
        table.add_row(
            *(
                f"{v:,.4f}" if isinstance(v, float) else "" if v is None else str(v)
                for v in row.values()
            )
        )
    out.print(table)


@ads_app.command("validate")
@handles_errors
def ads_validate(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """Check every campaign in ads/ and count who its targeting reaches."""
    with Workspace.open(project) as ws:
        campaigns = load_campaigns(ws.project)
        index = project_index(ws.project, ws.engine, campaigns)
    rows = [
        {
            "campaign": name,
            "audience": index.audience_sizes.get(name, "everyone"),
            "max_cpc": c.spec.max_cpc,
            "daily_budget": c.spec.daily_budget,
            "flight": f"{c.spec.flight.start}..{c.spec.flight.end}",
            "creatives": len(c.spec.creatives),
        }
        for name, c in campaigns.items()
    ]
    if as_json:
        print_json({"campaigns": rows, "people": len(index.people), "seconds": index.seconds})
    else:
        _print_rows(f"ad campaigns ({len(rows)})", rows)


@ads_app.command("simulate")
@handles_errors
def ads_simulate(
    start: Annotated[
        str | None, typer.Option(help="First day (YYYY-MM-DD); default the profiles' date.")
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="How many days.")] = 1,
    visitors: Annotated[int, typer.Option(min=1, help="Visitors a day.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed (recorded with the answer key).")] = 0,
    bots: Annotated[bool, typer.Option("--bots/--no-bots", help="Inject bot traffic.")] = True,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Drive seeded traffic (people and bots) through the decision server; logs to the store,
    the answer key to state/ads/simulated_truth.parquet.
    """
    first = parse_date(start, "--start")
    with Workspace.open(project) as ws:
        settings = load_fraud_settings(ws.project.root / "ads")
        ranges = sorted({*settings.data_centre_ranges, *SIMULATED_DATA_CENTRES})
        fraud = FraudSettings(**{**settings.model_dump(), "data_centre_ranges": ranges})
        server = open_ad_server(ws.project, ws.engine, ws.store, fraud=fraud)
        day0 = first or server.index.as_of or dt.date.today()
        results = []
        truths = []
        try:
            for n in range(days):
                result = simulate_day(
                    server,
                    day0 + dt.timedelta(days=n),
                    visitors=visitors,
                    seed=seed + n,
                    bots=None if bots else {},
                )
                results.append(result.to_dict())
                truths.append(result.truth)
        finally:
            server.close()
        path = ads_state(ws.project) / TRUTH_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        truth = pd.concat(truths, ignore_index=True)
        if path.exists():
            truth = pd.concat([pd.read_parquet(path), truth], ignore_index=True)
        truth.to_parquet(path, index=False)
    if as_json:
        print_json({"days": results, "answer_key": str(path)})
    else:
        _print_rows(
            "simulated days",
            [{k: v for k, v in r.items() if k != "clicks_by_kind"} for r in results],
        )
        out.print(f"answer key: {path}")


@ads_app.command("train-ctr")
@handles_errors
def ads_train_ctr(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """Fit the CTR model on the impression and click logs (state/ads/ctr_model.json)."""
    with Workspace.open(project) as ws:
        model = train_ctr(ws.project, ws.engine, ws.store)
    if as_json:
        print_json(model.metrics)
    else:
        _print_rows("CTR model", [model.metrics])


@ads_app.command("fraud")
@handles_errors
def ads_fraud(
    apply: Annotated[
        bool,
        typer.Option("--apply/--no-apply", help="Credit billed clicks the model flags."),
    ] = True,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Invalid clicks by reason (rules at click time, the anomaly model now); with an answer
    key from `ads simulate`, precision and recall.
    """
    with Workspace.open(project) as ws:
        settings = load_fraud_settings(ws.project.root / "ads")
        logs = read_logs(ws.store)
        result = detect_fraud(logs.impressions, logs.clicks, logs.conversions, settings)
        payload: dict[str, Any] = {"detection": result.summary()}
        if apply:
            payload["applied"] = apply_fraud(ws.store, result, now=dt.datetime.now(dt.UTC))
        path = ads_state(ws.project) / TRUTH_FILE
        if path.exists():
            payload["scores"] = fraud_scores(result, pd.read_parquet(path))
    if as_json:
        print_json(payload)
        return
    detection = payload["detection"]
    out.print(f"{detection['invalid']:,} of {detection['clicks']:,} clicks invalid")
    _print_rows(
        "by reason", [{"reason": k, "clicks": v} for k, v in detection["by_reason"].items()]
    )
    if "applied" in payload:
        out.print(f"credited {payload['applied']['credited']} billed click(s)")
    if "scores" in payload:
        s = payload["scores"]
        out.print(f"precision {s['precision']:.3f}, recall {s['recall']:.3f}")
        _print_rows("recall by bot kind", [{"kind": k, **v} for k, v in s["by_kind"].items()])


@ads_app.command("report")
@handles_errors
def ads_report(
    out_path: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path(
        "reports/ads.html"
    ),
    segment_by: Annotated[
        str, typer.Option(help="Profile column that splits people into segments.")
    ] = "value_tier",
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Impressions, reach, frequency, clicks, CTR, CPC, spend, conversions, CPA, ROAS per
    campaign, creative, segment and day, with charts.
    """
    with Workspace.open(project) as ws:
        try:
            report = ad_report(
                ws.store,
                ws.engine,
                timezone=ws.project.settings.timezone,
                segment_by=segment_by,
                currency=ws.project.settings.currency,
            )
        except ValueError as exc:
            out.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(int(ExitCode.SPEC_ERROR)) from None
        path = write_ad_report(
            report, out_path if out_path.is_absolute() else ws.project.root / out_path
        )
    if as_json:
        print_json({**report.to_dict(), "path": str(path)})
    else:
        _print_rows("by campaign", report.to_dict()["by_campaign"])
        out.print(f"report: {path}")


@ads_app.command("plan")
@handles_errors
def ads_plan(
    name: Annotated[str, typer.Option("--campaign", help="Campaign name (ads/NAME.yml).")],
    budget: Annotated[
        float | None, typer.Option(help="Daily budget instead of the file's.")
    ] = None,
    max_cpc: Annotated[float | None, typer.Option(help="Max CPC instead of the file's.")] = None,
    days: Annotated[int | None, typer.Option(help="Days instead of the flight's.")] = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Expected reach, impressions, clicks and cost, replayed from past logs."""
    with Workspace.open(project) as ws:
        loaded = campaign(ws.project, name)
        index = project_index(ws.project, ws.engine, {name: loaded})
        logs = read_logs(ws.store)
        plan = plan_campaign(
            loaded.spec,
            logs.impressions,
            load_ctr_model(ws.project),
            index,
            audience=audience_of(index, name),
            timezone=ws.project.settings.timezone,
            budget=budget,
            max_cpc=max_cpc,
            days=days,
        )
    if as_json:
        print_json(plan.to_dict())
    else:
        _print_rows(f"plan: {name}", [plan.to_dict()])


@ads_app.command("audience")
@handles_errors
def ads_audience(
    name: Annotated[str, typer.Argument(help="Campaign name (ads/NAME.yml).")],
    platform: Annotated[AdFormat, typer.Option(help="google or meta.")],
    out_path: Annotated[Path, typer.Option("--out", help="The CSV file to write.")],
    kind: Annotated[
        AudienceKind, typer.Option("--list", help="customers, lookalike_seed or suppression.")
    ] = AudienceKind.CUSTOMERS,
    seed_share: Annotated[float, typer.Option(help="Look-alike seed: top share by value.")] = 0.2,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """A hashed customer list, look-alike seed or suppression list in the platform's upload
    format.
    """
    with Workspace.open(project) as ws:
        loaded = campaign(ws.project, name)
        index = project_index(ws.project, ws.engine, {name: loaded})
        result = export_ad_audience(
            ws.engine,
            ws.store,
            name,
            kind,
            platform,
            out_path,
            audience=audience_of(index, name),
            region=ws.project.settings.region,
            seed_share=seed_share,
        )
    if as_json:
        print_json(result)
    else:
        out.print(
            f"{result['rows']:,} row(s) for {result['platform']} in {result['path']} "
            f"({result['skipped_no_contact']} without a valid e-mail or phone)"
        )
