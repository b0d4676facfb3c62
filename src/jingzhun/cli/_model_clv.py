"""Model sub-commands (registered on ``jingzhun.cli._model``): CLV and retention."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from jingzhun.cli._common import JsonOption, handles_errors, out, parse_date, print_json
from jingzhun.cli._model import fit_app, model_app
from jingzhun.core import IngestError, SpecError, SpecProblem
from jingzhun.models._clv import (
    Separator,
    TimeUnit,
    fit_clv,
    read_transactions,
)
from jingzhun.models._customer_clv import write_clv_report
from jingzhun.models._retention import CohortPeriod, ShiftedBetaGeometric, cohort_retention

TransactionsOption = Annotated[
    Path,
    typer.Option(
        "--transactions",
        help="Transactions: CSV (.csv, .csv.gz), Parquet, or whitespace-separated text.",
    ),
]
CustomerColOption = Annotated[str, typer.Option("--customer-col", help="Column of customer ids.")]
DateColOption = Annotated[
    str, typer.Option("--date-col", help="Column of purchase dates (ISO 8601 or YYYYMMDD).")
]
ColumnsOption = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Names of the file's columns, comma-separated, for files without a header "
        "(e.g. CDNOW_sample.txt: customer_id,sample_id,date,quantity,amount).",
    ),
]
HeaderOption = Annotated[
    bool | None,
    typer.Option(
        "--header/--no-header",
        help="Whether the first line names the columns (default: guessed when --columns is "
        "given, else yes).",
    ),
]
SepOption = Annotated[
    Separator, typer.Option("--sep", help="Field separator of text files (auto: guessed).")
]
DateFormatOption = Annotated[
    str | None,
    typer.Option("--date-format", help="strptime format of the dates, e.g. %d/%m/%Y."),
]


def _column_names(columns: str | None) -> list[str] | None:
    if columns is None:
        return None
    names = [name.strip() for name in columns.split(",")]
    if not all(names) or len(set(names)) != len(names):
        raise SpecError(
            [SpecProblem(Path("--columns"), None, "columns", "expected distinct names, a,b,c")]
        )
    return names


def _problem(option: str, message: str) -> SpecError:
    return SpecError([SpecProblem(Path(option), None, option.lstrip("-"), message)])


@fit_app.command("clv")
@handles_errors
def fit_clv_command(
    transactions: TransactionsOption,
    customer_col: CustomerColOption,
    date_col: DateColOption,
    amount_col: Annotated[
        str | None,
        typer.Option("--amount-col", help="Column of amounts: fits Gamma-Gamma and CLV."),
    ] = None,
    calibration_end: Annotated[
        str | None,
        typer.Option(
            "--calibration-end",
            help="Last day fitted on (YYYY-MM-DD, default: the last purchase); later purchases "
            "are the holdout the forecast is checked against.",
        ),
    ] = None,
    observation_end: Annotated[
        str | None,
        typer.Option("--observation-end", help="Last day of the holdout (default: last purchase)."),
    ] = None,
    time_unit: Annotated[
        TimeUnit, typer.Option("--time-unit", help="Unit of recency, T and the parameters.")
    ] = TimeUnit.WEEK,
    horizon: Annotated[
        int, typer.Option(min=1, help="Months ahead for expected purchases and CLV.")
    ] = 12,
    discount_rate: Annotated[
        float, typer.Option(min=0.0, help="Monthly discount rate of the CLV.")
    ] = 0.01,
    pareto_nbd: Annotated[
        bool, typer.Option("--pareto-nbd/--no-pareto-nbd", help="Also fit Pareto/NBD.")
    ] = True,
    columns: ColumnsOption = None,
    header: HeaderOption = None,
    sep: SepOption = Separator.AUTO,
    date_format: DateFormatOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Per-customer table (.csv, .csv.gz or .parquet): frequency, recency, T, "
            "monetary value, P(alive), expected purchases and CLV over the horizon.",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="An HTML report: parameters, holdout, frequency–recency matrix, P(alive).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Fit BG/NBD, Pareto/NBD and Gamma-Gamma on transactions; check the holdout forecast."""
    cal_end = parse_date(calibration_end, "--calibration-end")
    obs_end = parse_date(observation_end, "--observation-end")
    if cal_end and obs_end and obs_end < cal_end:
        raise _problem("--observation-end", f"{obs_end} is before --calibration-end {cal_end}")
    if output is not None and not _is_table_file(output):
        raise _problem("--out", f"'{output.name}': expected a .csv, .csv.gz or .parquet file")
    frame = read_transactions(
        transactions,
        customer_col=customer_col,
        date_col=date_col,
        amount_col=amount_col,
        columns=_column_names(columns),
        header=header,
        sep=sep,
        date_format=date_format,
    )
    first = frame[date_col].min().date()
    if cal_end is not None and cal_end < first:
        raise _problem("--calibration-end", f"{cal_end} is before the first purchase, {first}")
    try:
        result = fit_clv(
            frame,
            customer_col=customer_col,
            date_col=date_col,
            amount_col=amount_col,
            calibration_end=cal_end,
            observation_end=obs_end,
            time_unit=time_unit,
            pareto_nbd=pareto_nbd,
        )
    except ValueError as exc:  # too little data to summarise or fit
        raise IngestError(transactions, f"cannot fit the CLV models: {exc}") from None
    payload = result.to_dict()
    payload["transactions"] = {"file": transactions.name, "rows": len(frame)}
    if output is not None:
        _write_table(result.customer_table(horizon, discount_rate).reset_index(), output)
        payload["out"] = {"file": str(output), "horizon_months": horizon}
    if report is not None:
        payload["report"] = str(write_clv_report(result, report, source=transactions.name))
    if as_json:
        print_json(payload)
    else:
        _print_clv(payload)


