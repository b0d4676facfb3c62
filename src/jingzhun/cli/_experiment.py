"""``jingzhun experiment``: analyse randomised experiments and plan their size."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from jingzhun.cli._common import JsonOption, handles_errors, out, print_json
from jingzhun.core import IngestError, NotFoundError, SpecError, SpecProblem
from jingzhun.measure import (
    ArmComparison,
    ComparisonMethod,
    Correction,
    ExperimentReport,
    analyze_experiment,
    sample_size_means,
    sample_size_proportions,
    write_experiment_report,
)

experiment_app = typer.Typer(help="Analyse randomised experiments: lifts, intervals, SRM.")

_PARQUET_SUFFIXES = (".parquet", ".pq")


def is_parquet(path: Path) -> bool:
    """Whether the file is read as Parquet (by its suffix); otherwise as CSV."""
    return path.name.lower().endswith(_PARQUET_SUFFIXES)


def read_table(path: Path, text_columns: Sequence[str] = ()) -> pd.DataFrame:
    """A CSV (optionally gzipped) or Parquet file as a frame; ``text_columns`` read as text."""
    if not path.exists():
        raise NotFoundError(f"{path}: the file does not exist")
    if not path.is_file():
        raise NotFoundError(f"{path}: not a file")
    try:
        if is_parquet(path):
            return pd.read_parquet(path)
        header = pd.read_csv(path, nrows=0).columns
        # Labels and ids as text, so that 1 and 01 stay as written; only an empty cell is
        # missing ("NA" or "n/a" is a value that is not a number, and is reported as such).
        dtype = {name: str for name in text_columns if name in header} or None
        return pd.read_csv(path, dtype=dtype, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise IngestError(path, "the file is empty: no header line") from None
    except (ValueError, OSError, EOFError, pd.errors.ParserError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise IngestError(
            path,
            f"cannot read the table: {message}",
            hint="give a CSV (.csv, .csv.gz) with a header line, or a Parquet file",
        ) from None


def _pairs(text: str | None, option: str, path: Path) -> dict[str, str]:
    """``a=b,c=d`` as a dict, or a SpecError naming the option."""
    if not text:
        return {}
    pairs: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise SpecError(
                [SpecProblem(path, None, option, f"'{item}' is not of the form name=value")]
            )
        pairs[key.strip()] = value.strip()
    return pairs


def _shares(text: str | None, path: Path) -> dict[str, float] | None:
    pairs = _pairs(text, "--expected-shares", path)
    if not pairs:
        return None
    shares: dict[str, float] = {}
    for arm, value in pairs.items():
        try:
            shares[arm] = float(value)
        except ValueError:
            raise SpecError(
                [
                    SpecProblem(
                        path, None, "--expected-shares", f"'{value}' for {arm} is not a number"
                    )
                ]
            ) from None
    return shares


def _number(value: float, sign: str = "") -> str:
    if not math.isfinite(value):
        return "—"
    return f"{value:{sign},.4f}" if abs(value) < 1000 else f"{value:{sign},.0f}"


def _value(comparison: ArmComparison, value: float) -> str:
    """Proportions as percentages, means as numbers."""
    if comparison.method is ComparisonMethod.PROPORTIONS_Z:
        return f"{value * 100:.3f}%" if math.isfinite(value) else "—"
    return _number(value)


def _lift(comparison: ArmComparison, value: float) -> str:
    """A difference: percentage points for proportions."""
    if comparison.method is ComparisonMethod.PROPORTIONS_Z:
        return f"{value * 100:+.3f}" if math.isfinite(value) else "—"
    return _number(value, "+")


def _unit(comparison: ArmComparison) -> str:
    return " pt" if comparison.method is ComparisonMethod.PROPORTIONS_Z else ""


def _percent(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value * 100:+.1f}%"


def _p(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.2e}" if value < 1e-4 else f"{value:.4f}"


def _print_report(report: ExperimentReport, table_path: Path) -> None:
    level = f"{(1 - report.alpha) * 100:g}%"
    arms = ", ".join(f"{arm} {n:,}" for arm, n in report.arms.items())
    out.print(f"[bold]{table_path.name}[/]: {report.arm_col} — {arms}", highlight=False)
    srm = report.srm
    verdict = (
        "[bold red]sample-ratio mismatch[/]: the assignment is suspect; find the cause first"
        if srm.mismatch
        else "[green]no sample-ratio mismatch[/]"
    )
    out.print(
        f"SRM: chi² {srm.chi2:.3f} (df {srm.df}), p = {srm.p_value:.4g} — {verdict}",
        highlight=False,
    )
    for metric in report.metrics:
        rows = report.for_metric(metric)
        # One column per arm, so the table stays narrow however many figures it shows.
        table = Table(title=f"{metric} ({rows[0].method})", title_justify="left")
        table.add_column("")
        table.add_column(f"{report.control} (control)", justify="right")
        for c in rows:
            table.add_column(c.arm, justify="right")
        table.add_row("n", f"{rows[0].n_control:,}", *(f"{c.n_treatment:,}" for c in rows))
        table.add_row(
            "mean",
            _value(rows[0], rows[0].control_mean),
            *(_value(c, c.treatment_mean) for c in rows),
        )
        table.add_row("lift", "", *(_lift(c, c.absolute_lift) + _unit(c) for c in rows))
        table.add_row(
            f"{level} CI",
            "",
            *(f"[{_lift(c, c.ci_low)}, {_lift(c, c.ci_high)}]{_unit(c)}" for c in rows),
        )
        table.add_row("relative lift", "", *(_percent(c.relative_lift) for c in rows))
        table.add_row(
            f"relative {level} CI",
            "",
            *(f"[{_percent(c.relative_ci_low)}, {_percent(c.relative_ci_high)}]" for c in rows),
        )
        table.add_row("p", "", *(_p(c.p_value) for c in rows))
        if len(rows) > 1 and report.correction is not Correction.NONE:
            table.add_row(f"p ({report.correction})", "", *(_p(c.p_value_adjusted) for c in rows))
        if rows[0].variance_reduction is not None:
            table.add_row("CUPED theta", "", *(f"{c.theta:.4g}" for c in rows))
            table.add_row(
                "variance cut", "", *(f"{(c.variance_reduction or 0) * 100:.2f}%" for c in rows)
            )
        out.print(table)


@experiment_app.command()
@handles_errors
def analyze(
    table: Annotated[
        Path, typer.Option("--table", help="One row per unit: CSV, CSV.gz or Parquet.")
    ],
    arm_col: Annotated[str, typer.Option("--arm-col", help="Column holding each unit's arm.")],
    control: Annotated[str, typer.Option("--control", help="The control arm's value.")],
    metrics: Annotated[
        str, typer.Option("--metrics", help="Outcome columns, comma-separated: visit,spend.")
    ],
    cuped: Annotated[
        str | None,
        typer.Option(
            "--cuped", help="CUPED pre-period columns: metric=column,... (e.g. spend=history)."
        ),
    ] = None,
    correction: Annotated[
        str,
        typer.Option("--correction", help="Across variants: holm, bonferroni or none."),
    ] = "holm",
    expected_shares: Annotated[
        str | None,
        typer.Option(
            "--expected-shares",
            help="Planned shares for the SRM check: arm=0.5,... (default equal).",
        ),
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="1 - confidence level.")] = 0.05,
    report_path: Annotated[
        Path | None,
        typer.Option(
            "--report", help="Also write an offline HTML report (and PNG charts with kaleido)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Each arm against control on each metric: means, lift, CI, p-value, and the SRM check."""
    names = [name.strip() for name in metrics.split(",") if name.strip()]
    covariates = _pairs(cuped, "--cuped", table)
    shares = _shares(expected_shares, table)
    if correction not in {c.value for c in Correction}:
        raise SpecError(
            [
                SpecProblem(
                    table, None, "--correction", f"'{correction}' is not holm, bonferroni or none"
                )
            ]
        )
    frame = read_table(table, [arm_col])
    report = analyze_experiment(
        frame,
        arm_col,
        control,
        names,
        covariates=covariates,
        expected_shares=shares,
        correction=correction,
        alpha=alpha,
        source=table,
        # Rows as ingest counts them: a CSV's header is line 1; Parquet records count from 1.
        row_offset=1 if is_parquet(table) else 2,
    )
    files = None
    if report_path is not None:
        try:
            files = write_experiment_report(
                report,
                report_path,
                title=f"Experiment: {table.name}",
                notes=[f"Table: {table.name}, one row per unit; arms in '{arm_col}'."],
            )
        except OSError as exc:
            raise SpecError(
                [SpecProblem(report_path, None, "--report", f"cannot write it: {exc}")]
            ) from None
    if as_json:
        extra = {} if files is None else {"report": files.to_dict()}
        print_json({"table": str(table), **report.to_dict(), **extra})
        return
    _print_report(report, table)
    if files is not None:
        out.print(f"report written to [bold]{files.html}[/]", highlight=False)
        for image in files.images:
            out.print(f"  chart {image}", highlight=False)
        for note in files.notes:
            out.print(f"  [yellow]note:[/] {note}", highlight=False)


