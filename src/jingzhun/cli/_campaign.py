"""``jingzhun campaign`` and ``jingzhun consent``: plan, approve, launch; the consent ledger."""

from __future__ import annotations

import datetime as dt
import getpass
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from jingzhun.campaigns import Channel, ConsentRecord, Purpose, Status
from jingzhun.cli._common import JsonOption, ProjectOption, handles_errors, out, print_json
from jingzhun.workspace import Workspace

campaign_app = typer.Typer(help="Campaigns: plan with a waterfall, approve, launch to delivery.")
consent_app = typer.Typer(help="The consent ledger and the suppression list.")

NameArgument = Annotated[str, typer.Argument(help="Campaign name (a file under campaigns/).")]


def _user() -> str:
    return os.environ.get("JINGZHUN_USER") or getpass.getuser()


ByOption = Annotated[
    str | None, typer.Option("--by", help="Who does it (default: $JINGZHUN_USER or the login).")
]


def _plan_row(plan: Any) -> dict[str, Any]:
    return {
        "plan_id": plan.plan_id,
        "campaign": plan.campaign,
        "status": plan.status,
        "as_of": plan.as_of,
        "created_by": plan.created_by,
        "approved_by": plan.approved_by,
        "launched_by": plan.launched_by,
        "waterfall": plan.waterfall,
        "figures": plan.figures,
    }


def _print_plan(payload: dict[str, Any]) -> None:
    table = Table(title=f"{payload['campaign']}: plan {payload['plan_id']}", title_justify="left")
    table.add_column("step")
    table.add_column("customers", justify="right")
    table.add_column("dropped", justify="right")
    for row in payload["waterfall"]:
        table.add_row(row["step"], f"{row['customers']:,}", f"{row['dropped']:,}")
    out.print(table)
    figures = payload["figures"]
    roi = figures.get("expected_roi")
    out.print(
        f"contacts {figures['contacts']:,}, holdout {figures['holdout']:,}; expected conversions "
        f"{figures['expected_conversions']:.1f} ({figures['expected_incremental_conversions']:.1f}"
        f" incremental); cost {figures['cost']:,.2f}; expected ROI "
        f"{'n/a' if roi is None else f'{roi:.2f}'}; status {payload['status']}",
        highlight=False,
    )


@campaign_app.command("list")
@handles_errors
def campaign_list(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """Every campaign in campaigns/ with its audience, channel and policy."""
    with Workspace.open(project) as ws:
        specs = ws.campaigns.specs()
    rows = [
        {
            "campaign": s.name,
            "audience": s.audience,
            "channel": s.channel.value,
            "policy": s.selection.policy.value,
            "approval_required": s.approval_required,
        }
        for s in specs.values()
    ]
    if as_json:
        print_json({"campaigns": rows})
        return
    table = Table(title=f"campaigns ({len(rows)})", title_justify="left")
    for column in ("campaign", "audience", "channel", "policy", "approval_required"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in row))
    out.print(table)


