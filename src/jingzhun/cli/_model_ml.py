"""Model sub-commands (registered on ``jingzhun.cli._model``): propensity, uplift and churn
fits, scoring a file, and the registry (list, show, evaluate with an HTML report).

Models are saved in the registry of ``--project`` (default: the current folder): a jingzhun
project's, or for a plain folder a standalone one in ``<folder>/.jingzhun/``.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
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
from jingzhun.cli._model import fit_app, model_app
from jingzhun.core import JingzhunError, SpecError, SpecProblem
from jingzhun.models import (
    MODEL_KINDS,
    BinaryEvaluation,
    Calibration,
    Estimator,
    ModelRecord,
    ModelRegistry,
    PropensityModel,
    TableFit,
    UpliftEvaluation,
    UpliftFit,
    evaluate_propensity_table,
    evaluate_uplift_table,
    evaluation_from_metrics,
    file_fingerprint,
    fit_customer_model,
    fit_propensity_table,
    fit_uplift_table,
    open_registry,
    read_table,
    score_file,
    table_columns,
    write_model_report,
)
from jingzhun.workspace import Workspace


class EstimatorChoice(StrEnum):
    """The propensity learner."""

    LIGHTGBM = "lightgbm"
    LOGISTIC = "logistic"


class CalibrationChoice(StrEnum):
    """How scores become probabilities."""

    SIGMOID = "sigmoid"
    ISOTONIC = "isotonic"
    NONE = "none"


class UpliftMethodChoice(StrEnum):
    """The uplift learner."""

    CLASS_TRANSFORMATION = "class_transformation"
    T_LEARNER = "t_learner"
    X_LEARNER = "x_learner"


TableOption = Annotated[
    Path | None,
    typer.Option("--table", help="The table: .csv, .csv.gz or .parquet, one row per customer."),
]
ExcludeOption = Annotated[
    str | None,
    typer.Option("--exclude", help="Columns that must not be features, comma-separated."),
]
IdColumnOption = Annotated[
    str | None,
    typer.Option("--id-column", help="Column that identifies a row (never a feature)."),
]
NameOption = Annotated[
    str | None, typer.Option("--name", help="Model name in the registry (default: the kind).")
]
EstimatorOption = Annotated[
    EstimatorChoice, typer.Option("--estimator", help="LightGBM or logistic regression.")
]
CalibrationOption = Annotated[
    CalibrationChoice, typer.Option("--calibration", help="Probability calibration.")
]
ThreadsOption = Annotated[
    int | None, typer.Option("--threads", min=1, help="LightGBM threads (default: all).")
]
ModelIdArgument = Annotated[str, typer.Argument(help="Model id, from `jingzhun model list`.")]


def _problem(option: str, message: str) -> SpecError:
    return SpecError([SpecProblem(Path(option), None, option.lstrip("-"), message)])


def _propensity_model(
    estimator: EstimatorChoice,
    calibration: CalibrationChoice,
    seed: int,
    threads: int | None,
) -> PropensityModel:
    method: Calibration | None = None
    if calibration is CalibrationChoice.SIGMOID:
        method = "sigmoid"
    elif calibration is CalibrationChoice.ISOTONIC:
        method = "isotonic"
    learner: Estimator = "logistic" if estimator is EstimatorChoice.LOGISTIC else "lightgbm"
    return PropensityModel(learner, method, random_state=seed, n_jobs=threads)


def _names(value: str | None) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()] if value else []


def _table_file(path: Path, option: str) -> Path:
    if not path.name.lower().endswith((".csv", ".csv.gz", ".parquet")):
        raise _problem(option, f"'{path.name}': expected a .csv, .csv.gz or .parquet file")
    return path


def _model_name(name: str | None, default: str) -> str:
    chosen = (name or default).strip().lower().replace("_", "-")
    if not chosen or not all(c.isalnum() or c == "-" for c in chosen):
        raise _problem("--name", f"'{name}': use letters, digits and '-'")
    return chosen


def _print_metrics(title: str, metrics: dict[str, Any]) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        text = f"{value:,.4f}" if isinstance(value, float) else f"{value:,}"
        table.add_row(key.replace("_", " "), text)
    out.print(table)


# -- fit -----------------------------------------------------------------------------------------


@fit_app.command("propensity")
@handles_errors
def fit_propensity_command(
    table: TableOption = None,
    target: Annotated[
        str | None, typer.Option("--target", help="The outcome column of --table.")
    ] = None,
    positive: Annotated[
        str | None,
        typer.Option("--positive", help="The target value that counts as yes (default: 1/true)."),
    ] = None,
    exclude: ExcludeOption = None,
    id_column: IdColumnOption = None,
    time_column: Annotated[
        str | None,
        typer.Option(
            "--time-column", help="Validate on the latest rows by this column (not random)."
        ),
    ] = None,
    validation_fraction: Annotated[
        float, typer.Option("--validation-fraction", help="Share of rows held out.")
    ] = 0.25,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Instead of --table: learn from the project's warehouse as of this date.",
        ),
    ] = None,
    window_days: Annotated[
        int, typer.Option("--window-days", min=1, help="With --as-of: label window in days.")
    ] = 90,
    event: Annotated[
        str,
        typer.Option("--event", help="With --as-of: 'purchase' or an event type to predict."),
    ] = "purchase",
    estimator: EstimatorOption = EstimatorChoice.LIGHTGBM,
    calibration: CalibrationOption = CalibrationChoice.SIGMOID,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split and the trees.")] = 0,
    threads: ThreadsOption = None,
    name: NameOption = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Fit a propensity model on a flat table (--table, --target) or on the project's
    warehouse (--as-of), register it and print its validation metrics.
    """
    model = _propensity_model(estimator, calibration, seed, threads)
    if (table is None) == (as_of is None):
        raise _problem("--table", "give either --table FILE --target COL, or --as-of DATE")
    if as_of is not None:
        _fit_in_warehouse(
            "propensity", project, as_of, window_days, event, model, name, as_json=as_json
        )
        return
    assert table is not None
    _table_file(table, "--table")
    if target is None:
        raise _problem("--target", "--table needs --target, the outcome column")
    if not 0 < validation_fraction < 1:
        raise _problem("--validation-fraction", f"{validation_fraction} is not in (0, 1)")
    frame = read_table(table)
    fit = fit_propensity_table(
        frame,
        target,
        positive=positive,
        exclude=_names(exclude),
        id_column=id_column,
        time_column=time_column,
        validation_fraction=validation_fraction,
        model=model,
        source=table,
    )
    with open_registry(project) as registry:
        record = registry.save(
            fit.model,
            kind="propensity",
            name=_model_name(name, "propensity"),
            params={**fit.params(), "table": table.name},
            features=fit.features,
            training_window={
                "table": table.name,
                "rows_train": fit.rows_train,
                "rows_validation": fit.rows_validation,
                "validation": fit.validation,
            },
            data_fingerprint=file_fingerprint(table),
            metrics={**fit.evaluation.headline(), "evaluation": fit.evaluation.to_dict()},
        )
    _report_table_fit(record, fit, as_json=as_json)


