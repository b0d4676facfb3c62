"""Statistics of randomised experiments and holdouts, on plain numpy arrays and pandas frames.

What each function computes, and the source of the method:

- ``srm_check``: sample-ratio mismatch, a chi-square goodness-of-fit test of the arm sizes
  against the planned shares (Fabijan et al. 2019, "Diagnosing Sample Ratio Mismatch in Online
  Controlled Experiments", KDD; alpha 0.001 by their advice, since a mismatch voids the test).
- ``compare_proportions``: two-proportion z. The confidence interval of the difference is Wald
  with the unpooled standard error; the p-value is the z-test with the pooled standard error
  (the proportions are equal under the null). statsmodels' ``confint_proportions_2indep(...,
  method="wald")`` and ``proportions_ztest`` give the same figures.
- ``compare_means``: Welch's t with Welch–Satterthwaite degrees of freedom, interval by t
  (statsmodels ``CompareMeans(...).tconfint_diff(usevar="unequal")``).
- Relative lift ``treatment / control - 1`` with an interval by the delta method (normal).
- ``cuped``: variance reduction with a pre-period covariate (Deng, Xu, Kohavi & Walker 2013,
  "Improving the Sensitivity of Online Controlled Experiments by Utilizing Pre-Experiment
  Data", WSDM): ``theta = cov(Y, X) / var(X)`` over both arms, ``Y - theta (X - mean X)``,
  then Welch.
- ``sequential_test``: the mixture sequential probability ratio test (mSPRT) with a normal
  mixture (Johari, Koomen, Pekelis & Walsh 2017, "Peeking at A/B Tests", KDD; Johari, Pekelis
  & Walsh, "Always Valid Inference", arXiv:1512.04922): always-valid p-values and confidence
  sequences, so the result may be looked at after every day.
- ``adjust_p_values``: Holm (default) or Bonferroni across the variants of one metric
  (statsmodels ``multipletests``).
- ``sample_size_proportions`` / ``sample_size_means``: the normal-approximation sample size;
  for proportions with the pooled variance under the null and the unpooled one under the
  alternative (Fleiss, Levin & Paik 2003, eq. 4.14; statsmodels
  ``samplesize_proportions_2indep_onetail``).
- ``holdout_incrementality``: incremental conversions and revenue of a campaign against its
  holdout, scaled to the treated group.

Conventions: ``control`` is the reference arm; lifts are ``treatment - control``; intervals
have level ``1 - alpha``; ``ratio`` is ``n_treatment / n_control``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests

from jingzhun.core import IngestError, SpecError, SpecProblem

SRM_ALPHA = 0.001
DEFAULT_TAU = 0.1


class ComparisonMethod(StrEnum):
    """How a metric was compared."""

    PROPORTIONS_Z = "two-proportion z"
    WELCH_T = "welch t"
    CUPED_WELCH_T = "cuped + welch t"


class MetricKind(StrEnum):
    """Whether a metric is a 0/1 outcome (proportions) or a number (means)."""

    BINARY = "binary"
    CONTINUOUS = "continuous"


class Correction(StrEnum):
    """Correction of p-values when several variants are compared with one control."""

    HOLM = "holm"
    BONFERRONI = "bonferroni"
    NONE = "none"


def _float_or_none(value: float | None) -> float | None:
    """A JSON-safe float: NaN and infinities become None."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


# -- sample-ratio mismatch --------------------------------------------------------------------


