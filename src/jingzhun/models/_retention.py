"""Retention: cohort activity matrices and the shifted-beta-geometric (sBG) model."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln

FloatArray = NDArray[np.float64]


class CohortPeriod(StrEnum):
    """Calendar period that groups customers into cohorts and counts their activity."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"

    @property
    def pandas_freq(self) -> str:
        """The pandas period alias (weeks start on Monday)."""
        return {"day": "D", "week": "W-SUN", "month": "M", "quarter": "Q", "year": "Y"}[self.value]


def cohort_retention(
    transactions: pd.DataFrame,
    customer_col: str,
    date_col: str,
    period: CohortPeriod | str = CohortPeriod.MONTH,
    *,
    counts: bool = False,
) -> pd.DataFrame:
    """Cohort × period-index matrix of the share of each cohort active in that period.

    A customer's cohort is the period of their first purchase; column ``k`` holds the share of
    the cohort that bought in the ``k``-th period after it (column 0 is always 1). Periods the
    data do not reach yet (after the period of the last purchase) are NaN.

    Parameters
    ----------
    period
        A :class:`CohortPeriod`: day, week (Monday to Sunday), month, quarter or year.
    counts
        Return the number of active customers instead of the share.

    Returns
    -------
    pandas.DataFrame
        Index ``cohort`` (the period as text, e.g. ``1997-01``), integer columns 0, 1, ….
    """
    unit = CohortPeriod(period)
    for name in (customer_col, date_col):
        if name not in transactions.columns:
            raise KeyError(f"transactions have no column '{name}'")
    if transactions.empty:
        raise ValueError("no transactions to group into cohorts")
    days = pd.to_datetime(transactions[date_col])
    if getattr(days.dt, "tz", None) is not None:
        days = days.dt.tz_localize(None)
    periods = days.dt.to_period(unit.pandas_freq)
    ordinal = pd.Series(periods.array.asi8, index=transactions.index)
    frame = pd.DataFrame({"customer": transactions[customer_col].to_numpy(), "ordinal": ordinal})
    frame = frame.drop_duplicates()
    cohort = frame.groupby("customer")["ordinal"].transform("min")
    frame = frame.assign(cohort=cohort, index=frame["ordinal"] - cohort)
    active = frame.groupby(["cohort", "index"]).size().unstack(fill_value=0).sort_index()
    # A period in which no cohort bought still gets its column, so column k means k periods on.
    active = active.reindex(columns=range(int(frame["index"].max()) + 1), fill_value=0)
    last = int(frame["ordinal"].max())
    reach = np.subtract.outer(last - active.index.to_numpy(), active.columns.to_numpy())
    matrix = active.astype(float).where(reach >= 0)
    if not counts:
        matrix = matrix.div(matrix[0], axis=0)
    labels = [str(pd.Period(ordinal=int(o), freq=unit.pandas_freq)) for o in matrix.index]
    if unit is CohortPeriod.WEEK:
        labels = [label.split("/")[0] for label in labels]  # the Monday that starts the week
    matrix.index = pd.Index(labels, name="cohort")
    matrix.columns = pd.Index([int(c) for c in matrix.columns], name="period")
    return matrix


class ShiftedBetaGeometric:
    """sBG: each customer renews each period with a fixed probability, Beta(α, β) across them.

    Fader & Hardie (2007), "How to Project Customer Retention", Journal of Interactive
    Marketing 21(1). Fitted by maximum likelihood on the survivors of one cohort.

    Parameters
    ----------
    initial_params
        Starting values for (alpha, beta); default both 1.

    Attributes
    ----------
    params_ : dict
        ``alpha``, ``beta``.
    log_likelihood_ : float
        Log-likelihood at ``params_``.
    periods_ : int
        Periods fitted (survivor counts after the start).
    """

    param_names = ("alpha", "beta")

    def __init__(self, initial_params: Sequence[float] | None = None):
        self.initial_params = initial_params

    @staticmethod
    def _log_churn_probability(alpha: float, beta: float, periods: FloatArray) -> FloatArray:
        # The sBG mass: P(T = t | α, β) = B(α + 1, β + t - 1) / B(α, β)
        return np.asarray(betaln(alpha + 1, beta + periods - 1) - betaln(alpha, beta))

    @staticmethod
    def _log_survival(alpha: float, beta: float, periods: FloatArray) -> FloatArray:
        # The sBG survivor function: S(t | α, β) = B(α, β + t) / B(α, β)
        return np.asarray(betaln(alpha, beta + periods) - betaln(alpha, beta))

    def fit(self, survivors: ArrayLike) -> ShiftedBetaGeometric:
        """Fit on survivor counts n_0, n_1, …, n_T of one cohort (n_0 = the cohort size).

        The likelihood counts the n_{t-1} - n_t customers lost in each period t and the
        n_T still there at the end, whose lifetimes are only known to exceed T.
        """
        counts = np.asarray(survivors, dtype=np.float64)
        if counts.ndim != 1 or len(counts) < 2:
            raise ValueError("survivors need the cohort size and at least one later count")
        lost = counts[:-1] - counts[1:]
        if np.any(lost < 0) or counts[-1] < 0:
            raise ValueError("survivor counts must not grow and must not be negative")
        periods = np.arange(1, len(counts), dtype=np.float64)
        horizon = float(len(counts) - 1)

        def objective(log_params: FloatArray) -> float:
            alpha, beta = np.exp(log_params)
            value = -(
                np.sum(lost * self._log_churn_probability(alpha, beta, periods))
                + counts[-1] * float(self._log_survival(alpha, beta, np.array(horizon)))
            )
            return float(value) if np.isfinite(value) else 1e100

        start = np.log(np.asarray(self.initial_params or (1.0, 1.0), dtype=np.float64))
        coarse = minimize(objective, start, method="L-BFGS-B")
        best = minimize(
            objective, coarse.x, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12}
        )
        alpha, beta = np.exp(best.x)
        self.params_ = {"alpha": float(alpha), "beta": float(beta)}
        self.log_likelihood_ = -float(best.fun)
        self.periods_ = len(counts) - 1
        return self

    def _params(self) -> tuple[float, float]:
        if not hasattr(self, "params_"):
            raise RuntimeError("ShiftedBetaGeometric is not fitted yet: call fit() first")
        return self.params_["alpha"], self.params_["beta"]

    def expected_survival(self, periods: ArrayLike) -> FloatArray:
        """S(t): the share of the cohort still a customer after ``t`` periods."""
        alpha, beta = self._params()
        return np.exp(self._log_survival(alpha, beta, np.asarray(periods, dtype=np.float64)))

    def expected_retention_rate(self, periods: ArrayLike) -> FloatArray:
        """r_t = S(t) / S(t-1) = (β + t - 1) / (α + β + t - 1), t >= 1: it rises with t."""
        alpha, beta = self._params()
        t = np.asarray(periods, dtype=np.float64)
        return np.asarray((beta + t - 1) / (alpha + beta + t - 1), dtype=np.float64)
