"""``jingzhun journey``: list, validate, run, status and backtest the project's journeys.

``journey_app`` is a Typer application; ``_app.py`` adds it with
``app.add_typer(journey_app, name="journey")``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from jingzhun.cli._common import (
    JsonOption,
    ProjectOption,
    handles_errors,
    out,
    parse_date,
    print_json,
)
from jingzhun.core import SpecError, SpecProblem
from jingzhun.journeys import (
    load_journeys,
)
from jingzhun.workspace import Workspace

journey_app = typer.Typer(
    name="journey",
    help="Triggered customer journeys: list, validate, run, status, backtest.",
    no_args_is_help=True,
)


def _now(value: str | None, timezone: str) -> dt.datetime:
    """``--now`` (ISO 8601; without an offset it is the project's local time), else now."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SpecError(
            [
                SpecProblem(
                    Path("--now"), None, "--now", f"'{value}' is not a time like 2024-06-30T09:00"
                )
            ]
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.astimezone(dt.UTC)


@journey_app.command("list")
@handles_errors
def list_journeys(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """Every journey: trigger, steps, priority, re-entry."""
    with Workspace.open(project) as ws:
        specs = load_journeys(ws.project.root / "journeys")
    rows = [
        {
            "name": s.name,
            "enabled": s.enabled,
            "priority": s.priority,
            "trigger": s.trigger.kind.value,
            "steps": len(s.steps),
            "re_entry": s.re_entry.value + (f" {s.re_entry_days}d" if s.re_entry_days else ""),
            "description": s.description,
        }
        for s in sorted(specs.values(), key=lambda s: (-s.priority, s.name))
    ]
    if as_json:
        print_json({"journeys": rows, "count": len(rows)})
        return
    table = Table(title="journeys", title_justify="left")
    for column in ("name", "priority", "trigger", "steps", "re_entry", "description"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            *(
                str(r[c])
                for c in ("name", "priority", "trigger", "steps", "re_entry", "description")
            )
        )
    out.print(table)


@journey_app.command("validate")
@handles_errors
def validate(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """Check every journey file, and the templates and segments they name (exit 2 on errors)."""
    with Workspace.open(project) as ws:
        specs = ws.journeys.specs()
    if as_json:
        print_json({"valid": True, "journeys": sorted(specs)})
        return
    out.print(f"{len(specs)} journey(s) valid: {', '.join(sorted(specs)) or 'none'}")


@journey_app.command("run")
@handles_errors
def run(
    now: Annotated[
        str | None,
        typer.Option(help="Run as at this time (ISO 8601; local to the project without offset)."),
    ] = None,
    journey: Annotated[
        list[str] | None, typer.Option("--journey", "-j", help="Only these journeys.")
    ] = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Enrol customers whose trigger fired and advance every step that is due."""
    with Workspace.open(project) as ws:
        moment = _now(now, ws.project.settings.timezone)
        report = ws.journeys.run(moment, journeys=journey or None)
        summary = {"now": moment.isoformat(), **report.to_dict()}
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"journeys at {moment.isoformat(timespec='minutes')}", title_justify="left")
    columns = ("enrolled", "advanced", "queued", "completed", "exited")
    table.add_column("journey")
    for c in columns:
        table.add_column(c, justify="right")
    for name, row in summary["journeys"].items():
        table.add_row(name, *(f"{row.get(c, 0):,}" for c in columns))
    out.print(table)


@journey_app.command("status")
@handles_errors
def status(
    name: str,
    recent: Annotated[int, typer.Option(help="History entries to show.")] = 10,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Enrolments by state and step, exits, messages and the latest history of a journey."""
    with Workspace.open(project) as ws:
        found = ws.journeys.status(name, recent=recent)
    if as_json:
        print_json(found)
        return
    for title in ("enrollments", "at_step", "exits", "messages", "skipped"):
        table = Table(title=title.replace("_", " "), title_justify="left")
        table.add_column("")
        table.add_column("count", justify="right")
        for key, value in found[title].items():
            table.add_row(str(key), f"{value:,}")
        out.print(table)
    out.print(f"trigger evaluated up to {found['watermark'] or 'never'}", highlight=False)


@journey_app.command("backtest")
@handles_errors
def backtest(
    name: str,
    start: Annotated[str, typer.Option("--from", help="First day of triggers (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option("--to", help="Last day of triggers (YYYY-MM-DD).")],
    sample: Annotated[int, typer.Option(help="Messages to list.")] = 10,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Replay a journey over history: who would have entered, what they would have been sent
    and when. Writes nothing.
    """
    first = parse_date(start, "--from")
    last = parse_date(end, "--to")
    assert first is not None and last is not None
    if last < first:
        raise typer.BadParameter(f"--to {last} is before --from {first}")
    with Workspace.open(project) as ws:
        result = ws.journeys.backtest(name, first, last, sample=sample)
    data = result.to_dict()
    if as_json:
        print_json(data)
        return
    out.print(
        f"{name} from {first} to {last}: {data['entered']:,} entries by "
        f"{data['customers']:,} customers; messages {data['messages'] or 'none'}",
        highlight=False,
    )
    table = Table(title="steps", title_justify="left")
    for column in ("step", "kind", "reached", "queued", "skipped"):
        table.add_column(column)
    for step, row in data["steps"].items():
        skipped = ", ".join(f"{k} {v}" for k, v in row["skipped"].items())
        table.add_row(step, row["kind"], f"{row['reached']:,}", f"{row['queued']:,}", skipped)
    out.print(table)
    table = Table(title="sample", title_justify="left")
    for column in ("send_at", "customer_key", "step", "channel", "content"):
        table.add_column(column)
    for row in data["sample"]:
        table.add_row(
            *(str(row[c]) for c in ("send_at", "customer_key", "step", "channel", "content"))
        )
    out.print(table)