def _is_table_file(path: Path) -> bool:
    return path.name.lower().endswith((".csv", ".csv.gz", ".parquet"))


def _write_table(table: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.lower().endswith(".parquet"):
        table.to_parquet(path, index=False)
    else:
        table.to_csv(path, index=False, float_format="%.6g")


def _print_clv(payload: dict[str, Any]) -> None:
    calibration = payload["calibration"]
    out.print(
        f"{payload['customers']:,} customers; calibration {calibration['start']} to "
        f"{calibration['end']} ({calibration['time_unit']}s): "
        f"{calibration['repeat_purchases']:,} repeat purchases by "
        f"{calibration['repeat_buyers']:,} repeat buyers",
        highlight=False,
    )
    params = Table(title="fitted models", title_justify="left")
    for column in ("model", "parameters", "log-likelihood"):
        params.add_column(column, justify="right" if column == "log-likelihood" else "left")
    for key, label in (
        ("bgnbd", "BG/NBD"),
        ("pareto_nbd", "Pareto/NBD"),
        ("gamma_gamma", "Gamma-Gamma"),
    ):
        if key in payload:
            figures = payload[key]
            names = [n for n in figures if n not in ("log_likelihood", "converged", "customers")]
            text = ", ".join(f"{n} {figures[n]:.4g}" for n in names)
            params.add_row(label, text, f"{figures['log_likelihood']:,.2f}")
    out.print(params)
    holdout = payload.get("holdout")
    if holdout:
        table = Table(
            title=f"holdout {holdout['start']} to {holdout['end']}: "
            f"{holdout['actual']:,} repeat purchases",
            title_justify="left",
        )
        for column in ("model", "predicted", "correlation", "mean abs. error", "cumulative"):
            table.add_column(column, justify="left" if column == "model" else "right")
        checks = [("BG/NBD", holdout)]
        if "pareto_nbd" in holdout:
            checks.append(("Pareto/NBD", holdout["pareto_nbd"]))
        for label, check in checks:
            table.add_row(
                label,
                f"{check['predicted']:,.1f}",
                f"{check['correlation']:.3f}",
                f"{check['mean_absolute_error']:.3f}",
                f"{check['cumulative_predicted']:,.0f} of {holdout['cumulative_actual']:,}",
            )
        out.print(table)
    if "out" in payload:
        out.print(f"per-customer table written to [bold]{payload['out']['file']}[/]")


@model_app.command("retention")
@handles_errors
def retention_command(
    transactions: Annotated[
        Path | None,
        typer.Option(
            "--transactions",
            help="Transactions: CSV (.csv, .csv.gz), Parquet, or whitespace-separated text.",
        ),
    ] = None,
    customer_col: Annotated[
        str | None, typer.Option("--customer-col", help="Column of customer ids.")
    ] = None,
    date_col: Annotated[
        str | None, typer.Option("--date-col", help="Column of purchase dates.")
    ] = None,
    period: Annotated[
        CohortPeriod, typer.Option("--period", help="Cohort and activity period.")
    ] = CohortPeriod.MONTH,
    survivors: Annotated[
        str | None,
        typer.Option(
            "--survivors",
            help="Survivor counts of one contract cohort, comma-separated from its start "
            "(e.g. 1000,631,468,382): fits the shifted-beta-geometric model.",
        ),
    ] = None,
    project_periods: Annotated[
        int, typer.Option("--project", min=0, help="Periods to project beyond the survivors.")
    ] = 5,
    columns: ColumnsOption = None,
    header: HeaderOption = None,
    sep: SepOption = Separator.AUTO,
    date_format: DateFormatOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cohort retention from transactions, and/or an sBG fit of contract survivor counts."""
    if transactions is None and survivors is None:
        raise _problem("--transactions", "give --transactions (with columns) or --survivors")
    payload: dict[str, Any] = {}
    if transactions is not None:
        if not customer_col or not date_col:
            missing = "--customer-col" if not customer_col else "--date-col"
            raise _problem(missing, "is needed with --transactions")
        frame = read_transactions(
            transactions,
            customer_col=customer_col,
            date_col=date_col,
            columns=_column_names(columns),
            header=header,
            sep=sep,
            date_format=date_format,
        )
        counts = cohort_retention(frame, customer_col, date_col, period, counts=True)
        shares = counts.div(counts[0], axis=0)
        payload["period"] = period.value
        payload["cohorts"] = [
            {
                "cohort": str(cohort),
                "customers": int(counts.loc[cohort, 0]),
                "active_share": [round(v, 4) for v in shares.loc[cohort].dropna().tolist()],
            }
            for cohort in shares.index
        ]
    if survivors is not None:
        payload["sbg"] = _fit_sbg(survivors, project_periods)
    if as_json:
        print_json(payload)
        return
    if "cohorts" in payload:
        _print_cohorts(payload)
    if "sbg" in payload:
        _print_sbg(payload["sbg"])


def _fit_sbg(survivors: str, project_periods: int) -> dict[str, Any]:
    try:
        counts = [float(v) for v in survivors.split(",")]
        model = ShiftedBetaGeometric().fit(counts)
    except ValueError as exc:
        raise _problem("--survivors", f"'{survivors}': {exc}") from None
    periods = list(range(len(counts) + project_periods))
    survival = model.expected_survival(periods)
    return {
        "alpha": round(model.params_["alpha"], 4),
        "beta": round(model.params_["beta"], 4),
        "log_likelihood": round(model.log_likelihood_, 4),
        "periods_fitted": model.periods_,
        "expected_survivors": [round(counts[0] * s, 1) for s in survival.tolist()],
        "expected_retention_rate": [
            round(r, 4) for r in model.expected_retention_rate(periods[1:]).tolist()
        ],
    }


_SHOWN_PERIODS = 10  # a terminal's width; --json has every period


def _print_cohorts(payload: dict[str, Any]) -> None:
    cohorts = payload["cohorts"]
    width = max(len(c["active_share"]) for c in cohorts)
    shown = min(width, _SHOWN_PERIODS)
    title = f"% of each cohort active, by {payload['period']} since the first purchase"
    if shown < width:
        title += f" (periods 0-{shown - 1} of 0-{width - 1}; --json has all)"
    table = Table(title=title, title_justify="left")
    table.add_column("cohort", no_wrap=True)
    table.add_column("n", justify="right")
    for k in range(shown):
        table.add_column(str(k), justify="right")
    for cohort in cohorts:
        cells = [f"{100 * v:.0f}" for v in cohort["active_share"][:shown]]
        table.add_row(cohort["cohort"], f"{cohort['customers']:,}", *cells)
    out.print(table)


def _print_sbg(sbg: dict[str, Any]) -> None:
    out.print(
        f"sBG: alpha {sbg['alpha']}, beta {sbg['beta']}, log-likelihood "
        f"{sbg['log_likelihood']:,.2f} ({sbg['periods_fitted']} periods fitted)",
        highlight=False,
    )
    table = Table(title="expected survivors and retention rate", title_justify="left")
    for column in ("period", "survivors", "retention rate"):
        table.add_column(column, justify="right")
    rates = ["", *[f"{r:.3f}" for r in sbg["expected_retention_rate"]]]
    for period, (count, rate) in enumerate(zip(sbg["expected_survivors"], rates, strict=True)):
        table.add_row(str(period), f"{count:,.1f}", rate)
    out.print(table)
