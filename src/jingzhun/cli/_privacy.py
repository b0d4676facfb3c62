"""``jingzhun privacy``: data-subject requests (export, correct, erase), retention, keys."""

from __future__ import annotations

import getpass
import os
from datetime import date
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
from jingzhun.core import ExitCode
from jingzhun.workspace import PrivacyPart, Workspace

privacy_app = typer.Typer(
    help="Privacy: a person's data exported, corrected or erased; retention; encryption keys."
)
keys_app = typer.Typer(help="The master key that wraps the per-person data keys.")
privacy_app.add_typer(keys_app, name="keys")

SubjectArgument = Annotated[
    str,
    typer.Argument(
        help="Any identifier: customer_key, source customer id, device id, e-mail, phone."
    ),
]
ByOption = Annotated[
    str | None,
    typer.Option("--by", help="Who handles the request (default: $JINGZHUN_USER or the login)."),
]


def _user(by: str | None) -> str:
    return by or os.environ.get("JINGZHUN_USER") or getpass.getuser()


class _Opened:
    """The project's workspace, for its ``privacy`` part; closes the workspace at the end."""

    def __init__(self, project_dir: Path) -> None:
        self.workspace = Workspace.open(project_dir)

    def __enter__(self) -> PrivacyPart:
        return self.workspace.privacy

    def __exit__(self, *exc: object) -> None:
        self.workspace.close()


