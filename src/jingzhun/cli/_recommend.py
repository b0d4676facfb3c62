"""``jingzhun recommend``: fit recommenders, export and explain recommendations, evaluate them
on a time split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
from jingzhun.recommend import (
    EvaluationMode,
    Method,
)
from jingzhun.workspace import Workspace

recommend_app = typer.Typer(help="Recommendations: what to offer each customer, and why.")

_METHODS = ", ".join(m.value for m in Method)
MethodOption = Annotated[
    str | None,
    typer.Option("--method", help=f"Recommender ({_METHODS}); default from models/recommend.yml."),
]
TopOption = Annotated[
    int | None, typer.Option("--top", min=1, help="Items per customer (default: settings).")
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of ALS, LightGBM and samples.")]


@recommend_app.command("fit")
@handles_errors
def recommend_fit(
    until: Annotated[
        str | None,
        typer.Option(help="Train on orders up to this date (default: the latest order's)."),
    ] = None,
    method: MethodOption = None,
    top: TopOption = None,
    seed: SeedOption = 0,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Train on purchases up to a date; store every customer's top N and similar items."""
    day = parse_date(until, "--until")
    with Workspace.open(project) as ws:
        report = ws.recommend.fit(day, method=method, top=top, random_state=seed)
    if as_json:
        print_json(report.to_dict())
        return
    out.print(
        f"[green]✓[/] {report.method} trained as of [bold]{report.as_of}[/]: "
        f"{report.rows:,} recommendations for {report.customers:,} customers "
        f"({report.buyers:,} with purchases), {report.items_recommended:,} distinct items, "
        f"{report.similar_rows:,} similar-item rows ({report.seconds:.1f} s)"
    )
    for name, rows in sorted(report.rows_by_method.items()):
        out.print(f"  {name}: {rows:,} rows")
    for warning in report.warnings:
        out.print(f"  [yellow]warning:[/] {warning}")


@recommend_app.command("export")
@handles_errors
def recommend_export(
    out_file: Annotated[
        Path, typer.Option("--out", help="File to write: .csv or .parquet (by extension).")
    ],
    top: Annotated[
        int | None, typer.Option("--top", min=1, help="Only the first N of each customer.")
    ] = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Write customer_id, item_id, rank, score, method (the source's ids) to a file."""
    with Workspace.open(project) as ws:
        rows = ws.recommend.export(out_file, top=top)
    if as_json:
        print_json({"out": str(out_file), "rows": rows})
    else:
        out.print(f"[green]✓[/] {rows:,} recommendations written to {out_file}")


@recommend_app.command("show")
@handles_errors
def recommend_show(
    customer: Annotated[
        str,
        typer.Argument(help="A customer_key, source customer id, e-mail, phone or device id."),
    ],
    top: Annotated[int | None, typer.Option("--top", min=1, help="Show the first N.")] = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """A customer's recommendations, each with why (because you bought ...)."""
    with Workspace.open(project) as ws:
        view = ws.recommend.show(customer, top=top)
    if as_json:
        print_json(view)
        return
    title = (
        f"recommendations for {view['customer_key']} ({view['source']} {view['customer_id']}), "
        f"trained as of {view['model_as_of']}"
    )
    table = Table(title=title, title_justify="left")
    for column in ("rank", "item", "name", "method", "why"):
        table.add_column(column, justify="right" if column == "rank" else "left", overflow="fold")
    for r in view["recommendations"]:
        table.add_row(str(r["rank"]), r["item_id"], r["item_name"], r["method"], r["reason"])
    out.print(table)


def _evaluation_table(result: dict[str, Any]) -> Table:
    table = Table(
        title=(
            f"{result['mode']}: trained to {result['split']}, tested "
            f"{result['split']} – {result['test_until']} on {result['customers']:,} customers "
            f"(baseline {result['baseline']})"
        ),
        title_justify="left",
    )
    columns = ("method", "ndcg", "ndcg_vs_baseline", "hit_rate", "precision", "recall")
    for column in (*columns, "coverage", "novelty", "seconds"):
        table.add_column(
            column.replace("_", " "), justify="left" if column == "method" else "right"
        )
    for m in result["methods"]:
        table.add_row(
            *(str(m[c]) for c in columns), str(m["coverage"]), str(m["novelty"]), str(m["seconds"])
        )
    return table


@recommend_app.command("evaluate")
@handles_errors
def recommend_evaluate(
    split: Annotated[str, typer.Option("--split", help="Train up to this date, test after it.")],
    mode: Annotated[
        EvaluationMode,
        typer.Option("--mode", help="discovery (new items) or repurchase (reminders)."),
    ] = EvaluationMode.DISCOVERY,
    until: Annotated[
        str | None, typer.Option(help="End of the test period (default: the latest order).")
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option("--methods", help=f"Comma-separated methods ({_METHODS}); default: all."),
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="List length.")] = 10,
    seed: SeedOption = 0,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """HR@k, NDCG@k, coverage and novelty of each method beside its baseline."""
    split_day = parse_date(split, "--split")
    end = parse_date(until, "--until")
    assert split_day is not None
    names = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    with Workspace.open(project) as ws:
        result = ws.recommend.evaluate(
            split_day, mode, until=end, methods=names, k=k, random_state=seed
        ).to_dict()
    if as_json:
        print_json(result)
    else:
        out.print(_evaluation_table(result))
