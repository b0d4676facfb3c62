"""``jingzhun attribution`` and ``jingzhun funnel``: credit channels, count ordered funnels.

``register(app)`` adds both commands to the ``jingzhun`` application.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from jingzhun.cli._common import (
    AsOfOption,
    JsonOption,
    ProjectOption,
    handles_errors,
    out,
    parse_date,
    print_json,
)
from jingzhun.cli._experiment import is_parquet, read_table
from jingzhun.core import SpecError, SpecProblem
from jingzhun.measure import (
    DEFAULT_HALF_LIFE,
    AttributionReport,
    Funnel,
    attribute,
    funnel_from_engine,
)
from jingzhun.workspace import Workspace

_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")


def parse_duration(text: str, option: str, where: Path) -> dt.timedelta:
    """``7d``, ``12h``, ``30m``, ``45s``, ``2w`` or sums such as ``1d12h`` as a timedelta.

    Raises
    ------
    SpecError
        Text that is not such a duration, naming the option.
    """
    value = text.strip().lower()
    parts = _DURATION.findall(value)
    if not value or "".join(number + unit for number, unit in parts) != value:
        raise SpecError(
            [
                SpecProblem(
                    where,
                    None,
                    option,
                    f"'{text}' is not a duration; write e.g. 7d, 12h, 30m, 45s, 2w or 1d12h",
                )
            ]
        )
    return dt.timedelta(seconds=sum(float(number) * _UNITS[unit] for number, unit in parts))


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def _print_attribution(report: AttributionReport, touches: Path) -> None:
    out.print(
        f"[bold]{touches.name}[/]: {report.touches:,} touches in {report.paths:,} paths of "
        f"{report.journeys:,} journeys; {report.conversions:,.0f} conversions credited"
        + (
            f", {report.unattributed_conversions:,.0f} with no touch before them"
            if report.unattributed_conversions
            else ""
        ),
        highlight=False,
    )
    table = Table(title="conversions credited (share)", title_justify="left")
    table.add_column("channel")
    for model in report.credits:
        table.add_column(model, justify="right")
    for channel in report.channels:
        cells = [
            f"{credit.conversions[channel]:,.1f} ({credit.shares[channel]:.1%})"
            for credit in report.credits.values()
        ]
        table.add_row(channel, *cells)
    out.print(table)
    markov = report.credits.get("markov")
    if markov is not None and markov.removal_effects is not None:
        effects = ", ".join(f"{ch} {e:.3f}" for ch, e in markov.removal_effects.items())
        out.print(
            f"Markov: P(conversion) {markov.conversion_probability:.4f}; removal effects {effects}",
            highlight=False,
        )


@handles_errors
def attribution(
    touches: Annotated[
        Path,
        typer.Option("--touches", help="Touch log, one row per touch: CSV, CSV.gz or Parquet."),
    ],
    journey_col: Annotated[
        str, typer.Option("--journey-col", help="Journey or customer id.")
    ] = "journey_id",
    time_col: Annotated[str, typer.Option("--time-col", help="Time of the touch.")] = "timestamp",
    channel_col: Annotated[str, typer.Option("--channel-col", help="Channel.")] = "channel",
    conversion_col: Annotated[
        str | None,
        typer.Option(
            "--conversion-col",
            help="Conversion flag or count per journey (default 'converted').",
        ),
    ] = None,
    conversion_event: Annotated[
        str | None,
        typer.Option(
            "--conversion-event",
            help="Instead of a flag: the channel value that marks a conversion row.",
        ),
    ] = None,
    value_col: Annotated[
        str | None, typer.Option("--value-col", help="Conversion value (revenue), optional.")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            "--models",
            help="Comma-separated: first_touch,last_touch,linear,time_decay,position_based,"
            "markov,shapley (default all).",
        ),
    ] = None,
    half_life: Annotated[
        str, typer.Option("--half-life", help="Half-life of time decay, e.g. 7d or 12h.")
    ] = "7d",
    first: Annotated[float, typer.Option("--first", help="Position-based: first touch.")] = 0.4,
    last: Annotated[float, typer.Option("--last", help="Position-based: last touch.")] = 0.4,
    markov_order: Annotated[
        int, typer.Option("--markov-order", help="Channels per Markov state.")
    ] = 1,
    as_json: JsonOption = False,
) -> None:
    """Credit the conversions in a touch log to channels, by up to seven models."""
    if conversion_event is not None and conversion_col is not None:
        raise SpecError(
            [
                SpecProblem(
                    touches,
                    None,
                    "--conversion-col/--conversion-event",
                    "give one: a flag column or the channel value that marks conversions",
                )
            ]
        )
    if conversion_event is None and conversion_col is None:
        conversion_col = "converted"
    decay = parse_duration(half_life, "--half-life", touches) if half_life else DEFAULT_HALF_LIFE
    frame = read_table(touches, [journey_col, channel_col])
    report = attribute(
        frame,
        models=_names(models),
        journey_col=journey_col,
        time_col=time_col,
        channel_col=channel_col,
        conversion_col=conversion_col,
        conversion_event=conversion_event,
        value_col=value_col,
        half_life=decay,
        first=first,
        last=last,
        markov_order=markov_order,
        source=touches,
        row_offset=1 if is_parquet(touches) else 2,
    )
    if as_json:
        print_json({"touch_log": str(touches), **report.to_dict()})
        return
    _print_attribution(report, touches)


def _print_funnel(result: Funnel) -> None:
    window = "no window" if result.within is None else f"within {result.within}"
    out.print(f"funnel as of {result.as_of}, {window}", highlight=False)
    table = Table(title_justify="left")
    table.add_column("step")
    table.add_column("customers", justify="right")
    table.add_column("from previous", justify="right")
    table.add_column("from start", justify="right")
    for step in result.steps:
        table.add_row(
            step.step,
            f"{step.customers:,}",
            "" if step.conversion_from_previous is None else f"{step.conversion_from_previous:.1%}",
            "" if step.conversion_from_start is None else f"{step.conversion_from_start:.1%}",
        )
    out.print(table)


@handles_errors
def funnel(
    steps: Annotated[
        str,
        typer.Option(
            "--steps",
            help="Event types in order, e.g. product_viewed,added_to_cart,order_completed.",
        ),
    ],
    within: Annotated[
        str | None,
        typer.Option("--within", help="Longest time from the first step to the last, e.g. 7d."),
    ] = None,
    as_of: AsOfOption = None,
    include_late_loads: Annotated[
        bool,
        typer.Option("--include-late-loads", help="Count events loaded after --as-of too."),
    ] = False,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Customers who went through event types in order, and the conversion between steps."""
    names = _names(steps) or []
    window = parse_duration(within, "--within", Path("funnel")) if within else None
    cutoff = parse_date(as_of)
    with Workspace.open(project) as ws:
        result = funnel_from_engine(
            ws.engine, names, window, cutoff, include_late_loads=include_late_loads
        )
    if as_json:
        print_json(result.to_dict())
        return
    _print_funnel(result)


def register(app: typer.Typer) -> None:
    """Add ``attribution`` and ``funnel`` to the ``jingzhun`` application."""
    app.command("attribution")(attribution)
    app.command("funnel")(funnel)
