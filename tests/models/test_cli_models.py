"""`jingzhun model fit propensity | fit uplift | score | list | show | evaluate` on flat files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs
from typer.testing import CliRunner

from helpers import shared_file
from jingzhun.cli import app
from jingzhun.models import open_registry

runner = CliRunner()


def _run(*args: str) -> tuple[int, dict]:
    done = runner.invoke(app, [*args, "--json"])
    return done.exit_code, json.loads(done.stdout) if done.stdout.strip() else {}


def bank_campaign(n: int, seed: int) -> pd.DataFrame:
    """A bank's term-deposit campaign list: mixed types, blanks, rare jobs, a yes/no target."""
    rng = np.random.default_rng(seed)
    jobs = ["admin.", "blue-collar", "technician", "services", "management", "retired"]
    frame = pd.DataFrame(
        {
            "client_id": [f"CL{seed:02d}{i:06d}" for i in range(n)],
            "age": rng.integers(18, 92, n).astype(float),
            "job": rng.choice([*jobs, "unknown"], n, p=[0.2, 0.2, 0.18, 0.12, 0.15, 0.1, 0.05]),
            "marital": rng.choice(["married", "single", "divorced"], n),
            "balance": rng.normal(1_400, 3_000, n).round(2),
            "housing_loan": rng.choice(["yes", "no"], n),
            "contact": rng.choice(["cellular", "telephone", None], n, p=[0.6, 0.1, 0.3]),
            "previous_contacts": rng.poisson(0.6, n),
        }
    )
    frame.loc[rng.random(n) < 0.08, "age"] = np.nan
    frame.loc[rng.random(n) < 0.05, "balance"] = np.nan
    logit = (
        -2.2
        + 1.3 * (frame["job"] == "retired")
        + 0.0002 * frame["balance"].fillna(0)
        + 0.5 * frame["previous_contacts"]
        - 0.8 * (frame["housing_loan"] == "yes")
        + 0.6 * (frame["contact"] == "cellular")
    )
    frame["subscribed"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return frame


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain folder (no jingzhun project) with the campaign list in it."""
    root = tmp_path_factory.mktemp("bank")
    bank_campaign(4_000, seed=1).to_csv(root / "campaign.csv", index=False)
    return root


@pytest.fixture(scope="module")
def fitted(folder: Path) -> dict:
    code, payload = _run(
        "model",
        "fit",
        "propensity",
        "--table",
        str(folder / "campaign.csv"),
        "--target",
        "subscribed",
        "--positive",
        "yes",
        "--id-column",
        "client_id",
        "--threads",
        "1",
        "--project",
        str(folder),
    )
    assert code == 0, payload
    return payload


def test_fit_reports_the_model_and_its_validation(folder: Path, fitted: dict) -> None:
    assert fitted["model_id"].startswith("propensity-")
    assert fitted["positive"] == "yes"
    assert fitted["features"] == [
        "age",
        "job",
        "marital",
        "balance",
        "housing_loan",
        "contact",
        "previous_contacts",
    ]
    assert (fitted["rows_train"], fitted["rows_validation"]) == (3_000, 1_000)
    assert fitted["metrics"]["auc"] > 0.68  # the list was generated with a real signal
    assert fitted["lift"][0]["lift"] > 1.8
    # a plain folder gets its own registry beside the data
    assert (folder / ".jingzhun" / "operational.db").is_file()
    assert (folder / ".jingzhun" / "models" / fitted["model_id"] / "model.skops").is_file()


def test_score_a_new_list_without_ids_keeps_its_order(
    folder: Path, fitted: dict, tmp_path: Path
) -> None:
    new = bank_campaign(3_000, seed=2).drop(columns=["client_id", "subscribed"])
    new.loc[5, "job"] = "astronaut"  # a job the model never saw
    new.loc[6, ["age", "balance", "contact"]] = [np.nan, np.nan, None]
    table = tmp_path / "next_month.csv"
    new.to_csv(table, index=False)
    out = tmp_path / "scores.csv"
    code, payload = _run(
        "model",
        "score",
        "--model",
        fitted["model_id"],
        "--table",
        str(table),
        "--out",
        str(out),
        "--batch-size",
        "1000",
        "--project",
        str(folder),
    )
    assert code == 0, payload
    assert payload["rows"] == 3_000 and payload["id_column"] == "row"
    scored = pd.read_csv(out)
    assert list(scored.columns) == ["row", "score"]
    assert scored["row"].tolist() == list(range(1, 3_001))
    with open_registry(folder) as registry:
        model = registry.load(fitted["model_id"])
    expected = model.predict_proba(pd.read_csv(table))[:, 1]
    np.testing.assert_allclose(scored["score"].to_numpy(), expected, rtol=1e-12)
    assert scored["score"].between(0, 1).all()


def test_score_with_the_id_column_and_parquet(folder: Path, fitted: dict, tmp_path: Path) -> None:
    new = bank_campaign(1_500, seed=3).drop(columns="subscribed").iloc[::-1]
    table = tmp_path / "list.parquet"
    new.to_parquet(table, index=False)
    out = tmp_path / "scores.parquet"
    code, payload = _run(
        "model",
        "score",
        "--model",
        fitted["model_id"],
        "--table",
        str(table),
        "--out",
        str(out),
        "--project",
        str(folder),
    )
    assert code == 0, payload
    scored = pd.read_parquet(out)
    assert list(scored.columns) == ["client_id", "score"]
    assert scored["client_id"].tolist() == new["client_id"].tolist()  # the file's order


def test_score_names_a_missing_column_or_a_bad_value(
    folder: Path, fitted: dict, tmp_path: Path
) -> None:
    new = bank_campaign(200, seed=4).drop(columns="subscribed")
    missing = tmp_path / "no_balance.csv"
    new.drop(columns="balance").to_csv(missing, index=False)
    out = tmp_path / "s.csv"
    args = ["--out", str(out), "--project", str(folder)]
    code, payload = _run(
        "model", "score", "--model", fitted["model_id"], "--table", str(missing), *args
    )
    assert code == 1
    assert payload["column"] == "balance"
    assert (
        "no_balance.csv" in payload["message"]
        and "missing column(s) 'balance'" in (payload["message"])
    )
    bad = tmp_path / "bad_balance.csv"
    new.assign(balance=new["balance"].astype(str).where(new.index != 41, "n/k")).to_csv(
        bad, index=False
    )
    code, payload = _run(
        "model", "score", "--model", fitted["model_id"], "--table", str(bad), *args
    )
    assert code == 1
    assert payload["column"] == "balance" and payload["row"] == 42, payload
    assert not out.exists()  # nothing half-written
    code, payload = _run("model", "score", "--model", "nope", "--table", str(bad), *args)
    assert code == 3 and "no model 'nope'" in payload["message"]


def test_fit_errors_name_the_file_and_column(folder: Path) -> None:
    table = str(folder / "campaign.csv")
    code, payload = _run(
        "model", "fit", "propensity", "--table", table, "--target", "subscribed",
        "--project", str(folder),
    )  # fmt: skip
    assert code == 1
    assert payload["column"] == "subscribed" and "--positive" in payload["message"]
    code, payload = _run(
        "model", "fit", "propensity", "--table", table, "--target", "outcome",
        "--project", str(folder),
    )  # fmt: skip
    assert code == 1 and "no target column 'outcome'" in payload["message"]
    code, payload = _run(
        "model", "fit", "propensity", "--table", table, "--target", "subscribed",
        "--positive", "yes", "--exclude", "salary", "--project", str(folder),
    )  # fmt: skip
    assert code == 1 and payload["column"] == "salary"


def test_list_show_and_the_html_report(folder: Path, fitted: dict, tmp_path: Path) -> None:
    code, listed = _run("model", "list", "--project", str(folder))
    assert code == 0 and fitted["model_id"] in [m["model_id"] for m in listed["models"]]
    code, shown = _run("model", "show", fitted["model_id"], "--project", str(folder))
    assert code == 0
    assert shown["features"] == fitted["features"]
    assert shown["params"]["target"] == "subscribed" and shown["params"]["id_column"] == "client_id"
    assert len(shown["data_fingerprint"]) == 64 and len(shown["sha256"]) == 64
    report = tmp_path / "report.html"
    code, evaluated = _run(
        "model", "evaluate", fitted["model_id"], "--out", str(report), "--project", str(folder)
    )
    assert code == 0 and evaluated["metrics"]["auc"] == fitted["metrics"]["auc"]
    html = report.read_text()
    for title in ("Cumulative gains", "Lift by decile", "Calibration", fitted["model_id"]):
        assert title in html
    # plotly.js is inlined: the page draws its charts offline
    assert "<script src=" not in html and get_plotlyjs()[-500:] in html
    fresh = tmp_path / "fresh.csv"
    bank_campaign(2_000, seed=5).to_csv(fresh, index=False)
    code, evaluated = _run(
        "model", "evaluate", fitted["model_id"], "--table", str(fresh),
        "--out", str(tmp_path / "fresh.html"), "--project", str(folder),
    )  # fmt: skip
    assert code == 0 and evaluated["metrics"]["rows"] == 2_000
    assert evaluated["metrics"]["auc"] > 0.65


def test_uplift_fit_and_score_on_hillstrom(tmp_path: Path) -> None:
    hillstrom = shared_file("hillstrom/hillstrom.csv.gz")
    code, payload = _run(
        "model", "fit", "uplift", "--table", str(hillstrom),
        "--treatment-col", "segment", "--treatment-value", "Womens E-Mail",
        "--control-value", "No E-Mail", "--target", "visit",
        "--outcomes", "conversion,spend", "--exclude", "history_segment",
        "--baseline-column", "womens", "--test-fraction", "0.5", "--seed", "0",
        "--threads", "1", "--project", str(tmp_path),
    )  # fmt: skip
    assert code == 0, payload
    # seed 0 split, measured here: 0.0728 (the rule "womens first": 0.0734)
    assert payload["metrics"]["uplift_at_30%"] > 0.065
    assert payload["splits"][0]["baseline_uplift_at"]["30%"] > 0.06
    assert set(payload["top_outcomes"]) == {"visit", "conversion", "spend"}
    assert payload["rows_other_arms"] == 21_307
    out = tmp_path / "uplift.csv"
    code, scored = _run(
        "model", "score", "--model", payload["model_id"], "--table", str(hillstrom),
        "--out", str(out), "--project", str(tmp_path),
    )  # fmt: skip
    assert code == 0 and scored["rows"] == 64_000
    uplift = pd.read_csv(out)
    with open_registry(tmp_path) as registry:
        model = registry.load(payload["model_id"])
    expected = model.predict(pd.read_csv(hillstrom))
    np.testing.assert_allclose(uplift["score"].to_numpy(), expected, rtol=1e-12)
    report = tmp_path / "uplift.html"
    code, _ = _run(
        "model", "evaluate", payload["model_id"], "--out", str(report),
        "--project", str(tmp_path),
    )  # fmt: skip
    assert code == 0 and "Qini curve" in report.read_text()
    code, problem = _run(
        "model", "fit", "uplift", "--table", str(hillstrom),
        "--treatment-col", "segment", "--treatment-value", "Womens Email",
        "--control-value", "No E-Mail", "--target", "visit", "--project", str(tmp_path),
    )  # fmt: skip
    assert code == 1 and "no row has the value 'Womens Email'" in problem["message"]
