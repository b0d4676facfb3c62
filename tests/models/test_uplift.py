"""Uplift: the measures by hand, and the learners on Hillstrom's randomised e-mail campaign."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from helpers import shared_file
from jingzhun.models import (
    ClassTransformation,
    TLearner,
    UpliftFit,
    XLearner,
    auuc,
    evaluate_uplift,
    fit_uplift_table,
    qini_coefficient,
    qini_curve,
    rule_ranking,
    uplift_at_k,
)

SEEDS = 5  # splits 0..4: one split is noise (std of uplift@30% about 0.009), five average it


@pytest.fixture(scope="module")
def hillstrom() -> pd.DataFrame:
    # Hillstrom's MineThatData e-mail experiment, 64,000 customers (../shared/data/hillstrom)
    return pd.read_csv(shared_file("hillstrom/hillstrom.csv.gz"))


def _womens_vs_none(
    frame: pd.DataFrame,
    method: str,
    splits: int,
    *,
    seed: int = 0,
    rank_first: str | None = None,
) -> UpliftFit:
    return fit_uplift_table(
        frame,
        treatment_column="segment",
        treatment_value="Womens E-Mail",
        control_value="No E-Mail",
        target="visit",
        method=method,
        exclude=["history_segment"],  # the same information as `history`, in bands
        outcomes=["conversion", "spend"],
        baseline_column="womens",
        test_fraction=0.5,
        seed=seed,
        splits=splits,
        params={"n_jobs": 1, "rank_first": rank_first},
    )


def test_uplift_at_k_is_scikit_uplifts_overall_strategy() -> None:
    y = np.array([1, 0, 1, 0, 0, 1, 0, 0, 1, 0])
    t = np.array([1, 1, 0, 0, 1, 0, 1, 0, 1, 0])
    u = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    # top int(10 * 0.5) = 5 rows: treated y 1, 0, 0 (mean 1/3); control y 1, 0 (mean 1/2)
    assert uplift_at_k(y, u, t, 0.5) == pytest.approx(1 / 3 - 1 / 2)
    # top int(10 * 0.3) = 3 rows: treated 1, 0; control 1
    assert uplift_at_k(y, u, t, 0.3) == pytest.approx(0.5 - 1.0)
    # ties: a stable sort reversed puts the later row first (scikit-uplift's order)
    assert uplift_at_k([1, 0, 0, 1], [0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0], 0.5) == -1.0
    assert np.isnan(uplift_at_k(y, u, np.r_[1, 1, 1, t[3:]], 0.3))  # no control in the top
    with pytest.raises(ValueError, match="k must be a fraction"):
        uplift_at_k(y, u, t, 1.5)


def test_qini_curve_and_coefficients_by_hand() -> None:
    y = np.array([1, 0, 1, 0])
    t = np.array([1, 0, 0, 1])
    x, q = qini_curve(y, [4, 3, 2, 1], t)
    # Q(n) = Y_t(n) - Y_c(n) * N_t(n) / N_c(n)
    np.testing.assert_allclose(x, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(q, [0, 1, 1 - 0 * 1, 1 - 1 * 1 / 2, 1 - 1 * 2 / 2])
    perfect = y * t - y * (1 - t)
    assert qini_coefficient(y, perfect, t) == pytest.approx(1.0)
    assert auuc(y, perfect, t) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    n = 20_000
    y_random = rng.integers(0, 2, n)
    t_random = rng.integers(0, 2, n)
    assert abs(qini_coefficient(y_random, rng.random(n), t_random)) < 0.05


def test_evaluation_reports_every_outcome_per_arm() -> None:
    rng = np.random.default_rng(1)
    n = 4_000
    t = rng.integers(0, 2, n)
    responsive = rng.random(n) < 0.5
    y = (rng.random(n) < 0.1 + 0.2 * t * responsive).astype(int)
    spend = y * 50.0
    evaluation = evaluate_uplift(y, responsive + rng.random(n) * 0.1, t, outcomes={"spend": spend})
    assert evaluation.uplift_at["30%"] > 0.15
    assert evaluation.average_effect == pytest.approx(y[t == 1].mean() - y[t == 0].mean())
    spend_top = evaluation.top_outcomes["spend"]["30%"]
    assert spend_top["difference"] == pytest.approx(50 * evaluation.uplift_at["30%"])
    assert set(evaluation.top_outcomes) == {"target", "spend"}
    assert evaluation.qini[0]["targeted"] == 0 and evaluation.qini[-1]["targeted"] == 1
    assert evaluation.deciles[0]["uplift"] > evaluation.deciles[-1]["uplift"]


def test_a_rule_ranks_higher_values_first_and_ties_at_random() -> None:
    ranks = rule_ranking(pd.Series([1, 0, 1, 0, 1]), seed=3)
    assert set(ranks[[0, 2, 4]]) == {2, 3, 4} and set(ranks[[1, 3]]) == {0, 1}
    ones = pd.Series(np.ones(200))
    assert not np.array_equal(rule_ranking(ones, seed=3), rule_ranking(ones, seed=4))
    np.testing.assert_array_equal(rule_ranking(ones, seed=3), rule_ranking(ones, seed=3))


def test_hillstrom_womens_email_uplift_at_30_beats_the_published_figure(
    hillstrom: pd.DataFrame,
) -> None:
    fit = _womens_vs_none(hillstrom, "class_transformation", SEEDS)
    summary = fit.summary()
    per_split = [s.uplift_at["30%"] for s in fit.splits]
    rule = [(s.baseline_uplift_at or {})["30%"] for s in fit.splits]
    # Measured here (class transformation on LightGBM stumps, visit, Womens E-Mail vs No
    # E-Mail, random halves stratified on arm and visit, seeds 0-4):
    #   model 0.0728, 0.0663, 0.0767, 0.0741, 0.0751  mean 0.0730, std 0.0040
    #   "womens == 1 first" 0.0734, 0.0654, 0.0680, 0.0786, 0.0870  mean 0.0745
    # scikit-uplift's tutorial reports 0.0660 on one split (docs, pipeline_usage_EN.ipynb;
    # ../shared/data/BASELINES.md); the issue asks for a mean of at least 0.070.
    assert summary["uplift_at_30%_mean"] >= 0.070, per_split
    assert summary["uplift_at_30%_mean"] > 0.066
    assert summary["uplift_at_30%_std"] < 0.01
    # The rule is as good within noise; the model must not be clearly worse than it.
    assert summary["uplift_at_30%_mean"] > np.mean(rule) - 0.005, (per_split, rule)
    assert fit.rows_train + fit.rows_test == 21_387 + 21_306
    assert fit.rows_other_arms == 21_307  # the Mens E-Mail arm is left out
    assert "segment" not in fit.features and "conversion" not in fit.features
    # the e-mail works on the women's-merchandise buyers: the model puts them first
    top = fit.evaluation.top_outcomes
    assert top["visit"]["30%"]["difference"] == pytest.approx(fit.evaluation.uplift_at["30%"])
    assert top["conversion"]["30%"]["difference"] > top["conversion"]["all"]["difference"]
    assert top["spend"]["30%"]["difference"] > top["spend"]["all"]["difference"]


def test_hillstrom_womens_first_then_the_model_beats_the_one_line_rule(
    hillstrom: pd.DataFrame,
) -> None:
    # The README's final protocol: splits 1000-1019 (not used while choosing the learner)
    # and 0-4; the rule "womens == 1 first, ties random" on the same test halves. Measured
    # here (benchmarks/uplift_hillstrom.py): women's buyers first, then class transformation
    # 0.0747; the rule 0.0725; paired difference +0.0021, standard error 0.0014 (under two
    # standard errors: the README calls it not distinguishable from the rule).
    fits = [
        _womens_vs_none(hillstrom, "class_transformation", 20, seed=1000, rank_first="womens"),
        _womens_vs_none(hillstrom, "class_transformation", 5, seed=0, rank_first="womens"),
    ]
    splits = [s for fit in fits for s in fit.splits]
    model = np.array([s.uplift_at["30%"] for s in splits])
    rule = np.array([(s.baseline_uplift_at or {})["30%"] for s in splits])
    assert len(model) == 25
    assert model.mean() >= 0.070, model
    assert model.mean() > rule.mean(), (model.mean(), rule.mean())
    top = fits[1].evaluation.top_outcomes
    assert top["conversion"]["30%"]["difference"] > top["conversion"]["all"]["difference"]
    assert top["spend"]["30%"]["difference"] > top["spend"]["all"]["difference"]


def test_rank_first_orders_by_the_rule_then_by_the_model() -> None:
    rng = np.random.default_rng(2)
    n = 3_000
    features = pd.DataFrame(
        {"loyal": rng.integers(0, 2, n), "age": rng.integers(18, 80, n).astype(float)}
    )
    features.loc[:10, "loyal"] = np.nan
    treatment = rng.integers(0, 2, n)
    visit = (rng.random(n) < 0.1 + 0.2 * treatment * (features["age"] < 40)).astype(int)
    plain = ClassTransformation(n_estimators=50).fit(features, visit, treatment)
    ranked = ClassTransformation(n_estimators=50, rank_first="loyal").fit(
        features, visit, treatment
    )
    assert ranked.rank_first_levels_ == [0.0, 1.0]
    score, uplift = ranked.predict(features), plain.predict(features)
    level = features["loyal"].fillna(-1).to_numpy()
    # every loyal row above every other, missing last; inside a level the model's order
    assert score[level == 1].min() > score[level == 0].max() > score[level == -1].max()
    for value in (1, 0):
        inside = level == value
        by_score = uplift[inside][np.argsort(score[inside], kind="stable")]
        assert (np.diff(by_score) >= 0).all()
    with pytest.raises(ValueError, match="not a feature"):
        ClassTransformation(rank_first="tier").fit(features, visit, treatment)
    with pytest.raises(ValueError, match="needs a number or 0/1 column"):
        ClassTransformation(rank_first="tier").fit(
            features.assign(tier=np.where(level == 1, "gold", "silver")), visit, treatment
        )


@pytest.mark.parametrize("method", ["t_learner", "x_learner"])
def test_t_and_x_learners_find_the_responsive_customers(
    hillstrom: pd.DataFrame, method: str
) -> None:
    fit = _womens_vs_none(hillstrom, method, 1)
    # Measured here, seed 0: T-learner 0.0603, X-learner 0.0731 (means over seeds 0-4: 0.0685
    # and 0.0725). Targeting at random gets the e-mail's average effect on visits, 0.045
    # (15.14% against 10.62%).
    assert fit.evaluation.uplift_at["30%"] > 0.055
    assert fit.evaluation.average_effect == pytest.approx(0.045, abs=0.005)
    assert fit.evaluation.qini_coefficient > 0.03


def test_learners_follow_the_scikit_learn_contract(hillstrom: pd.DataFrame) -> None:
    sample = hillstrom.sample(6_000, random_state=0)
    sample = sample[sample["segment"] != "Mens E-Mail"]
    treatment = (sample["segment"] == "Womens E-Mail").astype(int).to_numpy()
    features = sample[["recency", "history", "mens", "womens", "newbie", "zip_code"]]
    for learner in (TLearner(n_estimators=20), XLearner(n_estimators=20), ClassTransformation()):
        twin = clone(learner)
        assert twin.get_params() == learner.get_params() and not hasattr(twin, "encoder_")
        uplift = learner.fit(features, sample["visit"], treatment).predict(features)
        assert uplift.shape == (len(sample),) and np.isfinite(uplift).all()
        assert uplift.min() >= -1 and uplift.max() <= 1
        assert learner.score(features, sample["visit"], treatment) == pytest.approx(
            uplift_at_k(sample["visit"], uplift, treatment, 0.3)
        )
    # amounts: the T- and X-learner regress, class transformation needs 0/1
    spend = TLearner(n_estimators=20).fit(features, sample["spend"], treatment).predict(features)
    assert np.isfinite(spend).all()
    with pytest.raises(ValueError, match="needs a 0/1 outcome"):
        ClassTransformation().fit(features, sample["spend"], treatment)
    with pytest.raises(ValueError, match="both present"):
        TLearner().fit(features, sample["visit"], np.ones(len(sample), dtype=int))