@dataclass(frozen=True)
class SrmCheck:
    """Sample-ratio mismatch: whether the arms were filled in the planned shares.

    ``mismatch`` is True when the chi-square p-value is below ``alpha``; the assignment is then
    suspect and the comparisons should not be trusted until the cause is found.
    """

    observed: dict[str, int]
    expected: dict[str, float]
    expected_shares: dict[str, float]
    chi2: float
    df: int
    p_value: float
    alpha: float
    mismatch: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values."""
        return {
            "observed": dict(self.observed),
            "expected": {k: float(v) for k, v in self.expected.items()},
            "expected_shares": {k: float(v) for k, v in self.expected_shares.items()},
            "chi2": float(self.chi2),
            "df": self.df,
            "p_value": float(self.p_value),
            "alpha": self.alpha,
            "mismatch": self.mismatch,
        }


def srm_check(
    counts: Mapping[str, int],
    expected_shares: Mapping[str, float] | None = None,
    alpha: float = SRM_ALPHA,
) -> SrmCheck:
    """Chi-square goodness of fit of the arm sizes against the planned shares.

    Parameters
    ----------
    counts
        Units per arm.
    expected_shares
        Planned share per arm (positive weights, normalised to sum to 1); equal shares when
        None. Must name exactly the arms in ``counts``.
    alpha
        A p-value below this flags a mismatch (0.001 by default, Fabijan et al. 2019).

    Raises
    ------
    ValueError
        Fewer than two arms, a negative count, or shares that do not match the arms.
    """
    arms = list(counts)
    if len(arms) < 2:
        raise ValueError(f"a sample-ratio check needs at least two arms, got {arms}")
    if any(int(n) < 0 for n in counts.values()):
        raise ValueError("arm counts cannot be negative")
    if expected_shares is None:
        weights = {arm: 1.0 for arm in arms}
    else:
        unknown = sorted(set(expected_shares) - set(arms))
        missing = sorted(set(arms) - set(expected_shares))
        if unknown or missing:
            raise ValueError(
                f"expected shares must name every arm: unknown {unknown}, missing {missing}"
            )
        weights = {arm: float(expected_shares[arm]) for arm in arms}
        if any(not math.isfinite(w) or w <= 0 for w in weights.values()):
            raise ValueError("expected shares must be positive numbers")
    total_weight = sum(weights.values())
    shares = {arm: weights[arm] / total_weight for arm in arms}
    observed = np.array([int(counts[arm]) for arm in arms], dtype=float)
    expected = np.array([shares[arm] for arm in arms]) * observed.sum()
    chi2, p_value = stats.chisquare(observed, expected)
    return SrmCheck(
        observed={arm: int(counts[arm]) for arm in arms},
        expected=dict(zip(arms, expected.tolist(), strict=True)),
        expected_shares=shares,
        chi2=float(chi2),
        df=len(arms) - 1,
        p_value=float(p_value),
        alpha=alpha,
        mismatch=bool(p_value < alpha),
    )


# -- one arm against control ------------------------------------------------------------------


@dataclass(frozen=True)
class ArmComparison:
    """One treatment arm against control on one metric.

    ``absolute_lift`` is ``treatment_mean - control_mean`` with the interval
    ``[ci_low, ci_high]``; ``relative_lift`` is ``treatment_mean / control_mean - 1`` with a
    delta-method interval. For CUPED the means are the covariate-adjusted means (unbiased for
    the arm means under randomisation), ``theta`` the adjustment coefficient and
    ``variance_reduction`` the share of the lift's variance removed. ``p_value_adjusted`` is
    set by ``analyze_experiment`` when several variants are corrected together.
    """

    arm: str
    metric: str
    method: ComparisonMethod
    control_mean: float
    treatment_mean: float
    absolute_lift: float
    relative_lift: float
    ci_low: float
    ci_high: float
    relative_ci_low: float
    relative_ci_high: float
    p_value: float
    n_control: int
    n_treatment: int
    statistic: float
    standard_error: float
    alpha: float
    df: float | None = None
    p_value_adjusted: float | None = None
    theta: float | None = None
    variance_reduction: float | None = None

    @property
    def significant(self) -> bool:
        """Whether the (adjusted, when set) p-value is below ``alpha``."""
        p = self.p_value if self.p_value_adjusted is None else self.p_value_adjusted
        return bool(p < self.alpha)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values; NaN (e.g. relative lift on a zero control mean) becomes None."""
        return {
            "arm": self.arm,
            "metric": self.metric,
            "method": str(self.method),
            "control_mean": _float_or_none(self.control_mean),
            "treatment_mean": _float_or_none(self.treatment_mean),
            "absolute_lift": _float_or_none(self.absolute_lift),
            "relative_lift": _float_or_none(self.relative_lift),
            "ci_low": _float_or_none(self.ci_low),
            "ci_high": _float_or_none(self.ci_high),
            "relative_ci_low": _float_or_none(self.relative_ci_low),
            "relative_ci_high": _float_or_none(self.relative_ci_high),
            "p_value": _float_or_none(self.p_value),
            "p_value_adjusted": _float_or_none(self.p_value_adjusted),
            "n_control": self.n_control,
            "n_treatment": self.n_treatment,
            "statistic": _float_or_none(self.statistic),
            "standard_error": _float_or_none(self.standard_error),
            "df": _float_or_none(self.df),
            "alpha": self.alpha,
            "significant": self.significant,
            "theta": _float_or_none(self.theta),
            "variance_reduction": _float_or_none(self.variance_reduction),
        }


def _relative(
    control_mean: float,
    treatment_mean: float,
    var_control_mean: float,
    var_treatment_mean: float,
    alpha: float,
) -> tuple[float, float, float]:
    """Relative lift ``t / c - 1`` and its delta-method interval (arms independent)."""
    if control_mean == 0:
        return math.nan, math.nan, math.nan
    ratio = treatment_mean / control_mean
    # Var(T/C) ≈ Var(T)/C² + T² Var(C)/C⁴ (first-order Taylor expansion).
    se = math.sqrt(
        var_treatment_mean / control_mean**2 + ratio**2 * var_control_mean / control_mean**2
    )
    z = stats.norm.isf(alpha / 2)
    return ratio - 1, ratio - 1 - z * se, ratio - 1 + z * se


def _as_array(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=float).ravel()
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds missing or infinite values")
    return array


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")


