"""Uplift: who responds *because* of a campaign, learned from a randomised one.

Three meta-learners on LightGBM, each with the scikit-learn contract (``fit(X, y,
treatment)``, ``predict(X)`` = the predicted uplift, ``score`` = uplift@30%):

- ``TLearner``: one outcome model per arm; uplift = P(y | x, treated) − P(y | x, control).
- ``XLearner``: Künzel, Sekhon, Bickel & Yu (2019), "Metalearners for estimating
  heterogeneous treatment effects using machine learning", PNAS 116(10): T-learner outcome
  models, then models of the imputed effects in each arm, mixed by the treated share.
- ``ClassTransformation``: Jaskowski & Jaroszewicz (2012), "Uplift modeling for clinical
  trial data": one classifier of z = 1 when (treated and y = 1) or (control and y = 0);
  uplift = 2 P(z = 1 | x) − 1. Rows are weighted so both arms count half, which keeps the
  identity true when the arms differ in size.

Defaults are LightGBM stumps (``num_leaves=2``) with strong regularisation: uplift in
marketing data is a small difference of two noisy rates, and deeper trees fit the noise
(measured on Hillstrom, see the package README).

``rank_first`` puts a known one-column rule above the model: rows with a higher value of that
column come first, and the learned uplift orders the rows within each value (it breaks the
rule's ties). On Hillstrom, "women's-merchandise buyers first, then by predicted uplift" did
better than either the rule with random ties or the learner alone (package README).

Measures: ``uplift_at_k`` (scikit-uplift's ``strategy='overall'``), the Qini curve and
coefficient (Radcliffe 2007, "Using control groups to target on predicted lift"), the uplift
curve and AUUC, and ``evaluate_uplift`` with per-arm outcome rates in the top k.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split

from jingzhun.models._tabular import (
    CATEGORY,
    TableInputError,
    _as_text,
    _BoosterCache,
    _fail,
    _frame,
    _same_value,
    _TableEncoder,
    feature_frame,
    lightgbm_params,
    predict_booster,
    train_booster,
)

UpliftMethod = Literal["class_transformation", "t_learner", "x_learner"]
UPLIFT_METHODS: tuple[str, ...] = ("class_transformation", "t_learner", "x_learner")
TOP_FRACTIONS = (0.1, 0.2, 0.3)


# -- measures --------------------------------------------------------------------------------


def _arrays(y_true: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, ...]:
    y = np.asarray(y_true, dtype=np.float64)
    u = np.asarray(uplift, dtype=np.float64)
    t = np.asarray(treatment)
    if not (y.shape == u.shape == t.shape) or y.ndim != 1:
        raise ValueError("y_true, uplift and treatment must be one-dimensional, same length")
    if not np.isin(t, (0, 1)).all():
        raise ValueError("treatment must be 0 (control) or 1 (treated)")
    t = t.astype(np.int64)
    if t.min() == t.max():
        raise ValueError("both arms are needed: treatment holds only one value")
    return y, u, t


def _descending(uplift: np.ndarray) -> np.ndarray:
    """scikit-uplift's order: a stable sort reversed, so ties go latest row first."""
    return np.argsort(uplift, kind="mergesort")[::-1]


def uplift_at_k(y_true: Any, uplift: Any, treatment: Any, k: float = 0.3) -> float:
    """Uplift in the top ``k`` of rows by predicted uplift: treated mean outcome minus control
    mean outcome among them.

    scikit-uplift's ``uplift_at_k(strategy='overall')``: the first ``int(n * k)`` rows of all
    rows sorted by predicted uplift (both arms together), then the difference of the arms'
    means inside that selection. ``nan`` when an arm has no row there.
    """
    y, u, t = _arrays(y_true, uplift, treatment)
    if not 0 < k < 1:
        raise ValueError(f"k must be a fraction in (0, 1), not {k}")
    top = _descending(u)[: int(len(u) * k)]
    treated, control = y[top][t[top] == 1], y[top][t[top] == 0]
    if len(treated) == 0 or len(control) == 0:
        return math.nan
    return float(treated.mean() - control.mean())


