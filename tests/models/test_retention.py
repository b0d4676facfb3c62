"""Cohort retention and the shifted-beta-geometric model (Fader & Hardie 2007)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import shared_file
from jingzhun.models._clv import read_transactions
from jingzhun.models._retention import ShiftedBetaGeometric, cohort_retention

# Fader & Hardie (2007) "How to Project Customer Retention", J. Interactive Marketing 21(1),
# Table 1: survivors of 1,000 customers at the start of years 0-7, fitted on years 1-7.
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241]
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491]


@pytest.mark.parametrize(
    ("survivors", "alpha", "beta"),
    [
        # The paper's estimates are alpha 0.668, beta 3.806 and alpha 0.704, beta 1.182. Fitting
        # both series says which is which: 0.668/3.806 belongs to the HIGH END customers and
        # 0.704/1.182 to the REGULAR ones (our brief had them the other way round). The
        # first-year retention rate beta/(alpha+beta) confirms it: 3.806/4.474 = 0.851 against
        # 869/1000 kept, 1.182/1.886 = 0.627 against 631/1000.
        pytest.param(HIGH_END, 0.668, 3.806, id="high-end"),
        pytest.param(REGULAR, 0.704, 1.182, id="regular"),
    ],
)
def test_sbg_matches_fader_hardie_2007(survivors: list[int], alpha: float, beta: float) -> None:
    model = ShiftedBetaGeometric().fit(survivors)
    assert round(model.params_["alpha"], 3) == alpha
    assert round(model.params_["beta"], 3) == beta
    assert model.periods_ == 7
    assert model.expected_retention_rate(1) == pytest.approx(survivors[1] / 1000, abs=0.02)


def test_sbg_survival_and_retention_rate() -> None:
    model = ShiftedBetaGeometric().fit(REGULAR)
    alpha, beta = model.params_["alpha"], model.params_["beta"]
    survival = model.expected_survival(np.arange(13))
    assert survival[0] == 1.0
    # The fitted curve stays close to the data it was fitted on (within 7 customers of 1,000)
    assert np.abs(1000 * survival[:8] - REGULAR).max() < 7
    rates = model.expected_retention_rate(np.arange(1, 13))
    assert rates == pytest.approx(survival[1:] / survival[:-1])
    assert np.all(np.diff(rates) > 0)  # heterogeneity: the retention rate of a cohort rises
    # Log-likelihood: lost customers per year at P(T = t), survivors of year 7 at S(7)
    lost = -np.diff(REGULAR)
    p = survival[:7] - survival[1:8]
    expected = np.sum(lost * np.log(p)) + REGULAR[-1] * np.log(survival[7])
    assert model.log_likelihood_ == pytest.approx(expected)
    assert rates[0] == pytest.approx(beta / (alpha + beta))


def test_sbg_rejects_bad_counts() -> None:
    with pytest.raises(ValueError, match="must not grow"):
        ShiftedBetaGeometric().fit([100, 80, 90])
    with pytest.raises(ValueError, match="at least one"):
        ShiftedBetaGeometric().fit([100])
    with pytest.raises(RuntimeError, match="not fitted"):
        ShiftedBetaGeometric().expected_survival([1])


def test_cohort_retention_small() -> None:
    tx = pd.DataFrame(
        {
            "who": ["a", "a", "a", "b", "b", "c", "d"],
            "day": pd.to_datetime(
                [
                    "2024-01-05",
                    "2024-01-20",  # same month: counted once
                    "2024-03-01",
                    "2024-01-31",
                    "2024-02-01",
                    "2024-02-10",
                    "2024-03-31",
                ]
            ),
        }
    )
    shares = cohort_retention(tx, "who", "day")
    assert shares.index.tolist() == ["2024-01", "2024-02", "2024-03"]
    assert shares.columns.tolist() == [0, 1, 2]
    assert shares.loc["2024-01"].tolist() == [1.0, 0.5, 0.5]
    assert shares.loc["2024-02", 0] == 1.0 and shares.loc["2024-02", 1] == 0.0
    assert np.isnan(shares.loc["2024-02", 2])  # April is not in the data yet
    assert np.isnan(shares.loc["2024-03", 1])
    counts = cohort_retention(tx, "who", "day", counts=True)
    assert counts[0].tolist() == [2, 1, 1]
    weeks = cohort_retention(tx, "who", "day", "week")
    assert weeks.index[0] == "2024-01-01"  # labelled by the Monday that starts the week


def test_cohort_retention_on_cdnow() -> None:
    tx = read_transactions(
        shared_file("cdnow/CDNOW_sample.txt"),
        customer_col="sample_id",
        date_col="date",
        columns=["customer_id", "sample_id", "date", "quantity", "amount"],
    )
    counts = cohort_retention(tx, "sample_id", "date", "month", counts=True)
    # The CDNOW cohort first bought in the first quarter of 1997; data end June 1998
    assert counts.index.tolist() == ["1997-01", "1997-02", "1997-03"]
    assert counts[0].sum() == 2357
    assert counts.columns.max() == 17
    assert np.isnan(counts.loc["1997-03", 16])
    shares = counts.div(counts[0], axis=0)
    later = shares.iloc[:, 1:].to_numpy()
    assert np.nanmax(later) < 0.5  # most CDNOW customers never came back (computed here)
    assert round(shares.loc["1997-01", 1], 3) == 0.159


def test_a_period_nobody_bought_in_keeps_its_column() -> None:
    import pandas as pd

    from jingzhun.models import cohort_retention

    # both customers buy in January and again in March; nobody buys in February
    frame = pd.DataFrame(
        {
            "customer": ["a", "a", "b", "b"],
            "day": ["2024-01-05", "2024-03-02", "2024-01-20", "2024-03-09"],
        }
    )
    matrix = cohort_retention(frame, "customer", "day")
    assert list(matrix.columns) == [0, 1, 2]
    assert matrix.loc[matrix.index[0]].tolist() == [1.0, 0.0, 1.0]