def compare_proportion_counts(
    control_successes: int,
    control_n: int,
    treatment_successes: int,
    treatment_n: int,
    *,
    alpha: float = 0.05,
    arm: str = "treatment",
    metric: str = "conversion",
) -> ArmComparison:
    """Two-proportion z from counts: Wald interval (unpooled SE), p-value with the pooled SE.

    The interval uses the unpooled standard error ``sqrt(p1 q1 / n1 + p0 q0 / n0)`` because it
    describes the difference wherever it lies; the test uses the pooled proportion because under
    the null both arms share it. Equal to statsmodels' ``confint_proportions_2indep(...,
    method="wald")`` and ``proportions_ztest``.

    Raises
    ------
    ValueError
        An arm without units, or successes outside ``0..n``.
    """
    _check_alpha(alpha)
    for successes, n, name in (
        (control_successes, control_n, "control"),
        (treatment_successes, treatment_n, "treatment"),
    ):
        if n <= 0:
            raise ValueError(f"the {name} arm has no units")
        if not 0 <= successes <= n:
            raise ValueError(f"the {name} arm has {successes} successes out of {n} units")
    p0 = control_successes / control_n
    p1 = treatment_successes / treatment_n
    var0 = p0 * (1 - p0) / control_n
    var1 = p1 * (1 - p1) / treatment_n
    diff = p1 - p0
    se = math.sqrt(var0 + var1)
    z_crit = stats.norm.isf(alpha / 2)
    pooled = (control_successes + treatment_successes) / (control_n + treatment_n)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / control_n + 1 / treatment_n))
    if se_pooled > 0:
        statistic = diff / se_pooled
        p_value = float(2 * stats.norm.sf(abs(statistic)))
    else:  # both arms all 0 or all 1: no evidence of a difference
        statistic, p_value = 0.0, 1.0
    relative, rel_low, rel_high = _relative(p0, p1, var0, var1, alpha)
    return ArmComparison(
        arm=arm,
        metric=metric,
        method=ComparisonMethod.PROPORTIONS_Z,
        control_mean=p0,
        treatment_mean=p1,
        absolute_lift=diff,
        relative_lift=relative,
        ci_low=diff - z_crit * se,
        ci_high=diff + z_crit * se,
        relative_ci_low=rel_low,
        relative_ci_high=rel_high,
        p_value=p_value,
        n_control=int(control_n),
        n_treatment=int(treatment_n),
        statistic=float(statistic),
        standard_error=se,
        alpha=alpha,
    )


def compare_proportions(
    control: npt.ArrayLike,
    treatment: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    arm: str = "treatment",
    metric: str = "conversion",
) -> ArmComparison:
    """Two-proportion z on 0/1 outcomes per unit (see ``compare_proportion_counts``).

    Raises
    ------
    ValueError
        A value other than 0 or 1, or an empty arm.
    """
    c = _as_array(control, "control")
    t = _as_array(treatment, "treatment")
    if not (np.isin(c, (0.0, 1.0)).all() and np.isin(t, (0.0, 1.0)).all()):
        raise ValueError(f"{metric}: a proportion needs 0/1 values; use compare_means")
    return compare_proportion_counts(
        int(c.sum()), c.size, int(t.sum()), t.size, alpha=alpha, arm=arm, metric=metric
    )


def _welch(
    c: npt.NDArray[np.float64],
    t: npt.NDArray[np.float64],
    *,
    alpha: float,
    arm: str,
    metric: str,
    method: ComparisonMethod,
) -> ArmComparison:
    if c.size < 2 or t.size < 2:
        raise ValueError(f"{metric}: Welch's t needs at least two units per arm")
    m0, m1 = float(c.mean()), float(t.mean())
    var0 = float(c.var(ddof=1)) / c.size
    var1 = float(t.var(ddof=1)) / t.size
    diff = m1 - m0
    se = math.sqrt(var0 + var1)
    if se > 0:
        # Welch–Satterthwaite degrees of freedom.
        df = (var0 + var1) ** 2 / (var0**2 / (c.size - 1) + var1**2 / (t.size - 1))
        statistic = diff / se
        p_value = float(2 * stats.t.sf(abs(statistic), df))
        t_crit = float(stats.t.isf(alpha / 2, df))
    else:  # no variation in either arm
        df, statistic, t_crit = math.nan, math.nan, 0.0
        p_value = 1.0 if diff == 0 else 0.0
    relative, rel_low, rel_high = _relative(m0, m1, var0, var1, alpha)
    return ArmComparison(
        arm=arm,
        metric=metric,
        method=method,
        control_mean=m0,
        treatment_mean=m1,
        absolute_lift=diff,
        relative_lift=relative,
        ci_low=diff - t_crit * se,
        ci_high=diff + t_crit * se,
        relative_ci_low=rel_low,
        relative_ci_high=rel_high,
        p_value=p_value,
        n_control=int(c.size),
        n_treatment=int(t.size),
        statistic=float(statistic),
        standard_error=se,
        alpha=alpha,
        df=float(df),
    )


def compare_means(
    control: npt.ArrayLike,
    treatment: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    arm: str = "treatment",
    metric: str = "metric",
) -> ArmComparison:
    """Welch's t on the difference in means; interval by t with Welch–Satterthwaite df.

    Equal to statsmodels' ``CompareMeans(...).tconfint_diff(usevar="unequal")`` and
    ``ttest_ind(usevar="unequal")``.

    Raises
    ------
    ValueError
        Fewer than two units in an arm, or missing values.
    """
    _check_alpha(alpha)
    c = _as_array(control, "control")
    t = _as_array(treatment, "treatment")
    return _welch(c, t, alpha=alpha, arm=arm, metric=metric, method=ComparisonMethod.WELCH_T)


def metric_kind(values: npt.ArrayLike) -> MetricKind:
    """Binary when every value is 0 or 1, else continuous."""
    array = np.asarray(values, dtype=float)
    return MetricKind.BINARY if np.isin(array, (0.0, 1.0)).all() else MetricKind.CONTINUOUS


