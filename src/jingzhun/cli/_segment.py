"""``jingzhun segment``: list, count, preview, explain, export and build audiences."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from jingzhun.cli._common import (
    JsonOption,
    ProjectOption,
    arrow_table,
    handles_errors,
    out,
    print_json,
)
from jingzhun.workspace import Workspace

segment_app = typer.Typer(help="Segments: audiences from rules, counted, previewed, explained.")

NameArgument = Annotated[str, typer.Argument(help="Segment name (a file under segments/).")]
ColumnsOption = Annotated[
    str | None, typer.Option("--columns", help="Comma-separated profile columns to show.")
]


def _columns(value: str | None) -> list[str] | None:
    return [c.strip() for c in value.split(",") if c.strip()] if value else None


@segment_app.command("list")
@handles_errors
def segment_list(
    counts: Annotated[bool, typer.Option(help="Count every segment too.")] = True,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Every segment in segments/, in dependency order, with its count."""
    with Workspace.open(project) as ws:
        specs = ws.segments.specs()
        sizes = ws.segments.counts() if counts and specs else {}
        rows = [
            {
                "segment": name,
                "description": spec.description,
                "file": str(spec.file) if spec.file else None,
                "count": sizes.get(name),
            }
            for name, spec in specs.items()
        ]
    if as_json:
        print_json({"segments": rows})
        return
    table = Table(title=f"segments ({len(rows)})", title_justify="left")
    table.add_column("segment")
    table.add_column("count", justify="right")
    table.add_column("description", overflow="fold")
    for row in rows:
        count = "" if row["count"] is None else f"{row['count']:,}"
        table.add_row(str(row["segment"]), count, str(row["description"] or ""))
    out.print(table)


@segment_app.command("count")
@handles_errors
def segment_count(
    name: NameArgument, project: ProjectOption = Path("."), as_json: JsonOption = False
) -> None:
    """How many customers the segment holds now."""
    with Workspace.open(project) as ws:
        count = ws.segments.count(name)
    if as_json:
        print_json({"segment": name, "count": count})
    else:
        out.print(f"{name}: [bold]{count:,}[/] customers")


