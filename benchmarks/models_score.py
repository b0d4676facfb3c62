"""Scoring 1M customers with a propensity model (LightGBM, sigmoid calibration): jingzhun's
streamed scoring beside the same booster on a whole in-memory frame; medians of 3.

The input is a synthetic bank campaign list (seeded numpy draws: ages, balances, jobs,
marital status, loans, contact channel, previous contacts, a yes/no outcome; blanks in
several columns), cached in ``benchmarks/data/``. The model is fitted once on 100,000 of the
rows (not timed). Timed, each from a stored input to a stored output:

- ``jingzhun_parquet``: ``score_file`` Parquet → Parquet, streamed in batches of 200,000
  rows (what ``jingzhun model score`` does after loading the model).
- ``jingzhun_csv``: the same from a CSV file to a CSV file.
- ``jingzhun_warehouse``: ``score_warehouse_table`` — the features stored as a DuckDB table
  of 1M customers, streamed from the engine in batches, scores written to ``scores``.
- ``pandas_lightgbm`` (the baseline): ``pandas.read_parquet`` of the whole file, the same
  encoding, one ``Booster.predict`` and calibration, ``DataFrame.to_parquet``.
- ``booster_predict_only``: the model arithmetic alone on the encoded matrix in memory (the
  floor under every path above).

``JZ_BENCH_ROWS`` runs a smaller size.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import lightgbm
import numpy as np
import pandas as pd

from jingzhun.core import EngineKind, EngineSettings
from jingzhun.engine import connect
from jingzhun.models import PropensityModel, score_file, score_warehouse_table

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results"
ROWS = int(os.environ.get("JZ_BENCH_ROWS", "1000000"))
TRAIN_ROWS = 100_000
SEED = 2024
REPEATS = 3
AS_OF = dt.date(2024, 6, 30)


def campaign_list(n: int, seed: int) -> pd.DataFrame:
    """A bank's campaign list: mixed types, blanks, a yes/no outcome with a real signal."""
    rng = np.random.default_rng(seed)
    jobs = np.array(
        ["admin.", "blue-collar", "technician", "services", "management", "retired", "student"]
    )
    frame = pd.DataFrame(
        {
            "customer_key": np.char.add("c", np.arange(n).astype(str)),
            "age": rng.integers(18, 92, n).astype(float),
            "job": jobs[rng.integers(0, len(jobs), n)],
            "marital": np.array(["married", "single", "divorced"])[rng.integers(0, 3, n)],
            "balance": rng.normal(1_400, 3_000, n).round(2),
            "housing_loan": rng.random(n) < 0.55,
            "contact": np.array(["cellular", "telephone", ""])[rng.integers(0, 3, n)],
            "previous_contacts": rng.poisson(0.6, n),
            "days_since_contact": rng.integers(0, 900, n).astype(float),
            "card_spend_90d": rng.gamma(2.0, 300.0, n).round(2),
        }
    )
    frame.loc[rng.random(n) < 0.08, "age"] = np.nan
    frame.loc[rng.random(n) < 0.05, "balance"] = np.nan
    frame.loc[rng.random(n) < 0.3, "days_since_contact"] = np.nan
    frame["contact"] = frame["contact"].replace("", None)
    logit = (
        -2.2
        + 1.3 * (frame["job"] == "retired")
        + 0.0002 * frame["balance"].fillna(0)
        + 0.5 * frame["previous_contacts"]
        - 0.8 * frame["housing_loan"]
        + 0.6 * (frame["contact"] == "cellular")
        + 0.0005 * frame["card_spend_90d"]
    )
    frame["subscribed"] = rng.random(n) < 1 / (1 + np.exp(-logit))
    return frame


def _inputs() -> Path:
    folder = DATA / f"models_score_{ROWS}"
    marker = folder / "ready.json"
    if marker.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    print(f"generating {ROWS:,} rows ...", flush=True)
    frame = campaign_list(ROWS, SEED)
    features = frame.drop(columns="subscribed")
    features.to_parquet(folder / "customers.parquet", index=False)
    features.to_csv(folder / "customers.csv", index=False)
    frame.sample(TRAIN_ROWS, random_state=SEED).to_parquet(folder / "train.parquet", index=False)
    with connect(EngineSettings(kind=EngineKind.DUCKDB), folder) as engine:
        engine.drop("customer_features")
        engine.ibis.create_table("customer_features", features)  # type: ignore[attr-defined]
    marker.write_text(json.dumps({"rows": ROWS}))
    return folder


def _model(folder: Path) -> tuple[PropensityModel, float, dict[str, object]]:
    train = pd.read_parquet(folder / "train.parquet")
    started = time.perf_counter()
    model = PropensityModel().fit(
        train.drop(columns=["customer_key", "subscribed"]), train["subscribed"]
    )
    seconds = time.perf_counter() - started
    return model, seconds, {"trees": model.n_estimators_, "features": model.n_features_in_}