def cuped(
    metric: npt.ArrayLike,
    covariate: npt.ArrayLike,
    arm: npt.ArrayLike,
    *,
    control: Any,
    treatment: Any = None,
    alpha: float = 0.05,
    metric_name: str = "metric",
) -> ArmComparison:
    """CUPED: the metric adjusted by a pre-period covariate, then Welch's t.

    ``theta = cov(Y, X) / var(X)`` over every unit given, of every arm (it must not depend on
    the arm, or the adjustment would bias the lift), ``Y' = Y - theta (X - mean X)``. The
    adjusted means stay unbiased for the arm means under randomisation; the lift's variance
    shrinks by about ``corr(Y, X)²`` (Deng et al. 2013).

    Parameters
    ----------
    metric, covariate, arm
        One value per unit: the outcome, its pre-period value, the unit's arm.
    control
        The control arm's label.
    treatment
        The treatment arm's label; may be left out when ``arm`` holds exactly two labels.

    Raises
    ------
    ValueError
        Lengths differ, the labels are not found, or the covariate does not vary.
    """
    _check_alpha(alpha)
    y = _as_array(metric, "metric")
    x = _as_array(covariate, "covariate")
    labels = np.asarray(arm, dtype=object).ravel()
    if not y.size == x.size == labels.size:
        raise ValueError("metric, covariate and arm must have one value per unit each")
    if treatment is None:
        others = [label for label in pd.unique(labels) if label != control]
        if len(others) != 1:
            raise ValueError(f"name the treatment arm: the labels besides control are {others}")
        treatment = others[0]
    is_control = labels == control
    is_treatment = labels == treatment
    if not is_control.any() or not is_treatment.any():
        raise ValueError(f"no units in arm {control!r} or {treatment!r}")
    var_x = float(x.var(ddof=1))
    if var_x == 0:
        raise ValueError("the covariate does not vary, so it cannot reduce variance")
    theta = float(np.cov(y, x, ddof=1)[0, 1] / var_x)
    adjusted = y - theta * (x - x.mean())
    plain = _welch(
        y[is_control],
        y[is_treatment],
        alpha=alpha,
        arm=str(treatment),
        metric=metric_name,
        method=ComparisonMethod.WELCH_T,
    )
    result = _welch(
        adjusted[is_control],
        adjusted[is_treatment],
        alpha=alpha,
        arm=str(treatment),
        metric=metric_name,
        method=ComparisonMethod.CUPED_WELCH_T,
    )
    reduction = (
        1 - result.standard_error**2 / plain.standard_error**2
        if plain.standard_error > 0
        else math.nan
    )
    return replace(result, theta=theta, variance_reduction=reduction)


# -- several variants -------------------------------------------------------------------------


def adjust_p_values(
    p_values: Sequence[float], correction: Correction | str = Correction.HOLM
) -> list[float]:
    """Family-wise corrected p-values (Holm or Bonferroni), in the order given.

    NaN p-values are left out of the family and stay NaN.
    """
    method = Correction(correction)
    raw = np.asarray(p_values, dtype=float)
    adjusted = raw.copy()
    finite = np.isfinite(raw)
    if method is not Correction.NONE and finite.sum() > 1:
        adjusted[finite] = multipletests(raw[finite], method=str(method))[1]
    return adjusted.tolist()


# -- always-valid sequential test -------------------------------------------------------------


