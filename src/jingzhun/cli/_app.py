"""The ``jingzhun`` command: Typer + Rich, ``--json`` for scripts, meaningful exit codes."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer
from rich.table import Table

from jingzhun.cli._common import (
    AsOfOption,
    JsonOption,
    ProjectOption,
    arrow_table,
    err,
    handles_errors,
    json_default,
    out,
    parse_date,
    print_json,
)
from jingzhun.core import ExitCode, init_project
from jingzhun.ingest import FileReport, FileStatus, LoadReport
from jingzhun.workspace import Workspace

app = typer.Typer(
    name="jingzhun",
    help="jingzhun (精准): unify customer data, tag, segment, target, deliver and measure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
@handles_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the project in.")],
    name: Annotated[str | None, typer.Option(help="Project name (default: folder name).")] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone.")] = "UTC",
    currency: Annotated[str, typer.Option(help="ISO 4217 currency.")] = "USD",
    region: Annotated[str, typer.Option(help="Default country for phone numbers.")] = "US",
    as_json: JsonOption = False,
) -> None:
    """Create a project folder: jingzhun.yml and folders for sources, tags, segments, ..."""
    root = init_project(directory, name=name, timezone=timezone, currency=currency, region=region)
    if as_json:
        print_json({"project": str(root)})
    else:
        out.print(f"created project in [bold]{root}[/]; add source specs under sources/")


@app.command()
@handles_errors
def validate(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """Check jingzhun.yml and every spec; errors name the file, line, field and what is allowed."""
    ws = Workspace.open(project)
    summary = ws.describe()
    if as_json:
        print_json({"ok": True, **summary})
        return
    out.print(f"[green]✓[/] project [bold]{summary['project']}[/] is valid ({summary['engine']})")
    for name, source in summary["sources"].items():
        out.print(f"  source {name} → {source['target']}: {source['files']} file(s)")
    for warning in summary["warnings"]:
        out.print(f"  [yellow]warning:[/] {warning}")


def _file_line(report: FileReport) -> str:
    if report.status is FileStatus.REJECTED:
        return f"[red]✗[/] {report.source}: {report.file} rejected"
    if report.status is FileStatus.UNCHANGED:
        return f"[dim]= {report.source}: {report.file} unchanged (loaded before)[/]"
    return (
        f"[green]✓[/] {report.source}: {report.file} — {report.rows_read:,} read, "
        f"{report.rows_loaded:,} loaded, {report.rows_duplicate:,} duplicate, "
        f"{report.rows_quarantined:,} quarantined ({report.seconds:.1f} s)"
    )


def _print_load_report(report: LoadReport) -> None:
    table = Table(title="load report", title_justify="left")
    for column in ("source", "file", "status", "read", "loaded", "duplicate", "quarantined"):
        table.add_column(column, justify="right" if column not in ("source", "file") else "left")
    for f in report.files:
        table.add_row(
            f.source,
            f.file,
            f.status.value,
            f"{f.rows_read:,}",
            f"{f.rows_loaded:,}",
            f"{f.rows_duplicate:,}",
            f"{f.rows_quarantined:,}",
        )
    out.print(table)
    for f in report.files:
        if f.error:
            err.print(f"[bold red]error:[/] {f.error}", highlight=False)
        elif f.rows_quarantined:
            out.print(
                f"[yellow]{f.rows_quarantined:,} row(s) of {f.file} quarantined[/], "
                "first ones:\n  " + "\n  ".join(f.problems),
                highlight=False,
            )
    if any(f.rows_quarantined for f in report.files):
        out.print("see them all with [bold]jingzhun quarantine[/]")


@app.command()
@handles_errors
def ingest(
    sources: Annotated[
        list[str] | None, typer.Argument(help="Source names (default: every source).")
    ] = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Load source files incrementally: the same file twice adds nothing; bad rows → quarantine."""
    with Workspace.open(project) as ws:
        progress = None if as_json else out.status("loading…", spinner="dots")

        def on_file(report: FileReport) -> None:
            if not as_json:
                out.print(_file_line(report), highlight=False)

        if progress is not None:
            with progress:
                report = ws.ingest.run(sources or None, on_file=on_file)
        else:
            report = ws.ingest.run(sources or None)
    if as_json:
        print_json(report.to_dict())
    else:
        _print_load_report(report)
    if not report.ok:
        raise typer.Exit(int(ExitCode.DATA_ERROR))


