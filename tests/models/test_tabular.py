"""Propensity on a flat table: Hillstrom's real outcomes, mixed types, missing values, metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from helpers import shared_file
from jingzhun.models import (
    PropensityModel,
    TableFit,
    TableInputError,
    binary_target,
    evaluate_binary,
    fit_propensity_table,
    score_file,
    split_rows,
)

OUTCOMES = ["visit", "conversion", "spend"]


@pytest.fixture(scope="module")
def hillstrom() -> pd.DataFrame:
    # Hillstrom's MineThatData e-mail experiment, 64,000 customers (../shared/data/hillstrom)
    return pd.read_csv(shared_file("hillstrom/hillstrom.csv.gz"))


@pytest.fixture(scope="module")
def visit_fit(hillstrom: pd.DataFrame) -> TableFit:
    return fit_propensity_table(
        hillstrom,
        "visit",
        exclude=["conversion", "spend"],
        model=PropensityModel(n_jobs=1),
    )


def test_hillstrom_visit_propensity_ranks_and_is_calibrated(visit_fit: TableFit) -> None:
    evaluation = visit_fit.evaluation
    # Measured here: AUC 0.648, PR-AUC 0.233 against a base rate of 0.147, top-decile lift
    # 1.85 on the held-out quarter (16,000 customers). Random ranking: AUC 0.5, lift 1.
    assert evaluation.rows == 16_000
    assert evaluation.base_rate == pytest.approx(0.1468, abs=0.001)  # 9,394 visits / 64,000
    assert evaluation.auc > 0.63
    assert evaluation.pr_auc > 1.4 * evaluation.base_rate
    assert evaluation.lift[0]["lift"] > 1.6
    assert evaluation.lift[-1]["lift"] < 0.5
    assert evaluation.gains[-1] == {"targeted": 1.0, "captured": 1.0}
    captured = [g["captured"] for g in evaluation.gains]
    assert captured == sorted(captured)
    # calibrated: every decile's observed rate within 2.5 points of the mean prediction
    for row in evaluation.calibration:
        assert abs(row["observed_rate"] - row["mean_predicted"]) < 0.025, row
    assert visit_fit.features == [
        "recency",
        "history_segment",
        "history",
        "mens",
        "womens",
        "zip_code",
        "newbie",
        "channel",
        "segment",
    ]
    assert visit_fit.model.feature_kinds_["segment"] == "category"
    assert visit_fit.model.feature_kinds_["recency"] == "number"


def test_logistic_regression_is_the_simple_alternative(hillstrom: pd.DataFrame) -> None:
    fit = fit_propensity_table(
        hillstrom,
        "conversion",
        exclude=["visit", "spend"],
        model=PropensityModel("logistic", n_jobs=1),
    )
    # Measured here: AUC 0.635 for conversion (578 conversions in 64,000; 145 held out).
    assert fit.evaluation.auc > 0.6
    assert fit.evaluation.lift[0]["lift"] > 1.8
    assert fit.model.booster_model_ is None and fit.model.linear_ is not None


def test_reason_codes_name_the_features_that_raise_a_score(
    hillstrom: pd.DataFrame, visit_fit: TableFit
) -> None:
    model = visit_fit.model
    frame = hillstrom.drop(columns=OUTCOMES)
    # TreeSHAP contributions plus the bias add up to the model's log-odds, row by row
    sample = frame.iloc[:2_000]
    contributions = model.contributions(sample)
    margin = model._margin(model.transform_features(sample))
    np.testing.assert_allclose(contributions.sum(axis=1).to_numpy(), margin, atol=1e-9)

    top = frame.iloc[np.argsort(-model.predict_proba(frame)[:, 1])[:6_400]]
    reasons = model.reason_codes(top, top=3)
    assert list(reasons.columns[:3]) == ["reason_1", "reason_1_value", "reason_1_contribution"]
    assert (reasons["reason_1_contribution"] > 0).all()
    named = pd.concat([reasons[f"reason_{i}"] for i in (1, 2, 3)])
    values = pd.concat([reasons[f"reason_{i}_value"] for i in (1, 2, 3)])
    # Getting an e-mail raises visits (18.3% / 15.1% against 10.6% without): the arm is a
    # reason only for e-mailed customers, and the most common reason of the best decile.
    assert named.value_counts().index[0] == "segment"
    assert set(values[named == "segment"]) <= {"Mens E-Mail", "Womens E-Mail"}
    # Returning customers visit more than newbies (13.4% against 7.9% in the control arm)
    assert set(values[named == "newbie"]) == {"0"}
    no_email = model.reason_codes(frame[frame["segment"] == "No E-Mail"].iloc[:3_000])
    assert "segment" not in set(pd.concat([no_email[f"reason_{i}"] for i in (1, 2, 3)]))


def test_logistic_reason_codes_add_up_too(hillstrom: pd.DataFrame) -> None:
    frame = hillstrom.drop(columns=OUTCOMES).iloc[:5_000]
    model = PropensityModel("logistic", calibration=None).fit(frame, hillstrom["visit"][:5_000])
    contributions = model.contributions(frame)
    probability = model.predict_proba(frame)[:, 1]
    log_odds = np.log(probability / (1 - probability))
    np.testing.assert_allclose(contributions.sum(axis=1).to_numpy(), log_odds, atol=1e-8)


def _bank(n: int = 2_000, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    job = rng.choice(["admin", "technician", "services", "retired", "student"], n)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n).astype(float),
            "balance": rng.normal(1_500, 2_000, n).round(2),
            "job": pd.Series(job, dtype="str"),
            "has_loan": rng.choice([True, False], n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "age"] = np.nan
    frame.loc[rng.random(n) < 0.05, "job"] = None
    logit = -1.5 + 0.0004 * frame["balance"] + 1.2 * (frame["job"] == "retired")
    frame["subscribed"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return frame


def test_text_columns_as_str_or_object_give_the_same_model() -> None:
    bank = _bank()
    features, target = bank.drop(columns="subscribed"), bank["subscribed"]
    as_str = PropensityModel(n_jobs=1).fit(features, target)
    as_object = features.astype({"job": object})
    assert as_object["job"].dtype == object
    from_object = PropensityModel(n_jobs=1).fit(as_object, target)
    np.testing.assert_array_equal(
        as_str.predict_proba(features), from_object.predict_proba(as_object)
    )
    np.testing.assert_array_equal(as_str.predict_proba(features), as_str.predict_proba(as_object))
    assert list(as_str.classes_) == ["no", "yes"]
    assert set(as_str.predict(features)) <= {"no", "yes"}
    assert as_str.feature_kinds_ == {
        "age": "number",
        "balance": "number",
        "job": "category",
        "has_loan": "boolean",
    }


def test_missing_values_unseen_levels_and_missing_columns() -> None:
    bank = _bank()
    model = PropensityModel(n_jobs=1).fit(bank.drop(columns="subscribed"), bank["subscribed"])
    odd = pd.DataFrame(
        {
            "age": [np.nan, 40.0, 200.0],
            "balance": [np.nan, -5.0, 1e7],
            "job": ["astronaut", None, "  retired "],  # unseen, missing, padded
            "has_loan": [None, "yes", "false"],
            "extra": [1, 2, 3],  # columns the model does not know are ignored
        }
    )
    probability = model.predict_proba(odd)[:, 1]
    assert np.isfinite(probability).all() and ((probability > 0) & (probability < 1)).all()
    assert probability[2] == pytest.approx(
        model.predict_proba(odd.assign(job=["x", None, "retired"]))[2, 1]
    )
    with pytest.raises(TableInputError, match="missing column\\(s\\) 'balance'") as missing:
        model.predict_proba(odd.drop(columns="balance"))
    assert missing.value.column == "balance"
    with pytest.raises(TableInputError, match="expected a number, found 'lots'") as bad:
        model.predict_proba(odd.assign(balance=["1.5", "2", "lots"]))
    assert (bad.value.column, bad.value.row) == ("balance", 3)
    with pytest.raises(TableInputError, match="expected true or false") as flag:
        model.predict_proba(odd.assign(has_loan=["yes", "maybe", "no"]))
    assert (flag.value.column, flag.value.row) == ("has_loan", 2)


def test_columns_that_cannot_help_are_left_out_with_a_reason() -> None:
    bank = _bank(500)
    bank["customer_id"] = [f"C{i:05d}" for i in range(len(bank))]
    bank["branch"] = "Leeds"
    bank["opened"] = pd.Timestamp("2020-01-01")
    model = PropensityModel(n_jobs=1, calibration=None).fit(
        bank.drop(columns="subscribed"), bank["subscribed"] == "yes"
    )
    assert "looks like an identifier" in model.dropped_columns_["customer_id"]
    assert model.dropped_columns_["branch"] == "one value only"
    assert "date or time" in model.dropped_columns_["opened"]
    assert "customer_id" not in model.feature_names_in_


def test_the_scikit_learn_contract() -> None:
    model = PropensityModel("logistic", "isotonic", C=0.5, random_state=7)
    assert model.get_params()["C"] == 0.5 and not hasattr(model, "encoder_")
    twin = clone(model)
    assert twin.get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.predict_proba(pd.DataFrame({"a": [1]}))
    bank = _bank(800)
    fitted = model.fit(bank.drop(columns="subscribed"), bank["subscribed"])
    assert fitted is model and hasattr(model, "calibrator_")
    assert 0.5 < model.score(bank.drop(columns="subscribed"), bank["subscribed"]) <= 1
    with pytest.raises(ValueError, match="exactly two classes"):
        clone(model).fit(bank.drop(columns="subscribed"), ["a", "b", "c", "d"] * 200)
    with pytest.raises(TypeError, match="pandas DataFrame"):
        clone(model).fit(np.zeros((4, 2)), [0, 1, 0, 1])


def test_evaluation_by_hand() -> None:
    # ten rows, scores in the order of the outcome: a perfect ranking
    truth = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    score = np.linspace(0.9, 0.0, 10)
    evaluation = evaluate_binary(truth, score)
    assert evaluation.auc == 1.0 and evaluation.pr_auc == 1.0
    assert evaluation.base_rate == 0.2
    assert [row["lift"] for row in evaluation.lift[:3]] == [5.0, 5.0, 0.0]
    assert evaluation.gains[2] == {"targeted": 0.2, "captured": 1.0}
    assert evaluation.brier == pytest.approx(np.mean((score - truth) ** 2))
    with pytest.raises(ValueError, match="both outcomes"):
        evaluate_binary([0, 0, 0], [0.1, 0.2, 0.3])


def test_targets_need_a_positive_value_unless_they_are_yes_no_flags() -> None:
    frame = pd.DataFrame({"y": ["yes", "no", None, "yes", " "], "x": [1, 2, 3, 4, 5]})
    with pytest.raises(TableInputError, match="pass --positive VALUE") as ambiguous:
        binary_target(frame, "y", source=Path("bank.csv"))
    assert "bank.csv, column 'y'" in str(ambiguous.value)
    labels, positive, unlabelled = binary_target(frame, "y", positive="yes")
    assert (labels.tolist(), positive, unlabelled) == ([1, 0, -1, 1, -1], "yes", 2)
    flags, positive, _ = binary_target(pd.DataFrame({"y": [0, 1, 1.0]}), "y")
    assert (flags.tolist(), positive) == ([0, 1, 1], "1")
    with pytest.raises(TableInputError, match="no row has the positive value 'maybe'"):
        binary_target(frame, "y", positive="maybe")
    with pytest.raises(TableInputError, match="no target column 'z'"):
        binary_target(frame, "z")


def test_time_based_validation_holds_out_the_latest_rows() -> None:
    bank = _bank(1_000)
    bank["applied_at"] = pd.date_range("2024-01-01", periods=len(bank), freq="h")[::-1]
    model = PropensityModel(n_jobs=1)
    fit = fit_propensity_table(
        bank, "subscribed", positive="yes", time_column="applied_at", model=model
    )
    assert "applied_at" not in fit.features
    assert fit.validation == "latest 25% of rows by applied_at"
    target = np.zeros(len(bank))
    train, valid = split_rows(target, times=bank["applied_at"])
    assert bank["applied_at"].iloc[train].max() < bank["applied_at"].iloc[valid].min()
    assert len(valid) == 250


def test_score_file_streams_batches_in_input_order(tmp_path: Path) -> None:
    bank = _bank(2_500)
    model = PropensityModel(n_jobs=1).fit(bank.drop(columns="subscribed"), bank["subscribed"])
    table = tmp_path / "customers.csv"
    bank.drop(columns="subscribed").to_csv(table, index=False)
    report = score_file(model, table, tmp_path / "scores.csv", batch_size=1_000)
    assert report.rows == 2_500
    scored = pd.read_csv(tmp_path / "scores.csv")
    assert list(scored.columns) == ["row", "score"]
    assert scored["row"].tolist() == list(range(1, 2_501))
    expected = model.predict_proba(pd.read_csv(table))[:, 1]
    np.testing.assert_allclose(scored["score"].to_numpy(), expected, rtol=1e-12)
