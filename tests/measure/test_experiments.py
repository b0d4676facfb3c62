"""Experiment statistics: each figure against statsmodels on Hillstrom (a randomised e-mail test),
the sample-ratio check, CUPED, the always-valid sequential test, corrections, sample sizes,
holdout incrementality and clear errors on bad tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, zt_ind_solve_power
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    power_proportions_2indep,
    proportions_ztest,
    samplesize_proportions_2indep_onetail,
)
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from helpers import shared_file
from jingzhun.core import IngestError, SpecError
from jingzhun.measure import (
    ComparisonMethod,
    Correction,
    MetricKind,
    adjust_p_values,
    analyze_experiment,
    compare_means,
    compare_proportion_counts,
    compare_proportions,
    cuped,
    holdout_incrementality,
    metric_kind,
    sample_size_means,
    sample_size_proportions,
    sequential_test,
    srm_check,
)

CONTROL = "No E-Mail"
ARMS = ("Mens E-Mail", "Womens E-Mail")
TIGHT = {"rel": 1e-9, "abs": 1e-9}


@pytest.fixture(scope="module")
def hillstrom() -> pd.DataFrame:
    return pd.read_csv(shared_file("hillstrom/hillstrom.csv.gz"))


@pytest.fixture(scope="module")
def report(hillstrom: pd.DataFrame):
    return analyze_experiment(hillstrom, "segment", CONTROL, ["visit", "conversion", "spend"])


def _arm(frame: pd.DataFrame, arm: str, metric: str) -> np.ndarray:
    return frame.loc[frame["segment"] == arm, metric].to_numpy(dtype=float)


# -- Hillstrom against statsmodels ------------------------------------------------------------


def test_hillstrom_arm_means_match_the_published_sanity_figures(report) -> None:
    # BASELINES.md (Hillstrom): visit 18.28% / 15.14% / 10.62%; conversion 1.25% / 0.88% /
    # 0.57%; spend $1.42 / $1.08 / $0.65 (Mens / Womens / No e-mail).
    expected = {
        "visit": (0.1828, 0.1514, 0.1062),
        "conversion": (0.0125, 0.0088, 0.0057),
        "spend": (1.42, 1.08, 0.65),
    }
    for metric, (mens, womens, none) in expected.items():
        digits = 2 if metric == "spend" else 4
        assert round(report.get("Mens E-Mail", metric).treatment_mean, digits) == mens
        assert round(report.get("Womens E-Mail", metric).treatment_mean, digits) == womens
        assert round(report.get("Mens E-Mail", metric).control_mean, digits) == none
    assert report.arms == {CONTROL: 21306, "Mens E-Mail": 21307, "Womens E-Mail": 21387}


@pytest.mark.parametrize("arm", ARMS)
@pytest.mark.parametrize("metric", ["visit", "conversion"])
def test_proportions_equal_statsmodels(hillstrom: pd.DataFrame, report, arm: str, metric: str):
    treated, control = _arm(hillstrom, arm, metric), _arm(hillstrom, CONTROL, metric)
    counts = (treated.sum(), treated.size, control.sum(), control.size)
    low, high = confint_proportions_2indep(*counts, method="wald", compare="diff")
    z, p = proportions_ztest([counts[0], counts[2]], [counts[1], counts[3]])
    result = report.get(arm, metric)
    assert result.method is ComparisonMethod.PROPORTIONS_Z
    assert result.ci_low == pytest.approx(low, **TIGHT)
    assert result.ci_high == pytest.approx(high, **TIGHT)
    assert result.statistic == pytest.approx(z, **TIGHT)
    assert result.p_value == pytest.approx(p, **TIGHT)
    assert result.absolute_lift == pytest.approx(treated.mean() - control.mean(), **TIGHT)


@pytest.mark.parametrize("arm", ARMS)
def test_spend_equals_statsmodels_welch(hillstrom: pd.DataFrame, report, arm: str) -> None:
    compare = CompareMeans(
        DescrStatsW(_arm(hillstrom, arm, "spend")), DescrStatsW(_arm(hillstrom, CONTROL, "spend"))
    )
    low, high = compare.tconfint_diff(usevar="unequal")
    t, p, df = compare.ttest_ind(usevar="unequal")
    result = report.get(arm, "spend")
    assert result.method is ComparisonMethod.WELCH_T
    assert result.ci_low == pytest.approx(low, **TIGHT)
    assert result.ci_high == pytest.approx(high, **TIGHT)
    assert result.p_value == pytest.approx(p, **TIGHT)
    assert result.statistic == pytest.approx(t, **TIGHT)
    assert result.df == pytest.approx(df, **TIGHT)


def test_hillstrom_figures(report) -> None:
    # The figures the README quotes (computed here; the statsmodels tests above pin them).
    mens_visit = report.get("Mens E-Mail", "visit")
    assert (mens_visit.ci_low, mens_visit.ci_high) == pytest.approx((0.069954, 0.083226), abs=1e-6)
    womens_conv = report.get("Womens E-Mail", "conversion")
    assert womens_conv.p_value == pytest.approx(1.5711e-4, rel=1e-3)
    womens_spend = report.get("Womens E-Mail", "spend")
    assert (womens_spend.ci_low, womens_spend.ci_high) == pytest.approx(
        (0.16896, 0.67987), abs=1e-5
    )
    assert womens_spend.p_value == pytest.approx(1.1294e-3, rel=1e-3)


def test_relative_interval_is_close_to_the_log_ratio_interval(hillstrom: pd.DataFrame, report):
    # The delta-method interval and statsmodels' log-ratio interval are both large-sample
    # approximations of the same thing; on 21k units per arm they agree to a few points.
    treated, control = _arm(hillstrom, "Mens E-Mail", "visit"), _arm(hillstrom, CONTROL, "visit")
    low, high = confint_proportions_2indep(
        treated.sum(), treated.size, control.sum(), control.size, method="log", compare="ratio"
    )
    result = report.get("Mens E-Mail", "visit")
    assert result.relative_lift == pytest.approx(treated.mean() / control.mean() - 1, **TIGHT)
    assert result.relative_ci_low == pytest.approx(low - 1, abs=0.01)
    assert result.relative_ci_high == pytest.approx(high - 1, abs=0.01)


def test_holm_adjusts_across_the_arms_of_each_metric(report) -> None:
    for metric in ("visit", "conversion", "spend"):
        rows = report.for_metric(metric)
        expected = multipletests([r.p_value for r in rows], method="holm")[1]
        assert [r.p_value_adjusted for r in rows] == pytest.approx(list(expected), **TIGHT)


def test_bonferroni_and_none(hillstrom: pd.DataFrame) -> None:
    bonferroni = analyze_experiment(
        hillstrom, "segment", CONTROL, ["spend"], correction="bonferroni"
    )
    none = analyze_experiment(hillstrom, "segment", CONTROL, ["spend"], correction="none")
    for b, n in zip(bonferroni.comparisons, none.comparisons, strict=True):
        assert b.p_value_adjusted == pytest.approx(min(1.0, 2 * b.p_value), **TIGHT)
        assert n.p_value_adjusted == n.p_value
    assert adjust_p_values([0.01, math.nan, 0.04], Correction.HOLM)[1] != 0.0
    assert adjust_p_values([0.01, 0.04], "bonferroni") == pytest.approx([0.02, 0.08])


# -- sample-ratio mismatch --------------------------------------------------------------------


def test_srm_hillstrom_passes(report) -> None:
    # 21,306 / 21,307 / 21,387 against equal thirds: chi² 0.2025 on 2 df, p 0.904.
    assert report.srm.mismatch is False
    assert report.srm.chi2 == pytest.approx(0.20253125, **TIGHT)
    assert report.srm.p_value == pytest.approx(stats.chi2.sf(0.20253125, 2), **TIGHT)


def test_srm_flags_a_skewed_sample(hillstrom: pd.DataFrame) -> None:
    # Lose 3% of the control units (as a broken logger would): 21,306 -> about 20,667.
    rng = np.random.default_rng(7)
    lost = (hillstrom["segment"] == CONTROL) & (rng.random(len(hillstrom)) < 0.03)
    skewed = analyze_experiment(hillstrom[~lost], "segment", CONTROL, ["visit"])
    assert skewed.srm.mismatch is True
    assert skewed.srm.p_value < 1e-3


def test_srm_with_planned_shares_equals_scipy() -> None:
    counts = {"control": 5120, "a": 2480, "b": 2400}
    check = srm_check(counts, {"control": 2, "a": 1, "b": 1})
    chi2, p = stats.chisquare([5120, 2480, 2400], [5000, 2500, 2500])
    assert (check.chi2, check.p_value) == pytest.approx((chi2, p), **TIGHT)
    assert check.expected_shares == {"control": 0.5, "a": 0.25, "b": 0.25}
    with pytest.raises(ValueError, match="missing"):
        srm_check(counts, {"control": 0.5, "a": 0.5})


# -- CUPED ------------------------------------------------------------------------------------


def test_cuped_on_hillstrom_spend_with_history(hillstrom: pd.DataFrame, report) -> None:
    adjusted = analyze_experiment(
        hillstrom, "segment", CONTROL, ["spend"], covariates={"spend": "history"}
    )
    for arm in ARMS:
        plain, with_history = report.get(arm, "spend"), adjusted.get(arm, "spend")
        assert with_history.method is ComparisonMethod.CUPED_WELCH_T
        # Last year's spend barely predicts two weeks' spend (corr ≈ 0.02), so the reduction is
        # real but small: 0.04% of the lift's variance.
        assert 0 < with_history.variance_reduction < 0.01
        assert with_history.standard_error < plain.standard_error
        # Unbiased: the estimate moves by far less than its own standard error.
        assert abs(with_history.absolute_lift - plain.absolute_lift) < 0.05 * plain.standard_error


def test_cuped_is_unbiased_and_cuts_variance_by_corr_squared() -> None:
    # Y = X + noise with corr(Y, X) = 0.8, true lift 0.1: CUPED keeps the mean of the estimates
    # at 0.1 and removes about 0.8² = 64% of their variance.
    rng = np.random.default_rng(11)
    sims, n = 200, 400
    plain, adjusted, reductions = [], [], []
    arm = np.repeat(["c", "t"], n)
    for _ in range(sims):
        x = rng.normal(size=2 * n)
        y = 0.8 * x + 0.6 * rng.normal(size=2 * n) + np.where(arm == "t", 0.1, 0.0)
        result = cuped(y, x, arm, control="c")
        adjusted.append(result.absolute_lift)
        reductions.append(result.variance_reduction)
        plain.append(y[n:].mean() - y[:n].mean())
    assert np.mean(adjusted) == pytest.approx(0.1, abs=3 * np.std(adjusted) / math.sqrt(sims))
    assert np.var(adjusted) / np.var(plain) == pytest.approx(0.36, abs=0.1)
    assert np.mean(reductions) == pytest.approx(0.64, abs=0.03)


# -- sequential test --------------------------------------------------------------------------


def test_sequential_aa_keeps_alpha_while_naive_peeking_does_not() -> None:
    # A/A: 200 experiments, 30 daily looks of 50 units per arm. Looking every day at a fixed-n
    # Welch test rejects in about 29% of them; the mSPRT in 1.5% (at most alpha = 5%).
    rng = np.random.default_rng(20240501)
    sims, looks, per_look = 200, 30, 50
    data = rng.normal(size=(sims, 2, looks, per_look))
    ever_sequential = 0
    covered = 0
    for s in range(sims):
        result = sequential_test(list(data[s, 0]), list(data[s, 1]), alpha=0.05)
        ever_sequential += result.rejected_at is not None
        covered += bool(np.all((result.ci_low <= 0) & (result.ci_high >= 0)))
    control = data[:, 0].reshape(sims, -1)
    treatment = data[:, 1].reshape(sims, -1)
    ever_naive = np.zeros(sims, dtype=bool)
    for k in range(1, looks + 1):
        n = k * per_look
        p = stats.ttest_ind(treatment[:, :n], control[:, :n], axis=1, equal_var=False).pvalue
        ever_naive |= p < 0.05
    assert ever_sequential / sims == pytest.approx(0.015)
    assert ever_sequential / sims <= 0.05
    assert covered / sims >= 0.95
    assert ever_naive.mean() == pytest.approx(0.29)
    assert ever_naive.mean() > 0.05


def test_sequential_finds_a_real_effect_and_its_interval_shrinks() -> None:
    rng = np.random.default_rng(3)
    control = [rng.normal(size=100) for _ in range(20)]
    treatment = [rng.normal(loc=0.3, size=100) for _ in range(20)]
    result = sequential_test(control, treatment)
    assert result.rejected_at is not None and result.rejected_at < 10
    assert np.all(np.diff(result.p_value) <= 0)
    assert np.all(np.diff(result.ci_high - result.ci_low) <= 0)
    assert result.ci_low[-1] <= 0.3 <= result.ci_high[-1]
    assert result.n_control[-1] == 2000
    with pytest.raises(ValueError, match="same number of looks"):
        sequential_test(control, treatment[:-1])


# -- sample size ------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [1.0, 2.0])
def test_sample_size_proportions_equals_statsmodels(ratio: float) -> None:
    size = sample_size_proportions(0.1, 0.01, alpha=0.05, power=0.8, ratio=ratio)
    # statsmodels: sample 1 is the treatment (p1 = p2 + diff), nobs2 = ratio_sm * nobs1.
    n_treatment = samplesize_proportions_2indep_onetail(
        0.01, 0.1, 0.8, ratio=1 / ratio, alpha=0.05, alternative="two-sided"
    )
    assert size.n_control_exact * ratio == pytest.approx(n_treatment, rel=1e-9)
    achieved = power_proportions_2indep(
        0.01, 0.1, size.n_treatment, ratio=1 / ratio, alpha=0.05, return_results=False
    )
    assert achieved >= 0.8
    if ratio == 1.0:
        assert (size.n_control, size.n_total) == (14751, 29502)


def test_sample_size_relative_and_several_arms() -> None:
    relative = sample_size_proportions(0.1, 0.1, relative=True)
    assert relative.mde_absolute == pytest.approx(0.01)
    three = sample_size_proportions(0.1, 0.01, comparisons=2)
    assert three.alpha_per_comparison == 0.025
    assert three.n_total == three.n_control + 2 * three.n_treatment
    with pytest.raises(ValueError, match="between 0 and 1"):
        sample_size_proportions(0.95, 0.1)


@pytest.mark.parametrize(("ratio", "power"), [(1.0, 0.8), (0.5, 0.9)])
def test_sample_size_means_equals_statsmodels(ratio: float, power: float) -> None:
    size = sample_size_means(3.0, 0.2, alpha=0.05, power=power, ratio=ratio)
    expected = NormalIndPower().solve_power(
        effect_size=0.2 / 3.0, alpha=0.05, power=power, ratio=ratio
    )
    assert size.n_control_exact == pytest.approx(expected, rel=1e-6)
    assert size.n_control_exact == pytest.approx(
        zt_ind_solve_power(effect_size=0.2 / 3.0, alpha=0.05, power=power, ratio=ratio), rel=1e-6
    )
    assert size.n_control == math.ceil(expected)


# -- holdouts ---------------------------------------------------------------------------------


def test_holdout_incrementality_scales_the_difference_to_the_treated(hillstrom) -> None:
    # The Mens e-mail as a campaign and "No E-Mail" as its holdout.
    treated = hillstrom[hillstrom["segment"] == "Mens E-Mail"]
    holdout = hillstrom[hillstrom["segment"] == CONTROL]
    result = holdout_incrementality(
        int(treated["conversion"].sum()),
        len(treated),
        int(holdout["conversion"].sum()),
        len(holdout),
        treated["spend"].to_numpy(),
        holdout["spend"].to_numpy(),
    )
    low, high = confint_proportions_2indep(
        treated["conversion"].sum(),
        len(treated),
        holdout["conversion"].sum(),
        len(holdout),
        method="wald",
    )
    # 267 conversions against 0.573% of 21,307 = 122.1 expected: about 145 more.
    assert result.incremental_conversions == pytest.approx(145.0, abs=0.1)
    assert result.incremental_conversions_ci == pytest.approx(
        (low * len(treated), high * len(treated)), **TIGHT
    )
    assert result.incremental_revenue == pytest.approx(0.76983 * 21307, rel=1e-4)
    assert result.incremental_revenue_ci is not None
    assert result.incremental_revenue_ci[0] > 0
    assert result.to_dict()["revenue"]["metric"] == "revenue"
    with pytest.raises(ValueError, match="one value per unit"):
        holdout_incrementality(10, 100, 5, 100, np.zeros(99), np.zeros(100))


# -- small pieces and bad input ---------------------------------------------------------------


def test_metric_kind_and_direct_comparisons() -> None:
    assert metric_kind([0, 1, 1, 0]) is MetricKind.BINARY
    assert metric_kind([0, 1, 2]) is MetricKind.CONTINUOUS
    counts = compare_proportion_counts(50, 1000, 70, 1000)
    arrays = compare_proportions(
        np.r_[np.ones(50), np.zeros(950)], np.r_[np.ones(70), np.zeros(930)]
    )
    assert counts.ci_low == arrays.ci_low and counts.p_value == arrays.p_value
    with pytest.raises(ValueError, match="0/1"):
        compare_proportions([0, 2], [1, 0])
    constant = compare_means([1.0, 1.0], [1.0, 1.0])
    assert constant.p_value == 1.0 and constant.to_dict()["df"] is None
    assert compare_means([0.0, 0.0], [1.0, 2.0]).to_dict()["relative_lift"] is None


def _small() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "group": ["a", "b", "a", "b", "a", "b"],
            "bought": [0, 1, 0, 1, 1, 0],
            "spend": ["0", "3.5", "zero", "1", "2", "0"],
        }
    )


def test_bad_tables_name_the_file_column_and_row() -> None:
    source = Path("test.csv")
    with pytest.raises(IngestError) as missing:
        analyze_experiment(_small(), "arm", "a", ["bought"], source=source)
    assert missing.value.column == "arm" and "group, bought, spend" in str(missing.value)
    with pytest.raises(IngestError, match="control value 'z' does not occur"):
        analyze_experiment(_small(), "group", "z", ["bought"], source=source)
    with pytest.raises(IngestError) as text:
        analyze_experiment(_small(), "group", "a", ["spend"], source=source)
    # 'zero' is the third record: line 4 of a CSV whose header is line 1.
    assert (text.value.row, text.value.column) == (4, "spend")
    assert "'zero' is not a number" in str(text.value)
    frame = _small()
    frame.loc[1, "group"] = None
    with pytest.raises(IngestError, match="arm is empty") as empty:
        analyze_experiment(frame, "group", "a", ["bought"], source=source)
    assert empty.value.row == 3
    with pytest.raises(IngestError, match="no rows"):
        analyze_experiment(_small().iloc[:0], "group", "a", ["bought"], source=source)
    with pytest.raises(SpecError, match="correction"):
        analyze_experiment(_small(), "group", "a", ["bought"], correction="sidak")
    with pytest.raises(SpecError, match="expected shares"):
        analyze_experiment(_small(), "group", "a", ["bought"], expected_shares={"a": 1.0})
    with pytest.raises(IngestError, match="declared binary"):
        frame = _small().assign(spend=[0, 3.5, 0, 1, 2, 0])
        analyze_experiment(frame, "group", "a", ["spend"], kinds={"spend": "binary"})