identity_app = typer.Typer(help="Resolve records into customers; review and unmerge.")
app.add_typer(identity_app, name="identity")
ByOption = Annotated[str, typer.Option(help="Who decides (kept in the store).")]


@identity_app.command("build")
@handles_errors
def identity_build(
    as_of: AsOfOption = None,
    probabilistic: Annotated[
        bool, typer.Option(help="Also match records with splink (names, dates, fuzzy contacts).")
    ] = True,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Rebuild identity_map and merge_log from the raw tables, review decisions and splits."""
    with Workspace.open(project) as ws:
        report = ws.identity.build(parse_date(as_of), probabilistic=probabilistic)
    if as_json:
        print_json(report.to_dict())
        return
    table = Table(title="identity build", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in report.to_dict().items():
        table.add_row(
            key, json.dumps(value, default=json_default) if isinstance(value, dict) else str(value)
        )
    out.print(table)


@identity_app.command("review")
@handles_errors
def identity_review(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """List pairs waiting for a decision, with their match weights."""
    with Workspace.open(project) as ws:
        pending = ws.identity.pending_reviews()
    if as_json:
        print_json(pending.to_pylist())
        return
    out.print(arrow_table(f"pairs to review ({pending.num_rows})", pending))
    out.print("decide with [bold]jingzhun identity accept|reject NODE_A NODE_B[/]")


def _decide(node_a: str, node_b: str, accept: bool, by: str, project: Path, as_json: bool) -> None:
    with Workspace.open(project) as ws:
        ws.identity.decide(node_a, node_b, accept=accept, by=by)
    verdict = "accepted" if accept else "rejected"
    if as_json:
        print_json({"node_a": node_a, "node_b": node_b, "decision": verdict})
    else:
        out.print(f"{verdict}: {node_a} ~ {node_b} (used by every later build)", highlight=False)


@identity_app.command("accept")
@handles_errors
def identity_accept(
    node_a: str,
    node_b: str,
    by: ByOption = "cli",
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Accept a reviewed pair: they are one customer."""
    _decide(node_a, node_b, True, by, project, as_json)


@identity_app.command("reject")
@handles_errors
def identity_reject(
    node_a: str,
    node_b: str,
    by: ByOption = "cli",
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Reject a reviewed pair: never merge them on a probability."""
    _decide(node_a, node_b, False, by, project, as_json)


@identity_app.command("match")
@handles_errors
def identity_match(
    input_path: Annotated[Path, typer.Argument(help="CSV export to deduplicate (UTF-8).")],
    id_column: Annotated[str, typer.Option("--id-column", help="Column with the record id.")],
    output: Annotated[Path, typer.Option("--out", help="CSV to write, with cluster_id.")],
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="field=column, e.g. --map phone=Mobile (repeatable)."),
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="Phone region (default: the project's, else CN).")
    ] = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Deduplicate a CRM export with splink: every record gets a cluster_id."""
    from jingzhun.core import PROJECT_FILE, SpecError, SpecProblem
    from jingzhun.identity import match_file

    overrides: dict[str, str] = {}
    for item in mapping or []:
        field, sep, column = item.partition("=")
        if not sep or not field or not column:
            raise SpecError([SpecProblem(Path("--map"), None, item, "expected field=column")])
        overrides[field.strip()] = column.strip()
    status = out.status(f"matching {input_path}…")
    with contextlib.nullcontext() if as_json else status:
        if (project / PROJECT_FILE).exists():
            with Workspace.open(project) as ws:
                summary = ws.identity.match_file(
                    input_path,
                    output,
                    id_column=id_column,
                    column_overrides=overrides or None,
                    region=region,
                )
        else:  # no project: the matcher's own defaults
            summary = match_file(
                input_path,
                output,
                id_column=id_column,
                column_overrides=overrides or None,
                region=(region or "CN").upper(),
            )
    if as_json:
        print_json(summary.to_dict())
        return
    for key, value in summary.to_dict().items():
        out.print(f"  {key}: {value}", highlight=False)
    out.print(f"written to [bold]{output}[/]")


@identity_app.command("unmerge")
@handles_errors
def identity_unmerge(
    customer: Annotated[str, typer.Argument(help="customer_key (or any node key in it).")],
    node: Annotated[str, typer.Argument(help="Node key to split off, e.g. c:crm:1234.")],
    by: ByOption = "cli",
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Split a record off a customer; later builds keep them apart."""
    with Workspace.open(project) as ws:
        splits = ws.identity.unmerge(customer, node, by=by)
    if as_json:
        print_json({"customer": customer, "node": node, "splits": splits})
    else:
        out.print(f"split {node} off {customer} ({splits} pair(s) kept apart); run identity build")


@app.command()
@handles_errors
def build(
    as_of: AsOfOption = None,
    probabilistic: Annotated[
        bool, typer.Option(help="Also match records with splink during identity resolution.")
    ] = True,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Resolve identities, then build profiles and tags as they stood on --as-of (default today)."""
    cutoff = parse_date(as_of)
    with Workspace.open(project) as ws:
        built = ws.build(cutoff, probabilistic=probabilistic)
    if as_json:
        print_json(built.to_dict())
        return
    identity, profiles = built.identity, built.profiles
    summary = profiles.to_dict()
    out.print(
        f"identity: {identity.nodes:,} records → {identity.customers:,} customers; "
        f"profiles as of {summary.get('as_of')}: {summary.get('customers', 0):,}",
        highlight=False,
    )
    segments = Table(title="RFM segments", title_justify="left")
    segments.add_column("segment")
    segments.add_column("customers", justify="right")
    for name, count in (summary.get("segments") or {}).items():
        segments.add_row(str(name), f"{count:,}")
    out.print(segments)
    if built.segments is not None:
        audiences = Table(title="segments", title_justify="left")
        for column in ("segment", "members", "entered", "exited"):
            audiences.add_column(column, justify="left" if column == "segment" else "right")
        for name, figures in built.segments.segments.items():
            audiences.add_row(name, *(f"{figures[k]:,}" for k in ("members", "entered", "exited")))
        out.print(audiences)


profile_app = typer.Typer(help="One customer's profile: the 360° view.")
app.add_typer(profile_app, name="profile")


@profile_app.command("show")
@handles_errors
def profile_show(
    customer: Annotated[str, typer.Argument(help="customer_key, source id, e-mail or phone.")],
    unmasked: Annotated[
        bool, typer.Option("--unmasked", help="Show PII in clear (only for those who may).")
    ] = False,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Identifiers, attributes, tags, recent events and orders of one customer."""
    with Workspace.open(project) as ws:
        view = ws.profiles.show(customer, mask_pii=not unmasked)
    if as_json:
        print_json(view)
        return
    out.print_json(json.dumps(view, default=json_default, ensure_ascii=False))


@app.command()
@handles_errors
def quarantine(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    limit: Annotated[int, typer.Option(help="How many rows to show.")] = 20,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Show quarantined rows: file, row, column, value and the reason."""
    with Workspace.open(project) as ws:
        if source:
            ws.project.source(source)
        counts = ws.ingest.quarantine_counts()
        rows = ws.ingest.quarantine(source, limit)
    if as_json:
        print_json({"counts": counts.to_pylist(), "rows": rows.to_pylist()})
        return
    out.print(arrow_table("quarantined values by reason", counts))
    out.print(arrow_table(f"latest {limit} quarantined values", rows))


@app.command()
@handles_errors
def tables(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """List warehouse tables and their row counts."""
    with Workspace.open(project) as ws:
        counts = ws.tables()
    if as_json:
        print_json(counts)
        return
    table = Table(title=f"warehouse tables ({len(counts)})", title_justify="left")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in counts.items():
        table.add_row(name, f"{rows:,}")
    out.print(table)


@app.command()
@handles_errors
def runs(
    limit: Annotated[int, typer.Option(help="How many runs to show.")] = 20,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Recent runs recorded in the operational store."""
    with Workspace.open(project) as ws:
        records = ws.store.recent_runs(limit)
    rows = [
        {
            "run_id": r.run_id,
            "command": r.command,
            "status": r.status,
            "started_at": r.started_at.isoformat() if r.started_at else None,
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            "error": r.error,
        }
        for r in records
    ]
    if as_json:
        print_json(rows)
        return
    out.print(arrow_table("recent runs", pa.Table.from_pylist(rows) if rows else pa.table({})))


@app.command()
@handles_errors
def generate(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the Parquet files to.")],
    customers: Annotated[int, typer.Option(help="Number of customers.", min=1)] = 10_000,
    days: Annotated[int, typer.Option(help="Days of history.", min=1)] = 365,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 42,
    start: Annotated[
        datetime, typer.Option(help="First day (YYYY-MM-DD).", formats=["%Y-%m-%d"])
    ] = datetime(2024, 1, 1),
    region: Annotated[str, typer.Option(help="Market: CN, US or GB.")] = "CN",
    as_json: JsonOption = False,
) -> None:
    """Write realistic seeded customers, events, orders and products as Parquet."""
    from jingzhun.datagen import generate as run_generate

    status = out.status(f"generating {customers:,} customers × {days} days (seed {seed})…")
    try:
        with contextlib.nullcontext() if as_json else status:
            result = run_generate(
                out_dir,
                customers=customers,
                days=days,
                seed=seed,
                start=start.date(),
                region=region.upper(),
            )
    except ValueError as exc:
        if as_json:
            print_json({"error": "ValueError", "message": str(exc)})
        else:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.SPEC_ERROR)) from None
    if as_json:
        print_json(result.to_dict())
        return
    table = Table(title=f"generated in {out_dir} ({result.seconds:.1f} s)", title_justify="left")
    table.add_column("file")
    table.add_column("rows", justify="right")
    for stem, rows in result.rows.items():
        table.add_row(f"{stem}.parquet", f"{rows:,}")
    out.print(table)
    out.print(f"market {result.region}, seed {result.seed}, from {result.start} for {days} days")


@app.command()
@handles_errors
def demo(
    directory: Annotated[Path, typer.Argument(help="Folder for the demo project.")] = Path("demo"),
    customers: Annotated[int, typer.Option(help="Generated customers beside the sample.")] = 5_000,
    seed: Annotated[int, typer.Option(help="Random seed of the generated data.")] = 42,
    shared_data: Annotated[
        Path,
        typer.Option(help="The public data sets (for the Hillstrom experiment), if present."),
    ] = Path("../shared/data"),
    as_json: JsonOption = False,
) -> None:
    """Build the demo project (Online Retail sample + generated data), load it, write the report."""
    from jingzhun.demo import run_demo

    result = run_demo(
        directory,
        customers=customers,
        seed=seed,
        shared_data=shared_data,
        say=None if as_json else _say,
    )
    if as_json:
        print_json(result.to_dict())
    else:
        out.print(f"\n[bold green]demo report:[/] {result.report}")
    if not result.ok:
        raise typer.Exit(int(ExitCode.DATA_ERROR))


def _say(message: str) -> None:
    out.print(message, highlight=False)


# Sub-command groups live in their own modules; importing them registers their commands.
from jingzhun.cli import _model_clv, _model_ml  # noqa: E402, F401
from jingzhun.cli._ads import ads_app  # noqa: E402
from jingzhun.cli._campaign import campaign_app, consent_app  # noqa: E402
from jingzhun.cli._delivery import register as register_delivery  # noqa: E402
from jingzhun.cli._experiment import experiment_app  # noqa: E402
from jingzhun.cli._journey import journey_app  # noqa: E402
from jingzhun.cli._measure import register as register_measure  # noqa: E402
from jingzhun.cli._model import model_app  # noqa: E402
from jingzhun.cli._privacy import privacy_app  # noqa: E402
from jingzhun.cli._recommend import recommend_app  # noqa: E402
from jingzhun.cli._report import register as register_report  # noqa: E402
from jingzhun.cli._segment import segment_app  # noqa: E402
from jingzhun.cli._serve import register as register_serve  # noqa: E402

app.add_typer(segment_app, name="segment")
app.add_typer(model_app, name="model")
app.add_typer(recommend_app, name="recommend")
app.add_typer(campaign_app, name="campaign")
app.add_typer(consent_app, name="consent")
app.add_typer(journey_app, name="journey")
app.add_typer(experiment_app, name="experiment")
app.add_typer(ads_app, name="ads")
app.add_typer(privacy_app, name="privacy")
register_measure(app)
register_delivery(app)
register_report(app)
register_serve(app)


def main() -> None:
    """Entry point of the ``jingzhun`` console script."""
    app()