@experiment_app.command()
@handles_errors
def plan(
    mde: Annotated[
        float,
        typer.Option("--mde", help="Smallest effect worth detecting (absolute, or --relative)."),
    ],
    baseline: Annotated[
        float | None,
        typer.Option("--baseline", help="Control conversion rate, or control mean with --sd."),
    ] = None,
    sd: Annotated[
        float | None, typer.Option("--sd", help="Standard deviation of a continuous metric.")
    ] = None,
    relative: Annotated[
        bool, typer.Option("--relative", help="--mde is a share of the baseline.")
    ] = False,
    alpha: Annotated[float, typer.Option("--alpha", help="Two-sided level.")] = 0.05,
    power: Annotated[float, typer.Option("--power", help="Chance to detect the effect.")] = 0.8,
    arms: Annotated[
        int, typer.Option("--arms", help="Arms including control (alpha split by Bonferroni).")
    ] = 2,
    ratio: Annotated[
        float, typer.Option("--ratio", help="Units in each treatment arm per control unit.")
    ] = 1.0,
    as_json: JsonOption = False,
) -> None:
    """Units per arm to detect an effect: proportions (--baseline) or means (--sd)."""
    where = Path("experiment plan")
    if arms < 2:
        raise SpecError([SpecProblem(where, None, "--arms", f"{arms}: need control and one arm")])
    try:
        if sd is not None:
            size = sample_size_means(
                sd,
                mde,
                baseline=baseline,
                relative=relative,
                alpha=alpha,
                power=power,
                ratio=ratio,
                comparisons=arms - 1,
            )
        elif baseline is not None:
            size = sample_size_proportions(
                baseline,
                mde,
                relative=relative,
                alpha=alpha,
                power=power,
                ratio=ratio,
                comparisons=arms - 1,
            )
        else:
            raise ValueError("give --baseline (a conversion rate) or --sd (for a mean)")
    except ValueError as exc:
        raise SpecError([SpecProblem(where, None, "options", str(exc))]) from None
    if as_json:
        print_json(size.to_dict())
        return
    what = (
        f"a conversion rate of {size.baseline:.4g}"
        if size.sd is None
        else f"a mean with sd {size.sd:g}"
    )
    out.print(
        f"To detect {size.mde_absolute:+.4g} on {what} with power {size.power:g} at alpha "
        f"{size.alpha_per_comparison:.4g} per comparison (two-sided):",
        highlight=False,
    )
    out.print(
        f"  control {size.n_control:,}, each of {size.comparisons} treatment arm(s) "
        f"{size.n_treatment:,}; total {size.n_total:,}",
        highlight=False,
    )
