"""``jingzhun experiment analyze`` and ``plan``: JSON on Hillstrom, the tables for people, and
errors that name the file, column and row."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from typer.testing import CliRunner

from helpers import shared_file
from jingzhun.cli import app
from jingzhun.core import ExitCode

runner = CliRunner()
CONTROL = "No E-Mail"


def _analyze(table: Path, *extra: str, metrics: str = "visit,conversion,spend") -> list[str]:
    return [
        "experiment",
        "analyze",
        "--table",
        str(table),
        "--arm-col",
        "segment",
        "--control",
        CONTROL,
        "--metrics",
        metrics,
        *extra,
    ]


@pytest.fixture(scope="module")
def hillstrom_json() -> dict:
    result = runner.invoke(app, _analyze(shared_file("hillstrom/hillstrom.csv.gz"), "--json"))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_analyze_json_shape_and_figures(hillstrom_json: dict) -> None:
    payload = hillstrom_json
    assert payload["table"].endswith("hillstrom.csv.gz")
    assert (payload["arm_col"], payload["control"]) == ("segment", CONTROL)
    assert payload["arms"] == {CONTROL: 21306, "Mens E-Mail": 21307, "Womens E-Mail": 21387}
    assert payload["srm"]["mismatch"] is False
    assert payload["srm"]["p_value"] == pytest.approx(0.9037, abs=1e-4)
    rows = {(c["arm"], c["metric"]): c for c in payload["comparisons"]}
    assert len(rows) == 6
    keys = {
        "arm", "metric", "method", "control_mean", "treatment_mean", "absolute_lift",
        "relative_lift", "ci_low", "ci_high", "p_value", "p_value_adjusted",
    }  # fmt: skip
    assert all(keys <= set(c) for c in payload["comparisons"])
    # Womens vs No E-Mail on conversion: 189 / 21,387 against 122 / 21,306.
    womens = rows[("Womens E-Mail", "conversion")]
    low, high = confint_proportions_2indep(189, 21387, 122, 21306, method="wald")
    _, p = proportions_ztest([189, 122], [21387, 21306])
    assert womens["method"] == "two-proportion z"
    assert (womens["ci_low"], womens["ci_high"]) == pytest.approx((low, high), rel=1e-9)
    assert womens["p_value"] == pytest.approx(p, rel=1e-9)
    assert rows[("Mens E-Mail", "spend")]["method"] == "welch t"
    assert rows[("Mens E-Mail", "visit")]["p_value_adjusted"] == pytest.approx(
        2 * rows[("Mens E-Mail", "visit")]["p_value"], rel=1e-9
    )


def test_analyze_prints_a_table_per_metric() -> None:
    result = runner.invoke(
        app, _analyze(shared_file("hillstrom/hillstrom.csv.gz"), metrics="visit,spend")
    )
    assert result.exit_code == 0, result.output
    assert "no sample-ratio mismatch" in result.stdout
    assert "visit (two-proportion z)" in result.stdout
    assert "spend (welch t)" in result.stdout
    assert "18.276%" in result.stdout and "+7.659 pt" in result.stdout


def test_analyze_cuped_shares_and_correction_on_parquet(tmp_path: Path) -> None:
    frame = pd.read_csv(shared_file("hillstrom/hillstrom.csv.gz"))
    table = tmp_path / "hillstrom.parquet"
    frame.to_parquet(table)
    result = runner.invoke(
        app,
        _analyze(
            table,
            "--cuped",
            "spend=history",
            "--correction",
            "bonferroni",
            "--expected-shares",
            "No E-Mail=1,Mens E-Mail=1,Womens E-Mail=1",
            "--json",
            metrics="spend",
        ),
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["correction"] == "bonferroni"
    for row in payload["comparisons"]:
        assert row["method"] == "cuped + welch t"
        assert 0 < row["variance_reduction"] < 0.01


def test_skewed_shares_are_reported_as_a_mismatch() -> None:
    result = runner.invoke(
        app,
        _analyze(
            shared_file("hillstrom/hillstrom.csv.gz"),
            "--expected-shares",
            "No E-Mail=0.5,Mens E-Mail=0.25,Womens E-Mail=0.25",
            metrics="visit",
        ),
    )
    assert result.exit_code == 0, result.output
    assert "sample-ratio mismatch" in result.stdout
    assert "no sample-ratio mismatch" not in result.stdout


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "test.csv"
    path.write_text(text)
    return path


def test_bad_input_names_file_column_and_row(tmp_path: Path) -> None:
    missing = runner.invoke(app, _analyze(tmp_path / "nope.csv"))
    assert missing.exit_code == ExitCode.NOT_FOUND
    assert "nope.csv: the file does not exist" in missing.stderr

    table = _write(
        tmp_path,
        "segment,visit,conversion,spend\nNo E-Mail,0,0,0\nMens E-Mail,1,0,0\n"
        "No E-Mail,1,1,n/a\nMens E-Mail,1,1,3\n",
    )
    text = runner.invoke(app, _analyze(table, "--json"))
    assert text.exit_code == ExitCode.DATA_ERROR
    error = json.loads(text.stdout)
    assert (error["error"], error["row"], error["column"]) == ("IngestError", 4, "spend")
    assert "'n/a' is not a number" in error["message"]

    column = runner.invoke(app, _analyze(table, metrics="visits"))
    assert column.exit_code == ExitCode.DATA_ERROR
    assert "test.csv, column 'visits': no column 'visits'" in column.stderr

    control = runner.invoke(app, [*_analyze(table, metrics="visit"), "--control", "Control"])
    assert control.exit_code == ExitCode.DATA_ERROR
    assert "the control value 'Control' does not occur in 'segment'" in control.stderr

    cuped = runner.invoke(app, _analyze(table, "--cuped", "spend", metrics="visit"))
    assert cuped.exit_code == ExitCode.SPEC_ERROR
    assert "'--cuped' 'spend' is not of the form name=value" in cuped.stderr

    correction = runner.invoke(app, _analyze(table, "--correction", "sidak", metrics="visit"))
    assert correction.exit_code == ExitCode.SPEC_ERROR


def test_plan_proportions_and_means() -> None:
    result = runner.invoke(
        app, ["experiment", "plan", "--baseline", "0.1", "--mde", "0.01", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    # statsmodels samplesize_proportions_2indep_onetail(0.01, 0.1, 0.8): 14,750.79 per arm.
    assert (payload["n_control"], payload["n_treatment"], payload["n_total"]) == (
        14751,
        14751,
        29502,
    )
    three = runner.invoke(
        app,
        ["experiment", "plan", "--baseline", "0.1", "--mde", "0.1", "--relative", "--arms", "3"],
    )
    assert three.exit_code == 0, three.output
    assert "17,864" in three.stdout and "0.025" in three.stdout
    means = runner.invoke(app, ["experiment", "plan", "--sd", "3", "--mde", "0.2", "--json"])
    assert json.loads(means.stdout)["n_control"] == 3532  # NormalIndPower: 3531.1
    neither = runner.invoke(app, ["experiment", "plan", "--mde", "0.2"])
    assert neither.exit_code == ExitCode.SPEC_ERROR
    assert "--baseline" in neither.stderr


def _close(printed: str, value: float) -> bool:
    """Whether ``value`` rounds to ``printed`` (as many decimals, or 2 digits in e-notation)."""
    if "e" in printed:
        return abs(value - float(printed)) <= 0.06 * abs(float(printed))
    decimals = len(printed.partition(".")[2])
    return abs(value - float(printed)) <= 0.5 * 10**-decimals + 1e-12


def test_readme_hillstrom_table_is_what_the_command_prints(hillstrom_json: dict) -> None:
    readme = Path(__file__).resolve().parents[2] / "src" / "jingzhun" / "measure" / "README.md"
    rows = {(c["arm"], c["metric"]): c for c in hillstrom_json["comparisons"]}
    quoted = 0
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) != 7 or cells[0] not in ("Mens", "Womens"):
            continue
        row = rows[(f"{cells[0]} E-Mail", cells[1])]
        scale = 1 if cells[1] == "spend" else 100  # rates in percentage points
        numbers = [re.findall(r"\d+(?:\.\d+)?(?:e-?\d+)?", cell) for cell in cells[2:]]
        expected = [
            [row["absolute_lift"] * scale],
            [row["ci_low"] * scale, row["ci_high"] * scale],
            [row["relative_lift"] * 100],
            [row["p_value"]],
            [row["p_value_adjusted"]],
        ]
        for printed, values in zip(numbers, expected, strict=True):
            assert len(printed) == len(values), line
            assert all(_close(p, v) for p, v in zip(printed, values, strict=True)), line
        quoted += 1
    assert quoted == 6