def _cumulative(
    y: np.ndarray, u: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Targeted count, treated count, treated outcomes, control outcomes at each distinct
    predicted value (ties move together), starting at zero.
    """
    order = _descending(u)
    y, u, t = y[order], u[order], t[order]
    ends = np.r_[np.flatnonzero(np.diff(u)), len(u) - 1]
    n_all = ends + 1
    n_treated = np.cumsum(t)[ends]
    y_treated = np.cumsum(y * t)[ends]
    y_control = np.cumsum(y * (1 - t))[ends]
    zero = np.zeros(1)
    return (
        np.r_[zero, n_all],
        np.r_[zero, n_treated],
        np.r_[zero, n_all - n_treated],
        np.r_[zero, y_treated],
        np.r_[zero, y_control],
    )


def qini_curve(y_true: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """Points of the Qini curve: rows targeted, and the incremental outcomes among them,
    Q(n) = Y_t(n) − Y_c(n) · N_t(n) / N_c(n) (Radcliffe 2007).
    """
    y, u, t = _arrays(y_true, uplift, treatment)
    n_all, n_t, n_c, y_t, y_c = _cumulative(y, u, t)
    ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c > 0)
    return n_all, y_t - y_c * ratio


def uplift_curve(y_true: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """Points of the uplift curve: rows targeted, and (treated rate − control rate) × rows."""
    y, u, t = _arrays(y_true, uplift, treatment)
    n_all, n_t, n_c, y_t, y_c = _cumulative(y, u, t)
    rate_t = np.divide(y_t, n_t, out=np.zeros_like(y_t), where=n_t > 0)
    rate_c = np.divide(y_c, n_c, out=np.zeros_like(y_c), where=n_c > 0)
    return n_all, (rate_t - rate_c) * n_all


def _perfect_order(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    # The best ranking the observed outcomes allow: treated responders first, control
    # responders last (scikit-uplift's perfect curves with negative effects allowed).
    return y * t - y * (1 - t)


def _normalised_area(curve: Any, y: np.ndarray, u: np.ndarray, t: np.ndarray) -> float:
    x, model = curve(y, u, t)
    x_best, best = curve(y, _perfect_order(y, t), t)
    random_area = x[-1] * model[-1] / 2
    perfect = float(np.trapezoid(best, x_best)) - random_area
    if perfect == 0:
        return math.nan
    return (float(np.trapezoid(model, x)) - random_area) / perfect


def qini_coefficient(y_true: Any, uplift: Any, treatment: Any) -> float:
    """Area between the Qini curve and the random-targeting line, as a share of the same area
    for the perfect ranking (scikit-uplift's ``qini_auc_score``): 0 = random, 1 = perfect.
    """
    return _normalised_area(qini_curve, *_arrays(y_true, uplift, treatment))


def auuc(y_true: Any, uplift: Any, treatment: Any) -> float:
    """Area under the uplift curve above random targeting, as a share of the perfect ranking's
    (scikit-uplift's ``uplift_auc_score``).
    """
    return _normalised_area(uplift_curve, *_arrays(y_true, uplift, treatment))


@dataclass(frozen=True)
class UpliftEvaluation:
    """How well a predicted uplift ranks customers, on rows of a randomised campaign.

    ``uplift_at`` maps "10%", "20%", "30%" to uplift@k. ``qini`` holds about 100 points
    (``targeted`` fraction, ``model`` and ``random`` incremental outcomes, as fractions of
    all rows). ``deciles`` has per decile of predicted uplift: rows, treated and control
    rates, observed uplift, mean predicted uplift. ``top_outcomes`` maps each outcome
    column (the target and any others given) to per-k treated mean, control mean and their
    difference.
    """

    rows: int
    treated: int
    control: int
    average_effect: float
    uplift_at: dict[str, float]
    qini_coefficient: float
    auuc: float
    qini: list[dict[str, float]]
    deciles: list[dict[str, float]]
    top_outcomes: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    kind: str = "uplift"

    def headline(self) -> dict[str, float]:
        """The few numbers a person looks at first."""
        return {
            **{f"uplift_at_{k}": round(v, 5) for k, v in self.uplift_at.items()},
            "qini_coefficient": round(self.qini_coefficient, 4),
            "auuc": round(self.auuc, 4),
            "average_effect": round(self.average_effect, 5),
            "rows": self.rows,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON and the registry."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UpliftEvaluation:
        """Read back what ``to_dict`` wrote."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _label(k: float) -> str:
    return f"{round(k * 100):d}%"


def evaluate_uplift(
    y_true: Any,
    uplift: Any,
    treatment: Any,
    *,
    outcomes: Mapping[str, Any] | None = None,
    fractions: Sequence[float] = TOP_FRACTIONS,
    target_name: str = "target",
    curve_points: int = 100,
) -> UpliftEvaluation:
    """Uplift@k, Qini coefficient, AUUC, the Qini curve, uplift by decile, and for every
    outcome (the target and ``outcomes``, e.g. conversion and spend) the treated and control
    means in the top k.
    """
    y, u, t = _arrays(y_true, uplift, treatment)
    n = len(y)
    x, q = qini_curve(y, u, t)
    picks = np.unique(np.searchsorted(x, np.linspace(0, n, curve_points + 1)).clip(0, len(x) - 1))
    qini = [
        {
            "targeted": float(x[i] / n),
            "model": float(q[i] / n),
            "random": float(q[-1] * x[i] / n / n),
        }
        for i in picks
    ]
    order = _descending(u)
    decile = (np.arange(n) * 10) // n
    deciles = []
    for d in range(10):
        rows = order[decile == d]
        yt, yc = y[rows][t[rows] == 1], y[rows][t[rows] == 0]
        deciles.append(
            {
                "decile": d + 1,
                "rows": len(rows),
                "treated_rate": float(yt.mean()) if len(yt) else math.nan,
                "control_rate": float(yc.mean()) if len(yc) else math.nan,
                "uplift": float(yt.mean() - yc.mean()) if len(yt) and len(yc) else math.nan,
                "predicted": float(u[rows].mean()),
            }
        )
    every = {target_name: y}
    every |= {k: np.asarray(v, dtype=np.float64) for k, v in (outcomes or {}).items()}
    top_outcomes: dict[str, dict[str, dict[str, float]]] = {}
    for name, values in every.items():
        if values.shape != y.shape:
            raise ValueError(f"outcome {name!r} has {len(values)} values for {n} rows")
        per_k = {}
        for k in (*fractions, 1.0):
            top = order[: int(n * k)] if k < 1 else order
            vt, vc = values[top][t[top] == 1], values[top][t[top] == 0]
            treated = float(vt.mean()) if len(vt) else math.nan
            control = float(vc.mean()) if len(vc) else math.nan
            per_k["all" if k == 1.0 else _label(k)] = {
                "treated": treated,
                "control": control,
                "difference": treated - control,
            }
        top_outcomes[name] = per_k
    return UpliftEvaluation(
        rows=n,
        treated=int(t.sum()),
        control=int(n - t.sum()),
        average_effect=float(y[t == 1].mean() - y[t == 0].mean()),
        uplift_at={_label(k): uplift_at_k(y, u, t, k) for k in fractions},
        qini_coefficient=qini_coefficient(y, u, t),
        auuc=auuc(y, u, t),
        qini=qini,
        deciles=deciles,
        top_outcomes=top_outcomes,
    )


# -- learners --------------------------------------------------------------------------------


def _binary(y: np.ndarray) -> bool:
    return bool(np.isin(y, (0, 1)).all())


class _UpliftLearner(BaseEstimator, abc.ABC):
    """What the three learners share: the column encoder, LightGBM settings, booster texts.

    Parameters
    ----------
    n_estimators, learning_rate, num_leaves, min_child_samples, reg_lambda, subsample,
    colsample_bytree
        LightGBM settings (scikit-learn names) of every model the learner trains.
    max_categories
        Levels kept per category column; the rest share an "other" level.
    random_state
        Seed of the trees' row sampling.
    n_jobs
        LightGBM threads (``None``: one below 200,000 rows, else every core).
    rank_first
        A number (or 0/1) feature column whose higher values are ranked first whatever the
        model says; the predicted uplift orders rows only within each of its values. Then
        ``predict`` returns a ranking score, not the uplift itself: 2 × the row's level (how
        many of the column's training values are at or below the row's value; 0 when missing)
        plus u / (1 + |u|) of the predicted uplift u, which keeps u's order inside a level.
    """

    def __init__(
        self,
        *,
        n_estimators: int = 200,
        learning_rate: float = 0.03,
        num_leaves: int = 2,
        min_child_samples: int = 200,
        reg_lambda: float = 5.0,
        subsample: float = 0.8,
        colsample_bytree: float = 1.0,
        max_categories: int = 100,
        random_state: int = 0,
        n_jobs: int | None = None,
        rank_first: str | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.reg_lambda = reg_lambda
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.max_categories = max_categories
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.rank_first = rank_first

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        return tags

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_boosters", None)
        return state

    def _params(self, objective: str) -> dict[str, Any]:
        return lightgbm_params(
            objective,
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            reg_lambda=self.reg_lambda,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        )

    def _train(
        self,
        name: str,
        matrix: np.ndarray,
        target: np.ndarray,
        *,
        binary: bool,
        weight: np.ndarray | None = None,
    ) -> None:
        objective = "binary" if binary else "regression"
        self.boosters_[name] = train_booster(
            self._params(objective),
            matrix,
            target,
            categorical=self.encoder_.categorical_indices,
            weight=weight,
        )

    def _predict(self, name: str, matrix: np.ndarray) -> np.ndarray:
        if not hasattr(self, "_boosters"):
            self._boosters = _BoosterCache()
        booster = self._boosters.get(name, self.boosters_[name])
        return predict_booster(booster, matrix, self.n_jobs)

    def fit(self, X: pd.DataFrame, y: Any, treatment: Any) -> _UpliftLearner:
        """Learn from a randomised campaign.

        Parameters
        ----------
        X
            One row per customer, any mix of number and text columns; missing values allowed.
        y
            The outcome: 0/1 (visit, conversion) or, for the T- and X-learner, an amount.
        treatment
            1 for customers who got the campaign, 0 for the control group.
        """
        frame = _frame(X)
        outcome = np.asarray(y, dtype=np.float64)
        arm = np.asarray(treatment)
        if len(outcome) != len(frame) or len(arm) != len(frame):
            raise ValueError(f"X has {len(frame)} rows, y {len(outcome)} and treatment {len(arm)}")
        if np.isnan(outcome).any():
            raise ValueError("y has missing values; drop those rows or fill them first")
        if not np.isin(arm, (0, 1)).all() or arm.min() == arm.max():
            raise ValueError("treatment must hold 1 (treated) and 0 (control), both present")
        self.encoder_ = _TableEncoder(max_categories=self.max_categories).fit(frame)
        self.feature_names_in_ = np.array(self.encoder_.columns_, dtype=object)
        self.n_features_in_ = len(self.encoder_.columns_)
        self.dropped_columns_ = dict(self.encoder_.dropped_)
        self.binary_outcome_ = _binary(outcome)
        self.treated_share_ = float(arm.mean())
        self.boosters_: dict[str, str] = {}
        self._boosters = _BoosterCache()
        matrix = self.encoder_.transform(frame)
        self.rank_first_levels_ = self._rank_first_levels(matrix)
        self._fit_arms(matrix, outcome, arm.astype(np.int64))
        return self

    def _rank_first_levels(self, matrix: np.ndarray) -> list[float]:
        """The distinct values of the ``rank_first`` column seen in training, ascending."""
        if self.rank_first is None:
            return []
        column = self.rank_first
        if column not in self.encoder_.columns_:
            why = self.encoder_.dropped_.get(column, "not among X's columns")
            raise _fail(
                f"rank_first names {column!r}, which is not a feature ({why}); "
                f"features: {', '.join(self.encoder_.columns_)}",
                source=None,
                column=column,
            )
        if self.encoder_.kinds_[column] == CATEGORY:
            raise _fail(
                "rank_first needs a number or 0/1 column (higher values first), found text",
                source=None,
                column=column,
                hint="make a 0/1 column of the level to put first",
            )
        values = matrix[:, self.encoder_.columns_.index(column)]
        return [float(v) for v in np.unique(values[~np.isnan(values)])]

    def _rank_first_level(self, matrix: np.ndarray) -> np.ndarray:
        """Each row's level of the ``rank_first`` column: how many training values are at or
        below its value (0 when missing or below all of them).
        """
        assert self.rank_first is not None
        values = matrix[:, self.encoder_.columns_.index(self.rank_first)]
        levels = np.searchsorted(np.asarray(self.rank_first_levels_), values, side="right")
        return np.where(np.isnan(values), 0, levels).astype(np.float64)

    @abc.abstractmethod
    def _fit_arms(self, matrix: np.ndarray, y: np.ndarray, t: np.ndarray) -> None:
        """Train the learner's boosters on the encoded matrix."""

    @abc.abstractmethod
    def _uplift(self, matrix: np.ndarray) -> np.ndarray:
        """The learner's predicted uplift from an encoded matrix."""

    def score_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Predicted uplift from an encoded matrix (what ``score_file`` writes); with
        ``rank_first``, the ranking score that puts the rule's order first.
        """
        uplift = self._uplift(matrix)
        if self.rank_first is None:
            return uplift
        # u / (1 + |u|) lies in (-1, 1) and keeps u's order, so a step of 2 per level can
        # never be overtaken, whatever the outcome's scale.
        return 2.0 * self._rank_first_level(matrix) + uplift / (1.0 + np.abs(uplift))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted uplift per row: the outcome's expected change if the row is treated
        (with ``rank_first``: the ranking score, see the class).
        """
        if not hasattr(self, "encoder_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")
        return self.score_matrix(self.encoder_.transform(_frame(X)))

    def score(self, X: pd.DataFrame, y: Any, treatment: Any) -> float:
        """Uplift@30% of the predicted uplift on rows of a randomised campaign."""
        return uplift_at_k(y, self.predict(X), treatment, 0.3)


class TLearner(_UpliftLearner):
    """Two outcome models, one per arm; uplift = treated model − control model.

    Parameters are LightGBM's (scikit-learn names), used for both models.
    """

    def _fit_arms(self, matrix: np.ndarray, y: np.ndarray, t: np.ndarray) -> None:
        for name, arm in (("treated", 1), ("control", 0)):
            rows = t == arm
            self._train(name, matrix[rows], y[rows], binary=self.binary_outcome_)

    def _uplift(self, matrix: np.ndarray) -> np.ndarray:
        return self._predict("treated", matrix) - self._predict("control", matrix)


class XLearner(_UpliftLearner):
    """Künzel et al. (2019): T-learner outcome models, then a model per arm of the imputed
    individual effects (treated: y − μ₀(x); control: μ₁(x) − y), combined as
    τ(x) = e · τ₀(x) + (1 − e) · τ₁(x) with e the treated share (a randomised campaign's
    propensity is that constant).
    """

    def _fit_arms(self, matrix: np.ndarray, y: np.ndarray, t: np.ndarray) -> None:
        treated, control = t == 1, t == 0
        self._train("mu_treated", matrix[treated], y[treated], binary=self.binary_outcome_)
        self._train("mu_control", matrix[control], y[control], binary=self.binary_outcome_)
        effect_treated = y[treated] - self._predict("mu_control", matrix[treated])
        effect_control = self._predict("mu_treated", matrix[control]) - y[control]
        self._train("tau_treated", matrix[treated], effect_treated, binary=False)
        self._train("tau_control", matrix[control], effect_control, binary=False)

    def _uplift(self, matrix: np.ndarray) -> np.ndarray:
        e = self.treated_share_
        return e * self._predict("tau_control", matrix) + (1 - e) * self._predict(
            "tau_treated", matrix
        )


class ClassTransformation(_UpliftLearner):
    """One classifier of the transformed class z = y·t + (1 − y)(1 − t); uplift = 2P(z) − 1.

    Needs a 0/1 outcome. Rows are weighted 0.5 / share of their arm, so the identity holds
    when the arms differ in size (Jaskowski & Jaroszewicz 2012 assume equal arms).
    """

    def _fit_arms(self, matrix: np.ndarray, y: np.ndarray, t: np.ndarray) -> None:
        if not self.binary_outcome_:
            raise ValueError(
                "class transformation needs a 0/1 outcome; use the T- or X-learner for amounts"
            )
        z = (y == t).astype(np.float64)
        share = self.treated_share_
        weight = np.where(t == 1, 0.5 / share, 0.5 / (1 - share))
        self._train("z", matrix, z, binary=True, weight=weight)

    def _uplift(self, matrix: np.ndarray) -> np.ndarray:
        return 2.0 * self._predict("z", matrix) - 1.0


LEARNERS: dict[str, type[_UpliftLearner]] = {
    "class_transformation": ClassTransformation,
    "t_learner": TLearner,
    "x_learner": XLearner,
}


def make_uplift_learner(method: str = "class_transformation", **params: Any) -> _UpliftLearner:
    """A learner by name: ``class_transformation`` (default), ``t_learner`` or ``x_learner``."""
    try:
        return LEARNERS[method](**params)
    except KeyError:
        raise ValueError(
            f"unknown uplift method {method!r}; choose one of {', '.join(UPLIFT_METHODS)}"
        ) from None


# -- a campaign table --------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitResult:
    """One random train/test split: the model's and the baseline rule's uplift@k on its test
    half.
    """

    seed: int
    uplift_at: dict[str, float]
    qini_coefficient: float
    baseline_uplift_at: dict[str, float] | None = None


@dataclass
class UpliftFit:
    """An uplift model fitted on a campaign table and how it did on held-out rows."""

    model: _UpliftLearner
    evaluation: UpliftEvaluation
    method: str
    treatment_column: str
    treatment_value: str
    control_value: str
    target: str
    features: list[str]
    dropped: dict[str, str]
    id_column: str | None
    rows_train: int
    rows_test: int
    rows_other_arms: int
    splits: list[SplitResult]
    outcomes: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    baseline_column: str | None = None
    test_fraction: float = 0.5

    def summary(self) -> dict[str, Any]:
        """Per-split figures and their mean and standard deviation (model and baseline)."""
        out: dict[str, Any] = {"splits": [asdict(s) for s in self.splits]}
        for label in self.evaluation.uplift_at:
            values = np.array([s.uplift_at[label] for s in self.splits])
            out[f"uplift_at_{label}_mean"] = float(values.mean())
            out[f"uplift_at_{label}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            if self.baseline_column is not None:
                base = np.array(
                    [(s.baseline_uplift_at or {})[label] for s in self.splits], dtype=float
                )
                out[f"baseline_uplift_at_{label}_mean"] = float(base.mean())
                out[f"baseline_uplift_at_{label}_std"] = (
                    float(base.std(ddof=1)) if len(base) > 1 else 0.0
                )
        qini = np.array([s.qini_coefficient for s in self.splits])
        out["qini_coefficient_mean"] = float(qini.mean())
        return out

    def params(self) -> dict[str, Any]:
        """What the registry records as the model's parameters."""
        return {
            **self.model.get_params(),
            "method": self.method,
            "treatment_column": self.treatment_column,
            "treatment_value": self.treatment_value,
            "control_value": self.control_value,
            "target": self.target,
            "id_column": self.id_column,
            "outcomes": self.outcomes,
            "excluded": self.excluded,
            "baseline_column": self.baseline_column,
            "test_fraction": self.test_fraction,
            "seeds": [s.seed for s in self.splits],
        }


def rule_ranking(values: pd.Series, seed: int) -> np.ndarray:
    """A one-column rule as a ranking: higher values first, ties in a seeded random order."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    numbers = np.where(np.isnan(numbers), -np.inf, numbers)
    jitter = np.random.default_rng(seed).random(len(numbers))
    # Rank by value, then by the random draw: the draw only orders rows of equal value.
    order = np.lexsort((jitter, numbers))
    ranks = np.empty(len(numbers))
    ranks[order] = np.arange(len(numbers))
    return ranks


def _arm(
    frame: pd.DataFrame,
    column: str,
    treatment_value: str,
    control_value: str,
    source: Path | str | None,
) -> np.ndarray:
    """1 treated, 0 control, -1 any other arm."""
    if column not in frame.columns:
        raise _fail(
            f"no treatment column {column!r}; columns: {', '.join(map(str, frame.columns))}",
            source=source,
            column=column,
        )
    values = frame[column]
    treated = _same_value(values, treatment_value).to_numpy(dtype=bool)
    control = _same_value(values, control_value).to_numpy(dtype=bool)
    shown = ", ".join(repr(v) for v in sorted(set(_as_text(values).dropna()))[:10])
    for value, hits in ((treatment_value, treated), (control_value, control)):
        if not hits.any():
            raise _fail(
                f"no row has the value {value!r}; the column holds {shown}",
                source=source,
                column=column,
            )
    arm = np.full(len(frame), -1, dtype=np.int64)
    arm[control] = 0
    arm[treated] = 1
    return arm


def _numeric_outcome(frame: pd.DataFrame, column: str, source: Path | str | None) -> np.ndarray:
    if column not in frame.columns:
        raise _fail(
            f"no outcome column {column!r}; columns: {', '.join(map(str, frame.columns))}",
            source=source,
            column=column,
        )
    values = frame[column]
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("float64").to_numpy()
    numbers = pd.to_numeric(_as_text(values), errors="coerce")
    if numbers.isna().any():
        position = int(np.flatnonzero(numbers.isna().to_numpy())[0])
        raise _fail(
            f"expected a number (0/1 or an amount), found {values.iloc[position]!r}",
            source=source,
            column=column,
            row=position + 1,
        )
    return numbers.to_numpy(dtype=np.float64)


def fit_uplift_table(
    frame: pd.DataFrame,
    *,
    treatment_column: str,
    treatment_value: str,
    control_value: str,
    target: str,
    method: str = "class_transformation",
    exclude: Sequence[str] = (),
    id_column: str | None = None,
    outcomes: Sequence[str] = (),
    baseline_column: str | None = None,
    test_fraction: float = 0.5,
    seed: int = 0,
    splits: int = 1,
    params: Mapping[str, Any] | None = None,
    source: Path | str | None = None,
) -> UpliftFit:
    """Fit an uplift model on a randomised campaign's table and measure it on held-out rows.

    Rows of other arms (neither value) are left out and counted. Each of ``splits`` random
    splits (seeds ``seed``, ``seed + 1``, ...) trains on ``1 − test_fraction`` of the rows,
    stratified on arm and outcome, and is measured on the rest; one split is noise, so the
    mean over several is the figure to quote. ``baseline_column`` names a one-column rule
    (higher first, ties random) measured on the same test rows. The returned model and its
    full evaluation are those of the first split. ``outcomes`` (e.g. conversion, spend) are
    reported per arm in the top k and are never features.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), not {test_fraction}")
    if splits < 1:
        raise ValueError(f"splits must be at least 1, not {splits}")
    arm = _arm(frame, treatment_column, treatment_value, control_value, source)
    y_all = _numeric_outcome(frame, target, source)
    in_test = arm >= 0
    table = frame.loc[in_test].reset_index(drop=True)
    t = arm[in_test]
    y = y_all[in_test]
    extra = {name: _numeric_outcome(table, name, source) for name in outcomes if name != target}
    for column in (id_column, baseline_column):
        if column is not None and column not in table.columns:
            raise _fail(
                f"no column {column!r}; columns: {', '.join(map(str, table.columns))}",
                source=source,
                column=column,
            )
    drop = [c for c in (treatment_column, target, id_column, *outcomes) if c is not None]
    features = feature_frame(table, drop=drop, exclude=exclude, source=source)
    strata = t * 2 + y.astype(np.int64) if _binary(y) else t
    results: list[SplitResult] = []
    first: tuple[_UpliftLearner, UpliftEvaluation, int, int] | None = None
    for split_seed in range(seed, seed + splits):
        train, test = train_test_split(
            np.arange(len(table)),
            test_size=test_fraction,
            random_state=split_seed,
            stratify=strata,
        )
        learner = make_uplift_learner(method, **dict(params or {}))
        try:
            learner.fit(features.iloc[train], y[train], t[train])
        except TableInputError:
            raise
        except ValueError as exc:
            raise _fail(str(exc), source=source, column=target) from None
        predicted = learner.predict(features.iloc[test])
        evaluation = evaluate_uplift(
            y[test],
            predicted,
            t[test],
            outcomes={name: values[test] for name, values in extra.items()},
            target_name=target,
        )
        baseline = None
        if baseline_column is not None:
            ranking = rule_ranking(table[baseline_column].iloc[test], split_seed)
            baseline = {_label(k): uplift_at_k(y[test], ranking, t[test], k) for k in TOP_FRACTIONS}
        results.append(
            SplitResult(split_seed, evaluation.uplift_at, evaluation.qini_coefficient, baseline)
        )
        if first is None:
            first = (learner, evaluation, len(train), len(test))
    assert first is not None
    model, evaluation, rows_train, rows_test = first
    return UpliftFit(
        model=model,
        evaluation=evaluation,
        method=method,
        treatment_column=treatment_column,
        treatment_value=treatment_value,
        control_value=control_value,
        target=target,
        features=list(model.feature_names_in_),
        dropped=dict(model.dropped_columns_),
        id_column=id_column,
        rows_train=rows_train,
        rows_test=rows_test,
        rows_other_arms=int((arm < 0).sum()),
        splits=results,
        outcomes=[o for o in outcomes if o != target],
        excluded=list(exclude),
        baseline_column=baseline_column,
        test_fraction=test_fraction,
    )


def evaluate_uplift_table(
    model: _UpliftLearner,
    frame: pd.DataFrame,
    *,
    treatment_column: str,
    treatment_value: str,
    control_value: str,
    target: str,
    outcomes: Sequence[str] = (),
    source: Path | str | None = None,
) -> UpliftEvaluation:
    """Measure a fitted uplift model on another randomised campaign's table."""
    arm = _arm(frame, treatment_column, treatment_value, control_value, source)
    keep = arm >= 0
    table = frame.loc[keep].reset_index(drop=True)
    y = _numeric_outcome(table, target, source)
    extra = {name: _numeric_outcome(table, name, source) for name in outcomes if name != target}
    matrix = model.encoder_.transform(table, source=source)
    return evaluate_uplift(
        y, model.score_matrix(matrix), arm[keep], outcomes=extra, target_name=target
    )