@dataclass(frozen=True)
class SequentialResult:
    """The mSPRT after each look: always-valid p-values and the confidence sequence.

    Every array has one value per look. ``p_value`` and the interval may be read at any look,
    and the test stopped whenever ``p_value < alpha``, without inflating the error rate.
    ``rejected_at`` is the first look (0-based) where that happened, or None.
    """

    n_control: npt.NDArray[np.int64]
    n_treatment: npt.NDArray[np.int64]
    estimate: npt.NDArray[np.float64]
    p_value: npt.NDArray[np.float64]
    ci_low: npt.NDArray[np.float64]
    ci_high: npt.NDArray[np.float64]
    tau: float
    alpha: float
    rejected_at: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values, one list entry per look."""
        return {
            "n_control": self.n_control.tolist(),
            "n_treatment": self.n_treatment.tolist(),
            "estimate": [_float_or_none(v) for v in self.estimate],
            "p_value": [_float_or_none(v) for v in self.p_value],
            "ci_low": [_float_or_none(v) for v in self.ci_low],
            "ci_high": [_float_or_none(v) for v in self.ci_high],
            "tau": self.tau,
            "alpha": self.alpha,
            "rejected_at": self.rejected_at,
        }


def sequential_test(
    control: Sequence[npt.ArrayLike],
    treatment: Sequence[npt.ArrayLike],
    *,
    tau: float = DEFAULT_TAU,
    alpha: float = 0.05,
    null_value: float = 0.0,
) -> SequentialResult:
    """Mixture SPRT for a difference in means, over the data cumulated look by look.

    After look ``k`` the estimate is ``d = mean_t - mean_c`` with variance
    ``v = s_t² / n_t + s_c² / n_c`` (plug-in). Mixing the alternative over
    ``N(null_value, w)`` with ``w = tau_abs²`` gives the likelihood ratio of the normal-mixture
    mSPRT (Johari, Pekelis & Walsh)::

        Lambda = sqrt(v / (v + w)) * exp(w (d - null_value)² / (2 v (v + w)))

    which is a martingale under the null, so ``p_k = min(p_{k-1}, 1 / Lambda)`` is an
    always-valid p-value (Ville's inequality). The confidence sequence is the running
    intersection of ``{theta : Lambda(theta) < 1 / alpha}``.

    Parameters
    ----------
    control, treatment
        The new observations of each arm at each look (e.g. one array per day); the two
        sequences have the same length.
    tau
        Standard deviation of the mixing distribution, in units of the metric's pooled
        standard deviation (``tau_abs = tau * sd``), so the test does not depend on the metric's
        scale. Best near the effect sizes one expects; 0.1 by default.
    alpha
        Level of the test and of the confidence sequence.
    null_value
        The difference under the null.

    Raises
    ------
    ValueError
        The sequences differ in length, or ``tau`` is not positive.
    """
    _check_alpha(alpha)
    if len(control) != len(treatment):
        raise ValueError("control and treatment need the same number of looks")
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau}")
    looks = len(control)
    sums = np.zeros((2, looks))
    squares = np.zeros((2, looks))
    counts = np.zeros((2, looks), dtype=np.int64)
    for k, (c_batch, t_batch) in enumerate(zip(control, treatment, strict=True)):
        for i, batch in enumerate((c_batch, t_batch)):
            values = _as_array(batch, "observations")
            sums[i, k], squares[i, k], counts[i, k] = values.sum(), (values**2).sum(), values.size
    n = np.cumsum(counts, axis=1).astype(float)
    total = np.cumsum(sums, axis=1)
    total_sq = np.cumsum(squares, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / n
        var = np.maximum((total_sq - n * mean**2) / (n - 1), 0.0)
        v = var[0] / n[0] + var[1] / n[1]
        pooled_var = (n[0] * var[0] + n[1] * var[1]) / (n[0] + n[1])
        tau2 = tau**2 * pooled_var
        estimate = mean[1] - mean[0]
        ready = (n.min(axis=0) >= 2) & (v > 0)
        log_lambda = 0.5 * np.log(v / (v + tau2)) + tau2 * (estimate - null_value) ** 2 / (
            2 * v * (v + tau2)
        )
        p_look = np.where(ready, np.minimum(1.0, np.exp(-log_lambda)), 1.0)
        half_width = np.sqrt(
            2 * v * (v + tau2) / tau2 * (math.log(1 / alpha) + 0.5 * np.log((v + tau2) / v))
        )
    low = np.where(ready, estimate - half_width, -np.inf)
    high = np.where(ready, estimate + half_width, np.inf)
    p_value = np.minimum.accumulate(p_look)
    ci_low = np.maximum.accumulate(low)
    ci_high = np.minimum.accumulate(high)
    rejected = np.flatnonzero(p_value < alpha)
    return SequentialResult(
        n_control=n[0].astype(np.int64),
        n_treatment=n[1].astype(np.int64),
        estimate=np.where(n.min(axis=0) > 0, estimate, np.nan),
        p_value=p_value,
        ci_low=ci_low,
        ci_high=ci_high,
        tau=tau,
        alpha=alpha,
        rejected_at=int(rejected[0]) if rejected.size else None,
    )


# -- sample size ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleSize:
    """Units needed per arm to detect ``mde_absolute`` with ``power`` at level ``alpha``.

    With several treatment arms the level of each comparison is ``alpha / comparisons``
    (Bonferroni, which also covers Holm). ``n_total`` counts control plus every treatment arm.
    """

    kind: MetricKind
    baseline: float | None
    sd: float | None
    mde_absolute: float
    alpha: float
    alpha_per_comparison: float
    power: float
    ratio: float
    comparisons: int
    n_control_exact: float
    n_control: int
    n_treatment: int
    n_total: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values."""
        return {
            "kind": str(self.kind),
            "baseline": self.baseline,
            "sd": self.sd,
            "mde_absolute": self.mde_absolute,
            "mde_relative": (self.mde_absolute / self.baseline if self.baseline else None),
            "alpha": self.alpha,
            "alpha_per_comparison": self.alpha_per_comparison,
            "power": self.power,
            "ratio": self.ratio,
            "comparisons": self.comparisons,
            "n_control": self.n_control,
            "n_treatment": self.n_treatment,
            "n_total": self.n_total,
        }


def _check_plan(alpha: float, power: float, ratio: float, comparisons: int) -> float:
    _check_alpha(alpha)
    if not 0 < power < 1:
        raise ValueError(f"power must be between 0 and 1, got {power}")
    if not ratio > 0:
        raise ValueError(f"ratio (treatment / control units) must be positive, got {ratio}")
    if comparisons < 1:
        raise ValueError(f"comparisons must be at least 1, got {comparisons}")
    return alpha / comparisons


def _sizes(n_control_exact: float, ratio: float, comparisons: int) -> tuple[int, int, int]:
    # A hair of tolerance so that exact integers from the formula are not rounded up.
    n_control = math.ceil(n_control_exact - 1e-9)
    n_treatment = math.ceil(n_control_exact * ratio - 1e-9)
    return n_control, n_treatment, n_control + comparisons * n_treatment


def sample_size_proportions(
    baseline: float,
    mde: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    comparisons: int = 1,
) -> SampleSize:
    """Units per arm for a two-sided two-proportion z-test.

    ``n_c = (z_{a/2} sqrt(pbar qbar (1 + 1/k)) + z_b sqrt(p0 q0 + p1 q1 / k))² / mde²`` with
    ``k = ratio`` and the pooled ``pbar`` under the null (Fleiss, Levin & Paik 2003, eq. 4.14;
    the far tail of the two-sided test is ignored, as in statsmodels'
    ``samplesize_proportions_2indep_onetail``).

    Parameters
    ----------
    baseline
        The control's conversion rate.
    mde
        Smallest effect worth detecting: absolute (0.01 = one point) or, with ``relative``,
        a share of ``baseline`` (0.1 = 10 % more).
    ratio
        Treatment units per control unit.
    comparisons
        Treatment arms compared with the control (Bonferroni on ``alpha``).

    Raises
    ------
    ValueError
        A rate outside (0, 1), a zero effect, or alpha/power/ratio out of range.
    """
    level = _check_plan(alpha, power, ratio, comparisons)
    if not 0 < baseline < 1:
        raise ValueError(f"baseline must be a rate between 0 and 1, got {baseline}")
    diff = mde * baseline if relative else mde
    p0, p1 = baseline, baseline + diff
    if diff == 0 or not 0 < p1 < 1:
        raise ValueError(
            f"the effect must move the rate {baseline:g} to another rate between 0 and 1, "
            f"got {p1:g}"
        )
    pooled = (p0 + ratio * p1) / (1 + ratio)
    std_null = math.sqrt(pooled * (1 - pooled) * (1 + 1 / ratio))
    std_alt = math.sqrt(p0 * (1 - p0) + p1 * (1 - p1) / ratio)
    z_a = stats.norm.isf(level / 2)
    z_b = stats.norm.isf(1 - power)
    exact = max(z_a * std_null + z_b * std_alt, 0.0) ** 2 / diff**2
    n_control, n_treatment, n_total = _sizes(exact, ratio, comparisons)
    return SampleSize(
        kind=MetricKind.BINARY,
        baseline=baseline,
        sd=None,
        mde_absolute=diff,
        alpha=alpha,
        alpha_per_comparison=level,
        power=power,
        ratio=ratio,
        comparisons=comparisons,
        n_control_exact=exact,
        n_control=n_control,
        n_treatment=n_treatment,
        n_total=n_total,
    )


def _power_means(n_control: float, effect: float, ratio: float, level: float) -> float:
    # Two-sided z power with both tails: the effect in standard errors of the difference.
    shift = effect * math.sqrt(n_control / (1 + 1 / ratio))
    z_a = stats.norm.isf(level / 2)
    return float(stats.norm.sf(z_a - shift) + stats.norm.cdf(-z_a - shift))


def sample_size_means(
    sd: float,
    mde: float,
    *,
    baseline: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    comparisons: int = 1,
) -> SampleSize:
    """Units per arm for a two-sided test of a difference in means (normal approximation).

    Solves the two-sided power, both tails included, for ``n_control``: the same as
    statsmodels' ``NormalIndPower().solve_power(effect_size=mde / sd, ratio=ratio)``. The
    closed form ``(z_{a/2} + z_b)² sd² (1 + 1/k) / mde²`` starts the search.

    Parameters
    ----------
    sd
        Standard deviation of the metric per unit (assumed equal in both arms).
    mde
        Smallest difference worth detecting, in the metric's units, or with ``relative`` a
        share of ``baseline`` (the control mean, then required).
    ratio
        Treatment units per control unit.
    comparisons
        Treatment arms compared with the control (Bonferroni on ``alpha``).

    Raises
    ------
    ValueError
        A non-positive sd, a zero effect, or alpha/power/ratio out of range.
    """
    level = _check_plan(alpha, power, ratio, comparisons)
    if not sd > 0:
        raise ValueError(f"sd must be positive, got {sd}")
    if relative:
        if not baseline:
            raise ValueError("a relative effect needs the baseline (control) mean")
        diff = mde * baseline
    else:
        diff = mde
    if diff == 0:
        raise ValueError("the effect to detect cannot be zero")
    effect = abs(diff) / sd
    z_a = stats.norm.isf(level / 2)
    z_b = stats.norm.isf(1 - power)
    start = (z_a + z_b) ** 2 * (1 + 1 / ratio) / effect**2
    exact = float(
        optimize.brentq(
            lambda n: _power_means(n, effect, ratio, level) - power,
            start * 0.5,
            start * 1.5,
            xtol=1e-10,
            rtol=1e-12,
        )
    )
    n_control, n_treatment, n_total = _sizes(exact, ratio, comparisons)
    return SampleSize(
        kind=MetricKind.CONTINUOUS,
        baseline=baseline,
        sd=sd,
        mde_absolute=diff,
        alpha=alpha,
        alpha_per_comparison=level,
        power=power,
        ratio=ratio,
        comparisons=comparisons,
        n_control_exact=exact,
        n_control=n_control,
        n_treatment=n_treatment,
        n_total=n_total,
    )


# -- a whole experiment -----------------------------------------------------------------------


@dataclass(frozen=True)
class ExperimentReport:
    """Every treatment arm against control on every metric, with the sample-ratio check.

    ``comparisons`` are ordered by metric, then arm. ``p_value_adjusted`` in each is corrected
    (``correction``) across the treatment arms of the same metric.
    """

    arm_col: str
    control: str
    arms: dict[str, int]
    srm: SrmCheck
    comparisons: list[ArmComparison]
    correction: Correction
    alpha: float
    metrics: list[str] = field(default_factory=list)

    def for_metric(self, metric: str) -> list[ArmComparison]:
        """The comparisons of one metric, in arm order."""
        return [c for c in self.comparisons if c.metric == metric]

    def get(self, arm: str, metric: str) -> ArmComparison:
        """The comparison of one arm on one metric.

        Raises
        ------
        KeyError
            No such arm or metric in the report.
        """
        for comparison in self.comparisons:
            if comparison.arm == arm and comparison.metric == metric:
                return comparison
        raise KeyError((arm, metric))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values."""
        return {
            "arm_col": self.arm_col,
            "control": self.control,
            "arms": dict(self.arms),
            "metrics": list(self.metrics),
            "alpha": self.alpha,
            "correction": str(self.correction),
            "srm": self.srm.to_dict(),
            "comparisons": [c.to_dict() for c in self.comparisons],
        }


def _numeric_column(
    frame: pd.DataFrame, column: str, source: Path, row_offset: int
) -> npt.NDArray[np.float64]:
    """A column as floats, or an IngestError naming the first row that is not a number."""
    raw = frame[column]
    if raw.dtype == bool:
        raw = raw.astype(float)
    values = pd.to_numeric(raw, errors="coerce")
    missing = raw.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise IngestError(
            source,
            f"the value is empty; every unit needs a number in '{column}'",
            row=row + row_offset,
            column=column,
            hint="fill outcomes that did not happen with 0",
        )
    numbers = values.to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(numbers)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise IngestError(
            source,
            f"'{raw.iloc[row]}' is not a number; '{column}' must hold numbers",
            row=row + row_offset,
            column=column,
        )
    return numbers


def analyze_experiment(
    frame: pd.DataFrame,
    arm_col: str,
    control: str,
    metrics: Sequence[str],
    *,
    covariates: Mapping[str, str] | None = None,
    kinds: Mapping[str, MetricKind | str] | None = None,
    expected_shares: Mapping[str, float] | None = None,
    correction: Correction | str = Correction.HOLM,
    alpha: float = 0.05,
    srm_alpha: float = SRM_ALPHA,
    source: Path | str = "<table>",
    row_offset: int = 2,
) -> ExperimentReport:
    """Each treatment arm against control on each metric, corrected across arms, with SRM.

    A metric whose values are all 0 or 1 is compared as proportions (two-proportion z), any
    other with Welch's t; ``kinds`` overrides that per metric. A metric named in ``covariates``
    is compared with CUPED on its pre-period column (then Welch's t).

    Parameters
    ----------
    frame
        One row per unit.
    arm_col
        The column that says which arm a unit was in; its values are compared as text.
    control
        The control arm's value in ``arm_col``.
    metrics
        Outcome columns.
    covariates
        Metric → pre-period column for CUPED.
    kinds
        Metric → ``"binary"`` or ``"continuous"``, to override detection.
    expected_shares
        Planned share of each arm for the sample-ratio check (equal when None).
    correction
        ``"holm"``, ``"bonferroni"`` or ``"none"``, across the treatment arms of each metric.
    source
        The table's file, named in errors.
    row_offset
        Added to a 0-based row position to name a row in errors (2 for a CSV with a header
        line, as ingest counts).

    Raises
    ------
    IngestError
        A column is missing, the control value is absent, an arm is empty or too small, an arm
        or a metric value is empty, or a metric value is not a number (naming its row).
    SpecError
        An unknown correction or metric kind, a bad alpha, or expected shares that do not name
        the arms.
    """
    path = Path(source)
    problems: list[SpecProblem] = []
    try:
        method = Correction(correction)
    except ValueError:
        problems.append(
            SpecProblem(
                path, None, "correction", f"'{correction}' is not one of holm, bonferroni, none"
            )
        )
    if not 0 < alpha < 1:
        problems.append(SpecProblem(path, None, "alpha", f"{alpha} is not between 0 and 1"))
    kind_of: dict[str, MetricKind] = {}
    for name, kind in (kinds or {}).items():
        try:
            kind_of[name] = MetricKind(kind)
        except ValueError:
            problems.append(
                SpecProblem(path, None, f"kind of {name}", f"'{kind}' is not binary/continuous")
            )
    if not metrics:
        problems.append(SpecProblem(path, None, "metrics", "name at least one metric column"))
    if problems:
        raise SpecError(problems)

    covariates = dict(covariates or {})
    header = [str(c) for c in frame.columns]
    for column in [arm_col, *metrics, *covariates.values()]:
        if column not in header:
            raise IngestError(
                path,
                f"no column '{column}'",
                column=column,
                hint=f"the header has: {', '.join(header)}",
            )
    for metric in covariates:
        if metric not in metrics:
            raise SpecError(
                [SpecProblem(path, None, "cuped", f"'{metric}' is not one of the metrics")]
            )

    if frame.empty:
        raise IngestError(path, "the table has no rows", hint="one row per unit is expected")
    arm_raw = frame[arm_col]
    empty = arm_raw.isna().to_numpy()
    if empty.any():
        raise IngestError(
            path,
            "the arm is empty; every unit needs an arm",
            row=int(np.flatnonzero(empty)[0]) + row_offset,
            column=arm_col,
        )
    labels = arm_raw.astype(str).to_numpy(dtype=object)
    control = str(control)
    present = sorted(set(labels))
    if control not in present:
        raise IngestError(
            path,
            f"the control value '{control}' does not occur in '{arm_col}'",
            column=arm_col,
            hint=f"the values are: {', '.join(present[:20])}",
        )
    arms = [control] + [label for label in present if label != control]
    if len(arms) < 2:
        raise IngestError(
            path,
            f"'{arm_col}' holds only the control '{control}'; nothing to compare",
            column=arm_col,
        )
    counts = {arm: int((labels == arm).sum()) for arm in arms}
    small = [arm for arm, n in counts.items() if n < 2]
    if small:
        raise IngestError(
            path,
            f"arm(s) {small} have fewer than two units; nothing can be estimated",
            column=arm_col,
        )
    try:
        srm = srm_check(counts, expected_shares, alpha=srm_alpha)
    except ValueError as exc:
        raise SpecError([SpecProblem(path, None, "expected shares", str(exc))]) from None

    columns = {
        c: _numeric_column(frame, c, path, row_offset) for c in [*metrics, *covariates.values()]
    }
    is_control = labels == control
    comparisons: list[ArmComparison] = []
    for metric in metrics:
        y = columns[metric]
        kind = kind_of.get(metric) or metric_kind(y)
        if kind is MetricKind.BINARY and not np.isin(y, (0.0, 1.0)).all():
            row = int(np.flatnonzero(~np.isin(y, (0.0, 1.0)))[0])
            raise IngestError(
                path,
                f"'{metric}' is declared binary but holds {y[row]:g}",
                row=row + row_offset,
                column=metric,
                hint="binary metrics hold 0 or 1",
            )
        per_arm: list[ArmComparison] = []
        for arm in arms[1:]:
            is_arm = labels == arm
            if metric in covariates:
                # theta over every unit of every arm: one adjusted metric for the experiment.
                try:
                    result = cuped(
                        y,
                        columns[covariates[metric]],
                        labels,
                        control=control,
                        treatment=arm,
                        alpha=alpha,
                        metric_name=metric,
                    )
                except ValueError as exc:
                    raise IngestError(path, str(exc), column=covariates[metric]) from None
            elif kind is MetricKind.BINARY:
                result = compare_proportions(
                    y[is_control], y[is_arm], alpha=alpha, arm=arm, metric=metric
                )
            else:
                result = compare_means(
                    y[is_control], y[is_arm], alpha=alpha, arm=arm, metric=metric
                )
            per_arm.append(result)
        adjusted = adjust_p_values([c.p_value for c in per_arm], method)
        comparisons.extend(
            replace(c, p_value_adjusted=p) for c, p in zip(per_arm, adjusted, strict=True)
        )
    return ExperimentReport(
        arm_col=arm_col,
        control=control,
        arms=counts,
        srm=srm,
        comparisons=comparisons,
        correction=method,
        alpha=alpha,
        metrics=list(metrics),
    )


# -- campaign holdouts ------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldoutIncrementality:
    """What a campaign added over its holdout, scaled to the treated group.

    ``incremental_conversions = (rate_treated - rate_holdout) * treated_n`` and
    ``incremental_revenue = (mean_treated - mean_holdout) * treated_n``, each with the interval
    of the difference (Wald for rates, Welch for revenue) scaled the same way.
    """

    treated_n: int
    holdout_n: int
    conversions: ArmComparison
    incremental_conversions: float
    incremental_conversions_ci: tuple[float, float]
    revenue: ArmComparison | None
    incremental_revenue: float | None
    incremental_revenue_ci: tuple[float, float] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values."""
        return {
            "treated_n": self.treated_n,
            "holdout_n": self.holdout_n,
            "incremental_conversions": self.incremental_conversions,
            "incremental_conversions_ci": list(self.incremental_conversions_ci),
            "incremental_revenue": self.incremental_revenue,
            "incremental_revenue_ci": (
                None if self.incremental_revenue_ci is None else list(self.incremental_revenue_ci)
            ),
            "conversions": self.conversions.to_dict(),
            "revenue": None if self.revenue is None else self.revenue.to_dict(),
        }


def holdout_incrementality(
    treated_conversions: int,
    treated_n: int,
    holdout_conversions: int,
    holdout_n: int,
    treated_revenue: npt.ArrayLike | None = None,
    holdout_revenue: npt.ArrayLike | None = None,
    *,
    alpha: float = 0.05,
) -> HoldoutIncrementality:
    """Incremental conversions and revenue of a campaign against its holdout, with intervals.

    Parameters
    ----------
    treated_conversions, treated_n, holdout_conversions, holdout_n
        Converted units and all units in the treated group and in the holdout.
    treated_revenue, holdout_revenue
        Revenue per unit, one value for every unit of the group (zeros for those who did not
        buy); both or neither.

    Raises
    ------
    ValueError
        Counts out of range, only one revenue array, or a revenue array whose length is not the
        group's size.
    """
    conversions = compare_proportion_counts(
        holdout_conversions,
        holdout_n,
        treated_conversions,
        treated_n,
        alpha=alpha,
        arm="treated",
        metric="conversion",
    )
    revenue: ArmComparison | None = None
    if (treated_revenue is None) != (holdout_revenue is None):
        raise ValueError("give the revenue of both the treated group and the holdout, or neither")
    if treated_revenue is not None and holdout_revenue is not None:
        treated = _as_array(treated_revenue, "treated revenue")
        holdout = _as_array(holdout_revenue, "holdout revenue")
        if treated.size != treated_n or holdout.size != holdout_n:
            raise ValueError(
                f"revenue needs one value per unit: {treated.size} treated values for "
                f"{treated_n} units, {holdout.size} holdout values for {holdout_n} units"
            )
        revenue = compare_means(holdout, treated, alpha=alpha, arm="treated", metric="revenue")
    return HoldoutIncrementality(
        treated_n=int(treated_n),
        holdout_n=int(holdout_n),
        conversions=conversions,
        incremental_conversions=conversions.absolute_lift * treated_n,
        incremental_conversions_ci=(
            conversions.ci_low * treated_n,
            conversions.ci_high * treated_n,
        ),
        revenue=revenue,
        incremental_revenue=None if revenue is None else revenue.absolute_lift * treated_n,
        incremental_revenue_ci=(
            None if revenue is None else (revenue.ci_low * treated_n, revenue.ci_high * treated_n)
        ),
    )