def _counts_table(title: str, counts: dict[str, Any]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, value in sorted(counts.items()):
        shown = value if isinstance(value, int) else ", ".join(f"{k} {v}" for k, v in value.items())
        table.add_row(name, str(shown))
    return table


@privacy_app.command("export")
@handles_errors
def export(
    subject: SubjectArgument,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Write <request>.json here (plain: it is the person's copy)."),
    ] = None,
    zipped: Annotated[
        bool,
        typer.Option("--zip", help="Also write <request>.zip: export.json + one CSV per table."),
    ] = False,
    archive: Annotated[
        bool,
        typer.Option(
            "--archive",
            help="Keep a copy encrypted under the person's key in state/privacy/exports "
            "(unreadable once the person is erased).",
        ),
    ] = False,
    by: ByOption = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Everything held about a person: raw rows, profile, tags and history, segments, scores,
    recommendations, deliveries, consents, merge log, files. Recorded in privacy_requests.
    """
    with _Opened(project) as service:
        result = service.export(subject, by=_user(by))
        written: list[str] = []
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / f"{result.request_id}.json"
            path.write_bytes(result.json_bytes())
            written.append(str(path))
            if zipped:
                path = out_dir / f"{result.request_id}.zip"
                path.write_bytes(result.zip_bytes())
                written.append(str(path))
        if archive:
            written.append(str(service.archive_export(result)))
    if as_json or out_dir is None:
        payload = result.to_dict()
        payload["written"] = written
        print_json(payload)
        return
    out.print(f"export {result.request_id}: customer {', '.join(result.customer_keys) or '-'}")
    out.print(_counts_table("warehouse", {k: len(v) for k, v in result.warehouse.items()}))
    out.print(_counts_table("operational store", {k: len(v) for k, v in result.store.items()}))
    for hit in result.files:
        out.print(f"file {hit['path']}: {hit['rows']} row(s)", highlight=False)
    for name in written:
        out.print(f"written: {name}", highlight=False)


@privacy_app.command("correct")
@handles_errors
def correct(
    subject: SubjectArgument,
    field: Annotated[str, typer.Option("--field", help="Attribute to correct (e.g. email, city).")],
    value: Annotated[
        str | None, typer.Option("--value", help="The correct value (omit to clear it).")
    ] = None,
    by: ByOption = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Fix an attribute at the source layer, so it survives rebuilds and later loads."""
    with _Opened(project) as service:
        report = service.correct(subject, field, value, by=_user(by))
    if as_json:
        print_json(report.to_dict())
        return
    out.print(
        f"corrected {report.field} on {report.records} record(s) (request {report.request_id}); "
        f"{report.note}",
        highlight=False,
    )


@privacy_app.command("erase")
@handles_errors
def erase(
    subject: SubjectArgument,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    by: ByOption = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Delete a person from the warehouse, the operational store and every file under the
    project; keep keyed-hash tombstones so their identifiers stay out. Cannot be undone.
    """
    question = f"Erase everything about '{subject}'? This cannot be undone"
    if not yes and (as_json or not typer.confirm(question, default=False)):
        err.print("not erased: pass --yes to confirm", highlight=False)
        raise typer.Exit(int(ExitCode.REFUSED))
    with _Opened(project) as service:
        report = service.erase(subject, by=_user(by))
    if as_json:
        print_json(report.to_dict())
    else:
        out.print(f"erased (request {report.request_id}); tombstones: {report.tombstones}")
        out.print(_counts_table("warehouse", report.warehouse))
        out.print(_counts_table("operational store", report.store))
        for hit in report.files:
            out.print(f"file {hit['path']}: {hit['action']} ({hit['rows']})", highlight=False)
        for path in report.needs_review:
            err.print(f"[yellow]needs review:[/] {path}", highlight=False)
    if not report.complete:
        raise typer.Exit(int(ExitCode.DATA_ERROR))


@privacy_app.command("retention")
@handles_errors
def retention(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be purged; change nothing.")
    ] = False,
    as_of: AsOfOption = None,
    by: ByOption = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Purge rows older than each table's retention in privacy.yml."""
    day: date | None = parse_date(as_of)
    with _Opened(project) as service:
        report = service.retention(as_of=day, dry_run=dry_run, by=_user(by))
    if as_json:
        print_json(report.to_dict())
        return
    if not report.cutoffs:
        out.print("no retention rules: add 'retention:' to privacy.yml")
        return
    verb = "would purge" if dry_run else "purged"
    for name, rows in sorted(report.rows.items()):
        out.print(f"{name}: {verb} {rows:,} row(s) before {report.cutoffs[name]}", highlight=False)


@privacy_app.command("requests")
@handles_errors
def requests(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """The privacy audit trail: who exported, corrected or erased whom (as a keyed hash)."""
    with _Opened(project) as service:
        rows = service.requests(limit)
    if as_json:
        print_json(rows)
        return
    table = Table(title="privacy requests", title_justify="left")
    for column in ("requested_at", "kind", "status", "requested_by", "subject_hash"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["requested_at"],
            row["kind"],
            row["status"],
            row["requested_by"],
            (row["subject_hash"] or "")[:16],
        )
    out.print(table)


@privacy_app.command("encrypt")
@handles_errors
def encrypt(
    check: Annotated[
        bool,
        typer.Option("--check", help="Only count personal values stored in clear; exit 1 if any."),
    ] = False,
    by: ByOption = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Encrypt personal values the warehouse still holds in clear, then compact it."""
    with _Opened(project) as part:
        result = part.encrypt(by=_user(by), check=check)
    if as_json:
        print_json(result)
    elif check:
        for column, count in sorted(result["unsealed"].items()):
            out.print(f"{column}: {count:,} value(s) in clear", highlight=False)
        if not result["unsealed"]:
            out.print("every personal value in the warehouse is encrypted")
    else:
        for column, count in sorted(result["unsealed_before"].items()):
            out.print(f"{column}: {count:,} value(s) encrypted", highlight=False)
        if not result["tables_rewritten"]:
            out.print("nothing to do: every personal value was already encrypted")
    if check and result["unsealed"]:
        raise typer.Exit(1)


@keys_app.command("rotate")
@handles_errors
def rotate(
    by: ByOption = None, project: ProjectOption = Path("."), as_json: JsonOption = False
) -> None:
    """Re-wrap every data key under a new master key (the old one is then useless)."""
    with _Opened(project) as service:
        result = service.rotate_keys(by=_user(by))
    if as_json:
        print_json(result)
        return
    out.print(
        f"{result['keys_rewrapped']} data key(s) re-wrapped: master {result['old_master_id']} → "
        f"{result['new_master_id']}",
        highlight=False,
    )
    if result.get("next_step"):
        err.print(f"[yellow]next:[/] {result['next_step']}", highlight=False)


__all__ = ["privacy_app"]