def run_jingzhun_parquet(folder: Path, model: PropensityModel) -> float:
    started = time.perf_counter()
    score_file(
        model, folder / "customers.parquet", folder / "scores.parquet", id_column="customer_key"
    )
    return time.perf_counter() - started


def run_jingzhun_csv(folder: Path, model: PropensityModel) -> float:
    started = time.perf_counter()
    score_file(model, folder / "customers.csv", folder / "scores.csv", id_column="customer_key")
    return time.perf_counter() - started


def run_jingzhun_warehouse(folder: Path, model: PropensityModel) -> float:
    with connect(EngineSettings(kind=EngineKind.DUCKDB), folder) as engine:
        started = time.perf_counter()
        rows = score_warehouse_table(
            engine,
            model,
            "customer_features",
            model_id="bench",
            score_name="subscribe_score",
            as_of=AS_OF,
        )
        seconds = time.perf_counter() - started
    assert rows == ROWS, rows
    return seconds


def run_pandas_lightgbm(folder: Path, model: PropensityModel) -> float:
    started = time.perf_counter()
    frame = pd.read_parquet(folder / "customers.parquet")
    matrix = model.transform_features(frame)
    score = model.probability(matrix)
    pd.DataFrame({"customer_key": frame["customer_key"], "score": score}).to_parquet(
        folder / "scores_pandas.parquet", index=False
    )
    return time.perf_counter() - started


def run_booster_predict_only(folder: Path, model: PropensityModel) -> float:
    matrix = model.transform_features(pd.read_parquet(folder / "customers.parquet"))
    booster = lightgbm.Booster(model_str=model.booster_model_)
    started = time.perf_counter()
    booster.predict(matrix, raw_score=True)
    return time.perf_counter() - started


def _agreement(folder: Path) -> dict[str, object]:
    jingzhun = pd.read_parquet(folder / "scores.parquet")
    baseline = pd.read_parquet(folder / "scores_pandas.parquet")
    from_csv = pd.read_csv(folder / "scores.csv")
    return {
        "rows": len(jingzhun),
        "same_order_as_input": bool((jingzhun["customer_key"] == baseline["customer_key"]).all()),
        "max_abs_difference_vs_baseline": float(
            np.abs(jingzhun["score"].to_numpy() - baseline["score"].to_numpy()).max()
        ),
        "max_abs_difference_csv_vs_parquet": float(
            np.abs(from_csv["score"].to_numpy() - jingzhun["score"].to_numpy()).max()
        ),
    }


def main() -> None:
    folder = _inputs()
    model, fit_seconds, shape = _model(folder)
    print(f"model fitted on {TRAIN_ROWS:,} rows in {fit_seconds:.1f} s: {shape}", flush=True)
    runs: dict[str, Callable[[Path, PropensityModel], float]] = {
        "jingzhun_parquet": run_jingzhun_parquet,
        "jingzhun_csv": run_jingzhun_csv,
        "jingzhun_warehouse": run_jingzhun_warehouse,
        "pandas_lightgbm": run_pandas_lightgbm,
        "booster_predict_only": run_booster_predict_only,
    }
    timings: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(REPEATS):
        order = list(runs.items())
        if repeat % 2:  # alternate the order so no side always runs on a warm cache
            order.reverse()
        for name, func in order:
            seconds = func(folder, model)
            timings[name].append(round(seconds, 3))
            print(f"run {repeat + 1}: {name} {seconds:.2f} s", flush=True)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    base = medians["pandas_lightgbm"]
    result = {
        "benchmark": "models_score",
        "rows": ROWS,
        "model": {
            "estimator": "lightgbm",
            "calibration": "sigmoid",
            "fitted_on_rows": TRAIN_ROWS,
            "fit_seconds": round(fit_seconds, 2),
            **shape,
        },
        "repeats": REPEATS,
        "seconds": timings,
        "median_seconds": medians,
        "rows_per_second_jingzhun_parquet": round(ROWS / medians["jingzhun_parquet"]),
        "ratio_jingzhun_parquet_to_pandas": round(medians["jingzhun_parquet"] / base, 2),
        "ratio_jingzhun_csv_to_pandas": round(medians["jingzhun_csv"] / base, 2),
        "ratio_jingzhun_warehouse_to_pandas": round(medians["jingzhun_warehouse"] / base, 2),
        "agreement": _agreement(folder),
        "baseline": "pandas.read_parquet of the whole file, the same encoding and booster, "
        "DataFrame.to_parquet",
        "goal": "scoring 1M customers takes seconds, streamed in batches (issue 5)",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "lightgbm": lightgbm.__version__,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if ROWS == 1_000_000 else f"_{ROWS}"
    out = RESULTS / f"models_score{suffix}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result["median_seconds"]), json.dumps(result["agreement"]))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