@campaign_app.command("plan")
@handles_errors
def campaign_plan(
    name: NameArgument,
    by: ByOption = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """The eligibility waterfall, selection, holdout, expected conversions and ROI; stored."""
    with Workspace.open(project) as ws:
        plan = ws.campaigns.plan(name, by=by or _user())
    payload = plan.to_dict()
    if as_json:
        print_json(payload)
    else:
        _print_plan(payload)


@campaign_app.command("show")
@handles_errors
def campaign_show(
    name: NameArgument, project: ProjectOption = Path("."), as_json: JsonOption = False
) -> None:
    """The latest plan of a campaign and its status."""
    with Workspace.open(project) as ws:
        payload = _plan_row(ws.campaigns.latest_plan(name))
    if as_json:
        print_json(payload)
    else:
        _print_plan(payload)


@campaign_app.command("approve")
@handles_errors
def campaign_approve(
    name: NameArgument,
    by: ByOption = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Approve the latest plan (by someone other than its author when approval is required)."""
    with Workspace.open(project) as ws:
        plan = ws.campaigns.approve(name, by=by or _user())
    if as_json:
        print_json(_plan_row(plan))
    else:
        out.print(f"plan {plan.plan_id} approved by {plan.approved_by}")


@campaign_app.command("launch")
@handles_errors
def campaign_launch(
    name: NameArgument,
    by: ByOption = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Hand the plan's messages to delivery; refused when the data changed since the plan."""
    with Workspace.open(project) as ws:
        plan, queued = ws.campaigns.launch(name, by=by or _user())
    if as_json:
        print_json({**_plan_row(plan), "queued": queued})
    else:
        out.print(f"plan {plan.plan_id} launched: {queued:,} message(s) queued for delivery")


@campaign_app.command("rollout")
@handles_errors
def campaign_rollout(
    name: NameArgument,
    winner: Annotated[str, typer.Option(help="The variant that won the pilot.")],
    by: ByOption = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """After a pilot: send the winning variant to the rest of the treated customers."""
    with Workspace.open(project) as ws:
        plan, queued = ws.campaigns.rollout(name, winner=winner, by=by or _user())
    if as_json:
        print_json({**_plan_row(plan), "queued": queued, "winner": winner})
    else:
        out.print(f"{name}: variant {winner} rolled out, {queued:,} message(s) queued")


@campaign_app.command("preview")
@handles_errors
def campaign_preview(
    name: NameArgument,
    customer: Annotated[str, typer.Argument(help="A customer_key or any id of the customer.")],
    variant: Annotated[str | None, typer.Option(help="Variant (default: the first).")] = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """The message one customer would get: subject, text, HTML or SMS (with its parts)."""
    with Workspace.open(project) as ws:
        message = ws.campaigns.preview(name, customer, variant=variant)
    payload = message.to_dict()
    if as_json:
        print_json(payload)
        return
    for key, value in payload.items():
        if value not in (None, ""):
            out.print(f"[bold]{key}[/]: {value}", highlight=False)


def _channel(value: str) -> Channel:
    try:
        return Channel(value)
    except ValueError:
        allowed = ", ".join(c.value for c in Channel)
        raise typer.BadParameter(f"'{value}' is not a channel; use one of {allowed}") from None


def _purpose(value: str) -> Purpose:
    try:
        return Purpose(value)
    except ValueError:
        allowed = ", ".join(p.value for p in Purpose)
        raise typer.BadParameter(f"'{value}' is not a purpose; use one of {allowed}") from None


@consent_app.command("import")
@handles_errors
def consent_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV: subject_kind, subject, purpose, channel, "
            "status, recorded_at[, legal_basis, subject_source]"
        ),
    ],
    by: ByOption = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Append consent events from a file; one bad row and nothing is stored."""
    with Workspace.open(project) as ws:
        n = ws.campaigns.consents.import_file(file, recorded_by=by or _user())
    if as_json:
        print_json({"file": str(file), "recorded": n})
    else:
        out.print(f"{n:,} consent record(s) added from {file}")


@consent_app.command("set")
@handles_errors
def consent_set(
    subject: Annotated[str, typer.Argument(help="The person: a customer id, e-mail or phone.")],
    status: Annotated[str, typer.Argument(help="granted, denied or withdrawn.")],
    channel: Annotated[str, typer.Option(help="email, sms, push, ...")] = "email",
    purpose: Annotated[str, typer.Option(help="marketing, personalisation, ...")] = "marketing",
    kind: Annotated[str, typer.Option(help="customer_id, email, phone or customer_key.")] = "email",
    source_system: Annotated[str, typer.Option(help="For a customer_id: its source.")] = "",
    legal_basis: Annotated[str, typer.Option(help="consent, contract, ...")] = "consent",
    by: ByOption = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Record one consent event (the history is kept; the latest counts)."""
    try:
        state = Status(status)
    except ValueError:
        raise typer.BadParameter("status is granted, denied or withdrawn") from None
    record = ConsentRecord(
        kind,
        subject,
        _purpose(purpose),
        _channel(channel),
        state,
        dt.datetime.now(dt.UTC),
        legal_basis=legal_basis,
        source="cli",
        recorded_by=by or _user(),
        subject_source=source_system,
    )
    with Workspace.open(project) as ws:
        ws.campaigns.consents.record([record])
        history = ws.campaigns.consents.history(kind, subject)
    if as_json:
        print_json({"subject": subject, "history": history})
    else:
        out.print(f"recorded: {subject} {state.value} for {purpose} by {channel}")


@consent_app.command("show")
@handles_errors
def consent_show(
    subject: Annotated[str, typer.Argument(help="A customer id, e-mail or phone.")],
    kind: Annotated[str, typer.Option(help="customer_id, email, phone or customer_key.")] = "email",
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Every consent event about a person, oldest first."""
    with Workspace.open(project) as ws:
        history = ws.campaigns.consents.history(kind, subject)
    if as_json:
        print_json({"subject": subject, "history": history})
        return
    table = Table(title=f"consent history of {subject}", title_justify="left")
    for column in ("recorded_at", "purpose", "channel", "status", "legal_basis", "source"):
        table.add_column(column)
    for row in history:
        table.add_row(
            *(
                str(row[c])
                for c in ("recorded_at", "purpose", "channel", "status", "legal_basis", "source")
            )
        )
    out.print(table)


@consent_app.command("suppress")
@handles_errors
def consent_suppress(
    address: Annotated[str, typer.Argument(help="An e-mail address or phone number.")],
    channel: Annotated[str, typer.Option(help="email, sms, ...")] = "email",
    reason: Annotated[str, typer.Option(help="unsubscribe, hard_bounce, complaint, manual")] = (
        "manual"
    ),
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Never contact this address on this channel again."""
    with Workspace.open(project) as ws:
        added = ws.campaigns.suppressions.add(_channel(channel), address, reason)
    if as_json:
        print_json({"address": address, "channel": channel, "added": added})
    else:
        out.print("suppressed" if added else "already suppressed")