def _report_table_fit(record: ModelRecord, fit: TableFit, *, as_json: bool) -> None:
    payload = {
        "model_id": record.model_id,
        "kind": record.kind,
        "version": record.version,
        "target": fit.target,
        "positive": fit.positive,
        "features": fit.features,
        "feature_kinds": fit.model.feature_kinds_,
        "dropped_columns": fit.dropped,
        "rows_train": fit.rows_train,
        "rows_validation": fit.rows_validation,
        "rows_without_target": fit.rows_without_target,
        "validation": fit.validation,
        "metrics": fit.evaluation.headline(),
        "lift": fit.evaluation.lift,
    }
    if as_json:
        print_json(payload)
        return
    out.print(f"[green]✓[/] registered [bold]{record.model_id}[/] (version {record.version})")
    out.print(
        f"  {len(fit.features)} features; trained on {fit.rows_train:,} rows, validated on "
        f"{fit.rows_validation:,} ({fit.validation})",
        highlight=False,
    )
    for column, why in fit.dropped.items():
        out.print(f"  [yellow]left out[/] {column}: {why}", highlight=False)
    if fit.rows_without_target:
        out.print(f"  {fit.rows_without_target:,} row(s) without a target were left out")
    _print_metrics("validation metrics", fit.evaluation.headline())


