"""``jingzhun model fit clv`` and ``jingzhun model retention`` through the Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from helpers import shared_file
from jingzhun.cli import app
from jingzhun.core import ExitCode

runner = CliRunner()

CDNOW = [
    "--columns",
    "customer_id,sample_id,date,quantity,amount",
    "--customer-col",
    "sample_id",
    "--date-col",
    "date",
]


def _run(args: list[str]) -> tuple[int, dict]:
    result = runner.invoke(app, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_fit_clv_on_cdnow_sample(tmp_path: Path) -> None:
    out = tmp_path / "clv.csv"
    code, payload = _run(
        [
            "model",
            "fit",
            "clv",
            "--transactions",
            str(shared_file("cdnow/CDNOW_sample.txt")),
            *CDNOW,
            "--amount-col",
            "amount",
            "--calibration-end",
            "1997-09-30",
            "--out",
            str(out),
        ]
    )
    assert code == 0, payload
    # Fader, Hardie & Lee (2005) Marketing Science, Sec. 7 (BG/NBD and Pareto/NBD);
    # Fader & Hardie (2013) note 025 (Gamma-Gamma) — see tests/models/test_clv.py
    bgnbd = payload["bgnbd"]
    assert [round(bgnbd[k], 3) for k in ("r", "alpha", "a", "b")] == [0.243, 4.414, 0.793, 2.426]
    assert round(bgnbd["log_likelihood"], 1) == -9582.4
    gamma_gamma = payload["gamma_gamma"]
    assert [round(gamma_gamma[k], 2) for k in ("p", "q", "gamma")] == [6.25, 3.74, 15.44]
    assert gamma_gamma["customers"] == 946
    pareto = payload["pareto_nbd"]
    assert [round(pareto[k], 3) for k in ("r", "alpha", "s", "beta")] == [
        0.553,
        10.578,
        0.606,
        11.669,
    ]
    assert payload["customers"] == 2357
    assert payload["calibration"]["repeat_purchases"] == 2457
    assert payload["holdout"]["actual"] == 1882
    assert payload["holdout"]["duration"] == 39.0
    assert round(payload["holdout"]["predicted"]) == 1653

    table = pd.read_csv(out, dtype={"sample_id": str})
    assert len(table) == 2357
    assert table.columns.tolist() == [
        "sample_id",
        "frequency",
        "recency",
        "T",
        "monetary_value",
        "p_alive",
        "expected_purchases",
        "expected_average_value",
        "expected_clv",
        "frequency_holdout",
    ]
    assert table.loc[0, "sample_id"] == "0001"
    assert table["p_alive"].between(0, 1).all()


def test_fit_clv_without_amounts_in_days_to_parquet(tmp_path: Path) -> None:
    out = tmp_path / "clv.parquet"
    code, payload = _run(
        [
            "model",
            "fit",
            "clv",
            "--transactions",
            str(shared_file("cdnow/CDNOW_sample.txt")),
            *CDNOW,
            "--time-unit",
            "day",
            "--no-pareto-nbd",
            "--out",
            str(out),
        ]
    )
    assert code == 0, payload
    assert "gamma_gamma" not in payload and "pareto_nbd" not in payload
    assert "holdout" not in payload  # no calibration end: everything is calibration
    assert payload["calibration"]["end"] == "1998-06-30"
    assert round(payload["bgnbd"]["r"], 2) > 0
    table = pd.read_parquet(out)
    assert "expected_clv" not in table.columns and "p_alive" in table.columns


def test_fit_clv_prints_a_table() -> None:
    result = runner.invoke(
        app,
        [
            "model",
            "fit",
            "clv",
            "--transactions",
            str(shared_file("cdnow/CDNOW_sample.txt")),
            *CDNOW,
            "--calibration-end",
            "1997-09-30",
            "--no-pareto-nbd",
        ],
    )
    assert result.exit_code == 0
    assert "BG/NBD" in result.stdout and "1,882 repeat purchases" in result.stdout


def test_fit_clv_bad_input_names_file_row_column(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("cust,day,amt\na,2024-01-01,10\nb,01/02/2024,5\n", encoding="utf-8")
    base = ["model", "fit", "clv", "--transactions", str(path), "--customer-col", "cust"]
    code, payload = _run([*base, "--date-col", "day"])
    assert code == ExitCode.DATA_ERROR
    assert (payload["file"], payload["row"], payload["column"]) == (str(path), 3, "day")
    assert "'01/02/2024' is not a date" in payload["message"]

    code, payload = _run([*base, "--date-col", "ordered_at"])
    assert code == ExitCode.DATA_ERROR
    assert payload["column"] == "ordered_at" and "no column 'ordered_at'" in payload["message"]

    path.write_text("cust,day,amt\na,2024-01-01,10\nb,2024-01-02,-5\n", encoding="utf-8")
    code, payload = _run([*base, "--date-col", "day", "--amount-col", "amt"])
    assert code == ExitCode.DATA_ERROR
    assert (payload["row"], payload["column"]) == (3, "amt")
    assert "negative amount" in payload["message"]

    code, payload = _run([*base, "--date-col", "day", "--out", str(tmp_path / "x.xlsx")])
    assert code == ExitCode.SPEC_ERROR
    assert payload["problems"][0]["file"] == "--out"

    dates = ["--calibration-end", "2024-01-02", "--observation-end", "2024-01-01"]
    code, payload = _run([*base, "--date-col", "day", *dates])
    assert code == ExitCode.SPEC_ERROR
    assert "before --calibration-end" in payload["message"]

    code, payload = _run([*base, "--date-col", "day", "--calibration-end", "2023-12-31"])
    assert code == ExitCode.SPEC_ERROR
    assert "before the first purchase" in payload["message"]

    code, payload = _run(
        ["model", "fit", "clv", "--transactions", str(tmp_path / "nope.csv"), *CDNOW]
    )
    assert code == ExitCode.NOT_FOUND


def test_retention_sbg_and_cohorts() -> None:
    # Fader & Hardie (2007), high-end customers, years 0-7: alpha 0.668, beta 3.806
    code, payload = _run(
        ["model", "retention", "--survivors", "1000,869,743,653,593,551,517,491", "--project", "5"]
    )
    assert code == 0
    sbg = payload["sbg"]
    assert (round(sbg["alpha"], 3), round(sbg["beta"], 3)) == (0.668, 3.806)
    assert len(sbg["expected_survivors"]) == 13 and sbg["expected_survivors"][0] == 1000

    code, payload = _run(
        [
            "model",
            "retention",
            "--transactions",
            str(shared_file("cdnow/CDNOW_sample.txt")),
            *CDNOW,
            "--period",
            "quarter",
        ]
    )
    assert code == 0
    assert payload["cohorts"][0]["cohort"] == "1997Q1"
    assert payload["cohorts"][0]["customers"] == 2357
    assert payload["cohorts"][0]["active_share"][0] == 1.0

    code, payload = _run(["model", "retention", "--survivors", "100,120"])
    assert code == ExitCode.SPEC_ERROR
    code, payload = _run(["model", "retention"])
    assert code == ExitCode.SPEC_ERROR


def test_clv_report_is_written_with_its_charts(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from jingzhun.cli import app

    report = tmp_path / "clv.html"
    result = CliRunner().invoke(
        app,
        [
            "model",
            "fit",
            "clv",
            "--transactions",
            str(shared_file("cdnow/CDNOW_sample.txt")),
            "--columns",
            "customer_id,sample_id,date,quantity,amount",
            "--customer-col",
            "sample_id",
            "--date-col",
            "date",
            "--amount-col",
            "amount",
            "--calibration-end",
            "1997-09-30",
            "--no-pareto-nbd",
            "--report",
            str(report),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    html = report.read_text()
    assert "frequency and recency" in html and "P(alive)" in html
    assert "-9,582.4292" in html  # the published log-likelihood, in the headline
    assert "<script src=" not in html  # plotly.js is inlined, nothing is fetched