@segment_app.command("preview")
@handles_errors
def segment_preview(
    name: NameArgument,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 20,
    columns: ColumnsOption = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """The first members with their main columns; e-mails, phones and names masked."""
    with Workspace.open(project) as ws:
        rows = ws.segments.preview(name, limit=limit, columns=_columns(columns))
    if as_json:
        print_json({"segment": name, "rows": rows.to_pylist()})
    else:
        out.print(arrow_table(f"{name} (first {rows.num_rows}, PII masked)", rows))


@segment_app.command("explain")
@handles_errors
def segment_explain(
    name: NameArgument,
    customer: Annotated[
        str, typer.Argument(help="A customer_key, source customer id, device, e-mail or phone.")
    ],
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Why a customer is in or out: every predicate with the customer's value, true or false."""
    with Workspace.open(project) as ws:
        explanation = ws.segments.explain(name, customer)
    if as_json:
        print_json(explanation.to_dict())
        return
    verdict = "[green]IN[/]" if explanation.member else "[red]OUT[/]"
    out.print(f"{explanation.customer_key} is {verdict} {name} (as of {explanation.as_of})")
    table = Table(title_justify="left")
    table.add_column("rule")
    table.add_column("value", justify="right")
    table.add_column("result")
    for step in explanation.steps:
        mark = "[green]true[/]" if step.result else "[red]false[/]"
        value = "" if step.value is None else str(step.value)
        table.add_row("  " * step.depth + step.rule, value, mark)
    out.print(table)


@segment_app.command("export")
@handles_errors
def segment_export(
    name: NameArgument,
    output: Annotated[Path, typer.Option("--out", help="A .csv, .csv.gz or .parquet file.")],
    columns: ColumnsOption = None,
    mask_pii: Annotated[
        bool, typer.Option("--mask-pii", help="Mask e-mails, phones and names in the file.")
    ] = False,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Write the members to a file (CSV or Parquet by extension)."""
    with Workspace.open(project) as ws:
        rows = ws.segments.export(name, output, columns=_columns(columns), mask_pii=mask_pii)
    if as_json:
        print_json({"segment": name, "out": str(output), "rows": rows})
    else:
        out.print(f"wrote {rows:,} members of {name} to [bold]{output}[/]")


@segment_app.command("sql")
@handles_errors
def segment_sql(
    name: NameArgument, project: ProjectOption = Path("."), as_json: JsonOption = False
) -> None:
    """The SQL the segment compiles to on this project's engine."""
    with Workspace.open(project) as ws:
        sql = ws.segments.sql(name)
        engine = ws.engine.kind.value
    if as_json:
        print_json({"segment": name, "engine": engine, "sql": sql})
    else:
        out.print(sql, highlight=False, markup=False)


@segment_app.command("build")
@handles_errors
def segment_build(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """Evaluate every segment and record who entered and who exited since the last build."""
    with Workspace.open(project) as ws:
        report = ws.segments.build()
    if as_json:
        print_json(report.to_dict())
        return
    table = Table(title=f"segments as of {report.as_of}", title_justify="left")
    for column in ("segment", "members", "entered", "exited"):
        table.add_column(column, justify="left" if column == "segment" else "right")
    for name, figures in report.segments.items():
        table.add_row(name, *(f"{figures[k]:,}" for k in ("members", "entered", "exited")))
    out.print(table)


@segment_app.command("changes")
@handles_errors
def segment_changes(
    name: Annotated[str | None, typer.Argument(help="One segment (default: all).")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 50,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """The latest entries and exits recorded by segment builds."""
    with Workspace.open(project) as ws:
        rows = ws.segments.changes(name, limit)
    if as_json:
        print_json({"changes": rows.to_pylist()})
    else:
        out.print(arrow_table("segment changes", rows))


@segment_app.command("cluster")
@handles_errors
def segment_cluster(
    cluster_set: Annotated[str, typer.Argument(help="Name of the cluster set (segments/<name>/).")],
    method: Annotated[str, typer.Option(help="kmeans or gmm.")] = "kmeans",
    k: Annotated[int | None, typer.Option(help="Clusters (default: chosen by silhouette).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same clusters).")] = 0,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Cluster customers by behaviour and save each cluster as a segment, described in words."""
    with Workspace.open(project) as ws:
        result = ws.segments.cluster(cluster_set, method=method, k=k, seed=seed)
    payload = result.to_dict()
    if as_json:
        print_json(payload)
        return
    out.print(f"{cluster_set}: {payload.get('k')} clusters ({method}, seed {seed})")
    for cluster in payload.get("clusters", []):
        out.print(f"  {cluster.get('segment')}: {cluster.get('size'):,} — {cluster.get('label')}")


@segment_app.command("lookalike")
@handles_errors
def segment_lookalike(
    seed_segment: NameArgument,
    top: Annotated[int | None, typer.Option(help="Keep the top N look-alikes.")] = None,
    method: Annotated[str, typer.Option(help="pu or classifier.")] = "pu",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    evaluate: Annotated[
        bool, typer.Option(help="Also hide 30% of the seed and report how many come back.")
    ] = False,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Rank everybody outside a seed segment by similarity; use with `lookalike: {seed, top}`."""
    with Workspace.open(project) as ws:
        result = ws.segments.lookalike(seed_segment, top=top, method=method, seed=seed)
        evaluation = ws.segments.evaluate_lookalike(seed_segment, seed=seed) if evaluate else None
    payload = {"lookalike": result.to_dict()}
    if evaluation is not None:
        payload["evaluation"] = evaluation.to_dict()
    if as_json:
        print_json(payload)
        return
    out.print_json(data=payload)