@fit_app.command("uplift")
@handles_errors
def fit_uplift_command(
    table: Annotated[Path, typer.Option("--table", help="A randomised campaign's table.")],
    treatment_col: Annotated[
        str, typer.Option("--treatment-col", help="Column naming each row's arm.")
    ],
    treatment_value: Annotated[
        str, typer.Option("--treatment-value", help="The arm that got the campaign.")
    ],
    control_value: Annotated[str, typer.Option("--control-value", help="The control arm.")],
    target: Annotated[str, typer.Option("--target", help="The outcome column (0/1).")],
    method: Annotated[
        UpliftMethodChoice, typer.Option("--method", help="The uplift learner.")
    ] = UpliftMethodChoice.CLASS_TRANSFORMATION,
    exclude: ExcludeOption = None,
    id_column: IdColumnOption = None,
    outcomes: Annotated[
        str | None,
        typer.Option(
            "--outcomes",
            help="Other outcome columns to report per arm in the top k (e.g. conversion,spend); "
            "never features.",
        ),
    ] = None,
    baseline_column: Annotated[
        str | None,
        typer.Option(
            "--baseline-column",
            help="A one-column rule to compare with on the same rows: higher values first, "
            "ties in random order.",
        ),
    ] = None,
    rank_first: Annotated[
        str | None,
        typer.Option(
            "--rank-first",
            help="A number or 0/1 feature column ranked first (higher values first); the "
            "model orders rows within each of its values.",
        ),
    ] = None,
    test_fraction: Annotated[
        float, typer.Option("--test-fraction", help="Share of rows held out.")
    ] = 0.5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the first split.")] = 0,
    splits: Annotated[
        int,
        typer.Option("--splits", min=1, help="Random splits to measure (seeds seed, seed+1, ...)."),
    ] = 1,
    threads: ThreadsOption = None,
    name: NameOption = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Fit an uplift model on a randomised campaign; print uplift@k, Qini and per-arm outcomes."""
    _table_file(table, "--table")
    if not 0 < test_fraction < 1:
        raise _problem("--test-fraction", f"{test_fraction} is not in (0, 1)")
    frame = read_table(table)
    fit = fit_uplift_table(
        frame,
        treatment_column=treatment_col,
        treatment_value=treatment_value,
        control_value=control_value,
        target=target,
        method=method.value,
        exclude=_names(exclude),
        id_column=id_column,
        outcomes=_names(outcomes),
        baseline_column=baseline_column,
        test_fraction=test_fraction,
        seed=seed,
        splits=splits,
        params={"random_state": seed, "n_jobs": threads, "rank_first": rank_first},
        source=table,
    )
    summary = fit.summary()
    with open_registry(project) as registry:
        record = registry.save(
            fit.model,
            kind="uplift",
            name=_model_name(name, "uplift"),
            params={**fit.params(), "table": table.name},
            features=fit.features,
            training_window={
                "table": table.name,
                "rows_train": fit.rows_train,
                "rows_test": fit.rows_test,
                "split": f"random {1 - test_fraction:.0%} train / {test_fraction:.0%} test, "
                f"stratified on arm and outcome, seed {seed}",
            },
            data_fingerprint=file_fingerprint(table),
            metrics={
                **fit.evaluation.headline(),
                **{k: v for k, v in summary.items() if k != "splits"},
                "splits": summary["splits"],
                "evaluation": fit.evaluation.to_dict(),
            },
        )
    _report_uplift_fit(record, fit, summary, as_json=as_json)


def _report_uplift_fit(
    record: ModelRecord, fit: UpliftFit, summary: dict[str, Any], *, as_json: bool
) -> None:
    payload = {
        "model_id": record.model_id,
        "kind": record.kind,
        "version": record.version,
        "method": fit.method,
        "features": fit.features,
        "dropped_columns": fit.dropped,
        "rows_train": fit.rows_train,
        "rows_test": fit.rows_test,
        "rows_other_arms": fit.rows_other_arms,
        "metrics": fit.evaluation.headline(),
        "top_outcomes": fit.evaluation.top_outcomes,
        **summary,
    }
    if as_json:
        print_json(payload)
        return
    out.print(f"[green]✓[/] registered [bold]{record.model_id}[/] (version {record.version})")
    out.print(
        f"  {fit.method}; {len(fit.features)} features; trained on {fit.rows_train:,} rows, "
        f"measured on {fit.rows_test:,}; {fit.rows_other_arms:,} row(s) of other arms left out",
        highlight=False,
    )
    table = Table(title="uplift@k on the test rows", title_justify="left")
    table.add_column("split seed", justify="right")
    for label in fit.evaluation.uplift_at:
        table.add_column(f"uplift@{label}", justify="right")
        if fit.baseline_column:
            table.add_column(f"rule@{label}", justify="right")
    table.add_column("Qini", justify="right")
    for split in fit.splits:
        cells = [str(split.seed)]
        for label, value in split.uplift_at.items():
            cells.append(f"{value:.4f}")
            if fit.baseline_column:
                cells.append(f"{(split.baseline_uplift_at or {})[label]:.4f}")
        cells.append(f"{split.qini_coefficient:.4f}")
        table.add_row(*cells)
    if len(fit.splits) > 1:
        cells = ["mean"]
        for label in fit.evaluation.uplift_at:
            cells.append(
                f"{summary[f'uplift_at_{label}_mean']:.4f} ± "
                f"{summary[f'uplift_at_{label}_std']:.4f}"
            )
            if fit.baseline_column:
                cells.append(f"{summary[f'baseline_uplift_at_{label}_mean']:.4f}")
        cells.append(f"{summary['qini_coefficient_mean']:.4f}")
        table.add_row(*cells)
    out.print(table)
    outcomes = Table(title="outcomes in the top 30% (first split)", title_justify="left")
    for column in ("outcome", "treated", "control", "difference"):
        outcomes.add_column(column, justify="left" if column == "outcome" else "right")
    for outcome, per_k in fit.evaluation.top_outcomes.items():
        values = per_k.get("30%")
        if values:
            outcomes.add_row(
                outcome,
                f"{values['treated']:.4f}",
                f"{values['control']:.4f}",
                f"{values['difference']:+.4f}",
            )
    out.print(outcomes)


@fit_app.command("churn")
@handles_errors
def fit_churn_command(
    as_of: Annotated[str, typer.Option("--as-of", help="Score customers as of this date.")],
    window_days: Annotated[
        int, typer.Option("--window-days", min=1, help="No order in this many days = churned.")
    ] = 90,
    estimator: EstimatorOption = EstimatorChoice.LIGHTGBM,
    calibration: CalibrationOption = CalibrationChoice.SIGMOID,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the trees.")] = 0,
    threads: ThreadsOption = None,
    name: NameOption = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Fit churn in a project (time-based validation), write `churn_score` to `scores`."""
    model = _propensity_model(estimator, calibration, seed, threads)
    _fit_in_warehouse("churn", project, as_of, window_days, "purchase", model, name, as_json)


def _fit_in_warehouse(
    kind: str,
    project: Path,
    as_of_text: str,
    window_days: int,
    event: str,
    model: PropensityModel,
    name: str | None,
    as_json: bool,
) -> None:
    day = parse_date(as_of_text)
    assert day is not None
    with Workspace.open(project) as ws:
        late = ws.profiles.settings.include_late_loads
        registry = ModelRegistry(ws.store, ws.project.root / "state" / "models")
        score_name = None
        if name is not None:
            score_name = _model_name(name, kind).replace("-", "_")
        try:
            fit = fit_customer_model(
                ws.engine,
                day,
                registry=registry,
                kind="churn" if kind == "churn" else "propensity",
                window_days=window_days,
                label_event=event,
                include_late_loads=late,
                score_name=score_name,
                model=model,
            )
        except ValueError as exc:
            raise JingzhunError(f"cannot fit {kind} as of {day}: {exc}") from None
    payload = fit.to_dict()
    if as_json:
        print_json(payload)
        return
    out.print(
        f"[green]✓[/] registered [bold]{fit.record.model_id}[/]; {fit.scored:,} customers "
        f"scored as [bold]{fit.score_name}[/] in the table scores: as of {day}, for the "
        f"{window_days} days to {day + timedelta(days=window_days)}",
        highlight=False,
    )
    out.print(f"  validation: {fit.validation}", highlight=False)
    for note in fit.notes:
        out.print(f"  [yellow]note:[/] {note}", highlight=False)
    _print_metrics("validation metrics", fit.evaluation.headline())


# -- score ---------------------------------------------------------------------------------------


@model_app.command("score")
@handles_errors
def score_command(
    model_id: Annotated[str, typer.Option("--model", help="Model id to score with.")],
    table: Annotated[Path, typer.Option("--table", help="Rows to score (.csv/.parquet).")],
    output: Annotated[Path, typer.Option("--out", help="Where to write id and score.")],
    id_column: Annotated[
        str | None,
        typer.Option(
            "--id-column",
            help="Column written beside the score (default: the model's id column when the "
            "table has it, else the row number).",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1000, help="Rows per streamed batch.")
    ] = 200_000,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Score a table: one row per input row, in the input's order — the id column (or `row`)
    and `score` (a probability; for uplift models the predicted uplift).
    """
    _table_file(table, "--table")
    _table_file(output, "--out")
    with open_registry(project) as registry:
        record = registry.get(model_id)
        model = registry.load(model_id)
    chosen = id_column
    fitted_with = record.params.get("id_column")
    if chosen is None and fitted_with and fitted_with in table_columns(table):
        chosen = str(fitted_with)
    report = score_file(model, table, output, id_column=chosen, batch_size=batch_size)
    payload = {"model_id": model_id, "kind": record.kind, **report.to_dict()}
    if as_json:
        print_json(payload)
        return
    out.print(
        f"[green]✓[/] {report.rows:,} rows scored with {model_id} in {report.seconds:.1f} s "
        f"→ {output} ({payload['id_column']}, score)",
        highlight=False,
    )


# -- registry ------------------------------------------------------------------------------------


@model_app.command("list")
@handles_errors
def list_command(
    kind: Annotated[
        str | None, typer.Option("--kind", help=f"Only this kind: {', '.join(MODEL_KINDS)}.")
    ] = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Registered models, newest first, with their headline metrics."""
    if kind is not None and kind not in MODEL_KINDS:
        raise _problem("--kind", f"'{kind}' is not one of {', '.join(MODEL_KINDS)}")
    with open_registry(project) as registry:
        records = registry.list(kind)
    if as_json:
        print_json({"models": [r.to_dict() for r in records], "count": len(records)})
        return
    table = Table(title=f"models ({len(records)})", title_justify="left")
    for column in ("model id", "kind", "version", "created", "metrics"):
        table.add_column(column, overflow="fold")
    for record in records:
        headline = record.headline()
        shown = ", ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in list(headline.items())[:4]
        )
        table.add_row(
            record.model_id,
            record.kind,
            str(record.version),
            record.created_at.strftime("%Y-%m-%d %H:%M"),
            shown,
        )
    out.print(table)


@model_app.command("show")
@handles_errors
def show_command(
    model_id: ModelIdArgument,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Everything the registry knows of a model: parameters, features, window, metrics."""
    with open_registry(project) as registry:
        record = registry.get(model_id)
    if as_json:
        print_json(record.to_dict(full=True))
        return
    out.print(
        f"[bold]{record.model_id}[/] — {record.kind} '{record.name}' version {record.version}, "
        f"created {record.created_at:%Y-%m-%d %H:%M} UTC",
        highlight=False,
    )
    out.print(f"  features ({len(record.features)}): {', '.join(record.features)}")
    out.print(f"  training window: {record.training_window}", highlight=False)
    out.print(f"  data fingerprint: {record.data_fingerprint}")
    out.print(f"  artifact: {record.artifact} (SHA-256 {record.sha256})")
    _print_metrics("metrics", record.headline())


@model_app.command("evaluate")
@handles_errors
def evaluate_command(
    model_id: ModelIdArgument,
    output: Annotated[Path, typer.Option("--out", help="The HTML report to write.")],
    table: Annotated[
        Path | None,
        typer.Option(
            "--table",
            help="Measure on this labelled table (same columns as the training table) instead "
            "of the held-out rows of the fit.",
        ),
    ] = None,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Write a model's HTML report: gains, lift and calibration, or Qini for uplift."""
    if not output.name.lower().endswith((".html", ".htm")):
        raise _problem("--out", f"'{output.name}': expected an .html file")
    with open_registry(project) as registry:
        record = registry.get(model_id)
        model = registry.load(model_id) if table is not None else None
    notes: list[str] = []
    evaluation: BinaryEvaluation | UpliftEvaluation | None
    if table is None:
        evaluation = evaluation_from_metrics(record.metrics)
        notes.append(
            f"Measured on the rows held out when the model was fitted: {record.training_window}"
        )
    else:
        _table_file(table, "--table")
        evaluation = _evaluate_on(record, model, table)
        notes.append(f"Measured on {table.name} (SHA-256 {file_fingerprint(table)}).")
    path = write_model_report(record, evaluation, output, notes=notes)
    payload: dict[str, Any] = {
        "model_id": model_id,
        "report": str(path),
        "metrics": evaluation.headline() if evaluation is not None else record.headline(),
    }
    if as_json:
        print_json(payload)
        return
    out.print(f"[green]✓[/] report written to [bold]{path}[/]")
    _print_metrics("metrics", payload["metrics"])


def _evaluate_on(
    record: ModelRecord, model: Any, table: Path
) -> BinaryEvaluation | UpliftEvaluation:
    frame = read_table(table)
    params = record.params
    if record.kind == "uplift":
        return evaluate_uplift_table(
            model,
            frame,
            treatment_column=params["treatment_column"],
            treatment_value=params["treatment_value"],
            control_value=params["control_value"],
            target=params["target"],
            outcomes=params.get("outcomes", []),
            source=table,
        )
    if "target" not in params:
        raise _problem(
            "--table",
            f"model {record.model_id} was fitted on the warehouse, not on a table; "
            "its report uses the held-out customers (leave out --table)",
        )
    return evaluate_propensity_table(
        model, frame, target=params["target"], positive=params.get("positive"), source=table
    )
