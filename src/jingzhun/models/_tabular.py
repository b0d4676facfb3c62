"""Propensity on any flat table: a bank's campaign list, an insurer's prospect file, a features
table built from the warehouse.

``PropensityModel`` follows the scikit-learn contract on a ``pandas.DataFrame``: it finds which
columns are numbers and which are categories, handles missing values and categories it never
saw, learns LightGBM (default) or a logistic regression, calibrates the probabilities and
explains each score by its top contributing features. The functions around it read a table
file, split it for validation (random and stratified, or by time), measure the model (AUC,
PR-AUC, Brier, lift by decile, gains, calibration) and score a file in streamed batches.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from jingzhun.core import IngestError, NotFoundError

Estimator = Literal["lightgbm", "logistic"]
Calibration = Literal["isotonic", "sigmoid"]

NUMBER = "number"
BOOLEAN = "boolean"
CATEGORY = "category"
ROW_COLUMN = "row"
SCORE_COLUMN = "score"
TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


class TableInputError(IngestError, ValueError):
    """A table a model reads is not what the model needs: which file, column and row, and what
    was expected. Also a ``ValueError``, as scikit-learn estimators raise for bad input.
    """


def _fail(
    message: str,
    *,
    source: Path | str | None,
    column: str | None = None,
    row: int | None = None,
    hint: str = "",
) -> TableInputError:
    return TableInputError(
        file=Path(source) if source is not None else Path("<data frame>"),
        message=message,
        row=row,
        column=column,
        hint=hint,
    )


# -- column encoding ---------------------------------------------------------------------------


def _as_text(values: pd.Series) -> pd.Series:
    """Values as stripped text (pandas ``str``), blank and missing as missing. Whole floats
    print without ``.0``, so a column of codes read as floats (because of one blank) matches
    its integer spelling.
    """
    if pd.api.types.is_float_dtype(values.dtype):
        numbers = values.astype("float64")
        whole = numbers.notna() & (numbers == np.floor(numbers)) & (numbers.abs() < 2.0**53)
        integers = numbers.where(whole, 0).astype("int64").astype("str")
        return numbers.astype("str").where(~whole, integers)
    text = values.astype("str").str.strip()
    return text.where(text != "")


class _TableEncoder:
    """Learns which columns are numbers, booleans or categories, and turns a frame into a float
    matrix: numbers as they are (missing = NaN), booleans as 0/1, categories as level codes
    (rare and unseen levels share one "other" code, missing = NaN).
    """

    def __init__(self, max_categories: int = 100, min_level_rows: int = 5) -> None:
        self.max_categories = max_categories
        self.min_level_rows = min_level_rows

    def fit(self, frame: pd.DataFrame, *, source: Path | str | None = None) -> _TableEncoder:
        """Look at every column once; columns that cannot help are left out with the reason."""
        self.columns_: list[str] = []
        self.kinds_: dict[str, str] = {}
        self.levels_: dict[str, list[str]] = {}
        self.other_: dict[str, bool] = {}
        self.dropped_: dict[str, str] = {}
        rows = len(frame)
        for column in frame.columns:
            name = str(column)
            values = frame[column]
            if pd.api.types.is_datetime64_any_dtype(values.dtype):
                self.dropped_[name] = (
                    "a date or time: derive a number from it (days since ...) or pass it as "
                    "the time column"
                )
                continue
            kind = self._kind(values)
            if kind == CATEGORY:
                values = _as_text(values)
            present = values.dropna()
            distinct = int(present.nunique())
            if len(present) == 0:
                self.dropped_[name] = "no values"
                continue
            if distinct < 2:
                self.dropped_[name] = "one value only"
                continue
            if kind == CATEGORY:
                if distinct > self.max_categories and distinct > 0.5 * rows:
                    self.dropped_[name] = (
                        f"looks like an identifier: {distinct:,} distinct values in {rows:,} rows"
                    )
                    continue
                counts = present.value_counts(sort=True)
                kept = counts[counts >= self.min_level_rows].index[: self.max_categories]
                self.levels_[name] = sorted(str(level) for level in kept)
                self.other_[name] = len(kept) < distinct
                if not self.levels_[name]:
                    self.dropped_[name] = (
                        f"no category holds {self.min_level_rows} or more rows ({distinct:,} "
                        "distinct values)"
                    )
                    del self.levels_[name], self.other_[name]
                    continue
            self.columns_.append(name)
            self.kinds_[name] = kind
        if not self.columns_:
            raise _fail(
                "no column can be used as a feature"
                + (
                    ": " + "; ".join(f"{c}: {why}" for c, why in self.dropped_.items())
                    if self.dropped_
                    else ""
                ),
                source=source,
            )
        return self

    @staticmethod
    def _kind(values: pd.Series) -> str:
        if pd.api.types.is_bool_dtype(values.dtype):
            return BOOLEAN
        if pd.api.types.is_numeric_dtype(values.dtype):
            return NUMBER
        present = _as_text(values).dropna()
        if len(present) and pd.to_numeric(present, errors="coerce").notna().all():
            return NUMBER  # numbers stored as text
        return CATEGORY

    @property
    def categorical_indices(self) -> list[int]:
        """Positions of the category columns in the matrix (LightGBM's categorical features)."""
        return [i for i, c in enumerate(self.columns_) if self.kinds_[c] == CATEGORY]

    def missing_columns(self, columns: Sequence[str]) -> list[str]:
        """Feature columns the given column names lack."""
        have = {str(c) for c in columns}
        return [c for c in self.columns_ if c not in have]

    def transform(
        self,
        frame: pd.DataFrame,
        *,
        source: Path | str | None = None,
        first_row: int = 1,
    ) -> np.ndarray:
        """The float matrix of the feature columns, in the order they were learned.

        Parameters
        ----------
        source
            The file the frame came from, named in errors.
        first_row
            The row number of the frame's first row in that file (1 = the first data row),
            so an error names the row a person can find.
        """
        missing = self.missing_columns(frame.columns)
        if missing:
            raise _fail(
                f"missing column(s) {', '.join(repr(c) for c in missing)} the model was "
                f"trained on; expected columns: {', '.join(self.columns_)}",
                source=source,
                column=missing[0],
            )
        matrix = np.empty((len(frame), len(self.columns_)), dtype=np.float64)
        for j, name in enumerate(self.columns_):
            values = frame[name]
            kind = self.kinds_[name]
            if kind == CATEGORY:
                matrix[:, j] = self._codes(name, values)
            elif kind == BOOLEAN:
                matrix[:, j] = self._booleans(name, values, source, first_row)
            else:
                matrix[:, j] = self._numbers(name, values, source, first_row)
        return matrix

    def _codes(self, name: str, values: pd.Series) -> np.ndarray:
        levels = self.levels_[name]
        text = _as_text(values)
        codes = pd.Index(levels, dtype="str").get_indexer(text).astype(np.float64)
        unknown = (codes < 0) & text.notna().to_numpy()
        codes[codes < 0] = np.nan
        if self.other_[name]:
            codes[unknown] = len(levels)
        return codes

    @staticmethod
    def _numbers(
        name: str, values: pd.Series, source: Path | str | None, first_row: int
    ) -> np.ndarray:
        if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
            return values.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
        text = _as_text(values)
        numbers = pd.to_numeric(text, errors="coerce")
        bad = numbers.isna() & text.notna()
        if bad.any():
            position = int(np.flatnonzero(bad.to_numpy())[0])
            raise _fail(
                f"expected a number, found {text.iloc[position]!r}",
                source=source,
                column=name,
                row=first_row + position,
            )
        return numbers.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)

    @staticmethod
    def _booleans(
        name: str, values: pd.Series, source: Path | str | None, first_row: int
    ) -> np.ndarray:
        if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
            return values.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
        text = _as_text(values).str.lower()
        out = np.full(len(text), np.nan)
        truth = text.isin(_TRUE).to_numpy()
        falsity = text.isin(_FALSE).to_numpy()
        out[truth] = 1.0
        out[falsity] = 0.0
        bad = text.notna().to_numpy() & ~truth & ~falsity
        if bad.any():
            position = int(np.flatnonzero(bad)[0])
            raise _fail(
                f"expected true or false, found {text.iloc[position]!r}",
                source=source,
                column=name,
                row=first_row + position,
            )
        return out


class _LinearDesign:
    """The logistic regression's design matrix from the encoder's: numbers with the median for
    a missing value plus a missing flag, categories one-hot, every column standardised. Keeps
    which original feature each design column belongs to, for reason codes.
    """

    def fit(self, matrix: np.ndarray, encoder: _TableEncoder) -> _LinearDesign:
        """Learn medians, levels, means and spreads from the training matrix."""
        self.parts_: list[tuple[int, str, float]] = []  # (feature index, role, value)
        for j, name in enumerate(encoder.columns_):
            column = matrix[:, j]
            if encoder.kinds_[name] == CATEGORY:
                codes = np.unique(column[~np.isnan(column)])
                self.parts_.extend((j, "level", float(code)) for code in codes)
                if np.isnan(column).any():
                    self.parts_.append((j, "missing", 0.0))
            else:
                present = column[~np.isnan(column)]
                median = float(np.median(present)) if len(present) else 0.0
                self.parts_.append((j, "value", median))
                if np.isnan(column).any():
                    self.parts_.append((j, "missing", 0.0))
        raw = self._raw(matrix)
        self.mean_ = raw.mean(axis=0)
        spread = raw.std(axis=0)
        self.scale_ = np.where(spread > 0, spread, 1.0)
        self.groups_ = np.array([j for j, _, _ in self.parts_], dtype=np.int64)
        return self

    def _raw(self, matrix: np.ndarray) -> np.ndarray:
        raw = np.empty((matrix.shape[0], len(self.parts_)), dtype=np.float64)
        for k, (j, role, value) in enumerate(self.parts_):
            column = matrix[:, j]
            if role == "level":
                raw[:, k] = column == value
            elif role == "missing":
                raw[:, k] = np.isnan(column)
            else:
                raw[:, k] = np.where(np.isnan(column), value, column)
        return raw

    def transform(self, matrix: np.ndarray) -> np.ndarray:
        """Standardised design matrix."""
        return (self._raw(matrix) - self.mean_) / self.scale_


# -- LightGBM boosters kept as text ------------------------------------------------------------


# LightGBM's OpenMP threads spin while they wait for each other: on a small table, or on a
# machine busy with other work, more threads are slower — on this project's shared two-core
# test machine one Hillstrom fit took 1 s on one thread and over 100 s on two. Below this many
# rows a model trains and predicts on one thread unless told otherwise (``n_jobs``).
SMALL_TABLE_ROWS = 200_000


def threads_for(rows: int, n_jobs: int | None) -> int:
    """LightGBM threads for ``rows`` rows: ``n_jobs`` when given, else 1 for a small table and
    0 (LightGBM's default: every core) for a large one.
    """
    if n_jobs is not None:
        return n_jobs
    return 1 if rows < SMALL_TABLE_ROWS else 0


def predict_booster(
    booster: lgb.Booster, matrix: np.ndarray, n_jobs: int | None, **options: Any
) -> np.ndarray:
    """``booster.predict`` with the thread count of ``threads_for``."""
    threads = threads_for(len(matrix), n_jobs)
    return np.asarray(booster.predict(matrix, num_threads=threads, **options), dtype=np.float64)


def train_booster(
    params: dict[str, Any],
    matrix: np.ndarray,
    target: np.ndarray,
    *,
    categorical: Sequence[int],
    weight: np.ndarray | None = None,
) -> str:
    """Train a LightGBM booster and return its text model.

    Artifacts keep boosters as LightGBM's own text format, so loading one needs no pickled
    LightGBM object (see the registry).
    """
    rounds = int(params.get("n_estimators", 100))
    options = {k: v for k, v in params.items() if k != "n_estimators"}
    options["num_threads"] = threads_for(len(matrix), options.get("num_threads"))
    data = lgb.Dataset(
        matrix,
        label=target,
        weight=weight,
        categorical_feature=list(categorical) or "auto",
        free_raw_data=True,
        params={"verbose": -1},
    )
    booster = lgb.train({**options, "verbose": -1}, data, num_boost_round=rounds)
    return str(booster.model_to_string())


def best_rounds(
    params: dict[str, Any],
    matrix: np.ndarray,
    target: np.ndarray,
    *,
    categorical: Sequence[int],
    patience: int,
    random_state: int,
) -> int:
    """The number of boosting rounds (up to ``n_estimators``) that minimises log-loss on a
    stratified fifth of the rows held out, stopping after ``patience`` rounds without gain.
    """
    train, held_out = train_test_split(
        np.arange(len(target)), test_size=0.2, random_state=random_state, stratify=target
    )
    rounds = int(params.get("n_estimators", 100))
    options = {k: v for k, v in params.items() if k != "n_estimators"}
    options |= {"verbose": -1, "metric": "binary_logloss"}
    options["num_threads"] = threads_for(len(matrix), options.get("num_threads"))
    categories: list[int] | Literal["auto"] = list(categorical) or "auto"
    fit_set = lgb.Dataset(
        matrix[train], label=target[train], categorical_feature=categories, params={"verbose": -1}
    )
    check_set = lgb.Dataset(
        matrix[held_out], label=target[held_out], categorical_feature=categories, reference=fit_set
    )
    booster = lgb.train(
        options,
        fit_set,
        num_boost_round=rounds,
        valid_sets=[check_set],
        callbacks=[lgb.early_stopping(patience, verbose=False)],
    )
    return max(1, int(booster.best_iteration or rounds))


class _BoosterCache:
    """Rebuilds LightGBM boosters from their text once per process; never saved."""

    def __init__(self) -> None:
        self._boosters: dict[str, lgb.Booster] = {}

    def get(self, key: str, text: str) -> lgb.Booster:
        booster = self._boosters.get(key)
        if booster is None:
            booster = lgb.Booster(model_str=text)
            self._boosters[key] = booster
        return booster


def lightgbm_params(
    objective: str,
    *,
    n_estimators: int,
    learning_rate: float,
    num_leaves: int,
    min_child_samples: int,
    reg_lambda: float,
    subsample: float,
    colsample_bytree: float,
    random_state: int,
    n_jobs: int | None,
) -> dict[str, Any]:
    """LightGBM's training parameters under their scikit-learn names' meanings."""
    params: dict[str, Any] = {
        "objective": objective,
        "n_estimators": n_estimators,
        "learning_rate": learning_rate,
        "num_leaves": num_leaves,
        "min_data_in_leaf": min_child_samples,
        "lambda_l2": reg_lambda,
        "bagging_fraction": subsample,
        "bagging_freq": 1 if subsample < 1 else 0,
        "feature_fraction": colsample_bytree,
        "seed": random_state,
        "deterministic": True,
        "force_row_wise": True,
        # Categories with few rows: LightGBM's own defaults (min_data_per_group 100) would
        # ignore most levels of a small table.
        "min_data_per_group": max(10, min_child_samples // 2),
        "cat_smooth": 10.0,
    }
    if n_jobs is not None:
        params["num_threads"] = n_jobs
    return params


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# -- the model -----------------------------------------------------------------------------------


class PropensityModel(ClassifierMixin, BaseEstimator):
    """The probability that a customer does something (buys, responds, churns), learned from a
    table of one row per customer and a yes/no target.

    Parameters
    ----------
    estimator
        ``"lightgbm"`` (default: gradient-boosted trees, categories handled natively) or
        ``"logistic"`` (an L2-regularised logistic regression on standardised columns, the
        simple alternative).
    calibration
        How scores become probabilities: ``"sigmoid"`` (Platt scaling, default: keeps the
        model's ranking, so AUC, lift and gains are those of the model), ``"isotonic"`` (more
        flexible, ties scores in steps) or ``None`` (the model's own probabilities).
        Calibrators are fitted on out-of-fold scores (``calibration_folds``).
    n_estimators, learning_rate, num_leaves, min_child_samples, reg_lambda, subsample,
    colsample_bytree
        LightGBM settings (scikit-learn names).
    C
        Inverse regularisation strength of the logistic regression.
    early_stopping_rounds
        LightGBM: choose the number of trees (at most ``n_estimators``) on a stratified fifth
        of the training rows, stopping after this many rounds without a better log-loss; the
        model is then refitted on all rows with that number (``n_estimators_``). ``None``
        uses ``n_estimators`` trees.
    max_categories
        Levels kept per category column (the most frequent); the rest share an "other" level.
    random_state
        Seed of the trees' sampling and the calibration folds.
    n_jobs
        Threads for LightGBM (``None``: one below 200,000 rows, else every core; see
        ``threads_for``).

    Attributes
    ----------
    feature_names_in_ : ndarray of str
        Columns used as features, in order.
    feature_kinds_ : dict
        ``number``, ``boolean`` or ``category`` per feature.
    dropped_columns_ : dict
        Columns of the training frame left out, with the reason.
    classes_ : ndarray
        The two target values; the second is the positive one.
    n_estimators_ : int
        Trees in the LightGBM model.
    """

    def __init__(
        self,
        estimator: Estimator = "lightgbm",
        calibration: Calibration | None = "sigmoid",
        *,
        n_estimators: int = 500,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 40,
        reg_lambda: float = 1.0,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        C: float = 1.0,
        early_stopping_rounds: int | None = 50,
        calibration_folds: int = 3,
        max_categories: int = 100,
        random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.estimator = estimator
        self.calibration = calibration
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.reg_lambda = reg_lambda
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.C = C
        self.early_stopping_rounds = early_stopping_rounds
        self.calibration_folds = calibration_folds
        self.max_categories = max_categories
        self.random_state = random_state
        self.n_jobs = n_jobs

    # scikit-learn reads these tags; a frame with text columns is this model's normal input.
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        return tags

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_boosters", None)
        return state

    def fit(self, X: pd.DataFrame, y: Any) -> PropensityModel:
        """Learn the columns, the model and the calibration from a frame and its target.

        Parameters
        ----------
        X
            One row per customer; any mix of number, boolean and text columns, missing
            values allowed.
        y
            The target: two distinct values (0/1, False/True, "no"/"yes" ...); the larger
            one in sort order is the positive class.
        """
        if self.estimator not in ("lightgbm", "logistic"):
            raise ValueError(f"estimator must be 'lightgbm' or 'logistic', not {self.estimator!r}")
        if self.calibration not in ("isotonic", "sigmoid", None):
            raise ValueError(
                f"calibration must be 'isotonic', 'sigmoid' or None, not {self.calibration!r}"
            )
        frame = _frame(X)
        labels = np.asarray(y)
        if len(labels) != len(frame):
            raise ValueError(f"X has {len(frame)} rows but y has {len(labels)}")
        if pd.isna(labels).any():
            raise ValueError("y has missing values; drop those rows or fill them first")
        self.classes_ = np.unique(labels)
        if len(self.classes_) != 2:
            raise ValueError(
                f"y must hold exactly two classes, found {len(self.classes_)}: "
                f"{list(self.classes_)[:5]}"
            )
        target = (labels == self.classes_[1]).astype(np.float64)
        self.encoder_ = _TableEncoder(max_categories=self.max_categories).fit(frame)
        self.feature_names_in_ = np.array(self.encoder_.columns_, dtype=object)
        self.n_features_in_ = len(self.encoder_.columns_)
        self.feature_kinds_ = dict(self.encoder_.kinds_)
        self.dropped_columns_ = dict(self.encoder_.dropped_)
        matrix = self.encoder_.transform(frame)
        self.n_estimators_ = self.n_estimators
        if self.estimator == "lightgbm" and self.early_stopping_rounds is not None:
            self.n_estimators_ = best_rounds(
                self._lightgbm_params(self.n_estimators),
                matrix,
                target,
                categorical=self.encoder_.categorical_indices,
                patience=self.early_stopping_rounds,
                random_state=self.random_state,
            )
        self.calibrator_: IsotonicRegression | LogisticRegression | None = None
        if self.calibration is not None:
            margins = self._out_of_fold_margins(matrix, target)
            self.calibrator_ = _fit_calibrator(self.calibration, margins, target)
        self._fit_margin_model(matrix, target)
        return self

    def _out_of_fold_margins(self, matrix: np.ndarray, target: np.ndarray) -> np.ndarray:
        minority = int(min(target.sum(), len(target) - target.sum()))
        folds = min(self.calibration_folds, minority)
        if folds < 2:
            raise ValueError(
                f"too few rows of the rarer class to calibrate ({minority}); pass calibration=None"
            )
        margins = np.empty(len(target))
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.random_state)
        for train, held_out in splitter.split(matrix, target):
            self._fit_margin_model(matrix[train], target[train])
            margins[held_out] = self._margin(matrix[held_out])
        return margins

    def _fit_margin_model(self, matrix: np.ndarray, target: np.ndarray) -> None:
        self._boosters = _BoosterCache()
        if self.estimator == "lightgbm":
            self.booster_model_: str | None = train_booster(
                self._lightgbm_params(self.n_estimators_),
                matrix,
                target,
                categorical=self.encoder_.categorical_indices,
            )
            self.linear_: LogisticRegression | None = None
            self.design_: _LinearDesign | None = None
        else:
            self.design_ = _LinearDesign().fit(matrix, self.encoder_)
            self.linear_ = LogisticRegression(C=self.C, max_iter=2000)
            self.linear_.fit(self.design_.transform(matrix), target)
            self.booster_model_ = None

    def _lightgbm_params(self, rounds: int) -> dict[str, Any]:
        return lightgbm_params(
            "binary",
            n_estimators=rounds,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            reg_lambda=self.reg_lambda,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        )

    def _booster(self) -> lgb.Booster:
        if not hasattr(self, "_boosters"):
            self._boosters = _BoosterCache()
        assert self.booster_model_ is not None
        return self._boosters.get("model", self.booster_model_)

    def _margin(self, matrix: np.ndarray) -> np.ndarray:
        """The model's raw log-odds."""
        if self.booster_model_ is not None:
            return predict_booster(self._booster(), matrix, self.n_jobs, raw_score=True)
        assert self.linear_ is not None and self.design_ is not None
        return np.asarray(self.linear_.decision_function(self.design_.transform(matrix)))

    def _check(self) -> None:
        if not hasattr(self, "encoder_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this PropensityModel is not fitted yet; call fit first")

    def transform_features(
        self, X: pd.DataFrame, *, source: Path | str | None = None, first_row: int = 1
    ) -> np.ndarray:
        """The encoded feature matrix; errors name the missing column or bad value and row."""
        self._check()
        return self.encoder_.transform(_frame(X), source=source, first_row=first_row)

    def probability(self, matrix: np.ndarray) -> np.ndarray:
        """Calibrated probability of the positive class from an encoded matrix."""
        margin = self._margin(matrix)
        if self.calibrator_ is None:
            return _sigmoid(margin)
        return _apply_calibrator(self.calibrator_, margin)

    def score_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Scores for ``score_file``: the calibrated probability of the positive class."""
        return self.probability(matrix)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probabilities of ``classes_[0]`` and ``classes_[1]`` (the positive class), per row."""
        positive = self.probability(self.transform_features(X))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The more likely class of each row (positive when its probability is 0.5 or more)."""
        positive = self.predict_proba(X)[:, 1]
        return np.where(positive >= 0.5, self.classes_[1], self.classes_[0])

    def score(self, X: pd.DataFrame, y: Any, sample_weight: Any = None) -> float:
        """Area under the ROC curve of the positive-class probability (not accuracy: a
        propensity is used to rank customers).
        """
        positive = np.asarray(y) == self.classes_[1]
        return float(
            roc_auc_score(positive, self.predict_proba(X)[:, 1], sample_weight=sample_weight)
        )

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Each feature's contribution to each row's log-odds (before calibration).

        LightGBM: TreeSHAP values (``pred_contrib``), which with the ``bias`` column add up
        to the row's log-odds. Logistic: coefficient × standardised value, summed over a
        feature's design columns; ``bias`` is the intercept.
        """
        matrix = self.transform_features(X)
        names = list(self.encoder_.columns_)
        if self.booster_model_ is not None:
            values = predict_booster(self._booster(), matrix, self.n_jobs, pred_contrib=True)
            return pd.DataFrame(values, columns=[*names, "bias"], index=_frame(X).index)
        assert self.linear_ is not None and self.design_ is not None
        parts = self.design_.transform(matrix) * self.linear_.coef_[0]
        grouped = np.zeros((len(matrix), len(names)))
        np.add.at(grouped.T, self.design_.groups_, parts.T)
        bias = np.full((len(matrix), 1), float(self.linear_.intercept_[0]))
        return pd.DataFrame(
            np.hstack([grouped, bias]), columns=[*names, "bias"], index=_frame(X).index
        )

    def reason_codes(self, X: pd.DataFrame, top: int = 3) -> pd.DataFrame:
        """The features that raise each row's score most: ``reason_1`` (feature name),
        ``reason_1_value`` (the row's value, as text) and ``reason_1_contribution`` (log-odds
        added), up to ``top``. Only features that raise the score count; a row with fewer
        such features has empty reasons after them.
        """
        if top < 1:
            raise ValueError(f"top must be at least 1, not {top}")
        frame = _frame(X)
        contributions = self.contributions(frame)
        names = np.array(self.encoder_.columns_, dtype=object)
        values = contributions[list(names)].to_numpy()
        order = np.argsort(-values, axis=1, kind="stable")[:, :top]
        rows = np.arange(len(values))[:, None]
        chosen = values[rows, order]
        out: dict[str, Any] = {}
        for rank in range(order.shape[1]):
            positive = chosen[:, rank] > 0
            columns = names[order[:, rank]]
            texts = np.empty(len(frame), dtype=object)
            for feature in np.unique(columns[positive]):
                mask = positive & (columns == feature)
                text = _as_text(frame.loc[mask, feature])
                texts[mask] = text.astype(object).where(text.notna(), None).to_numpy()
            reasons = columns.copy()
            reasons[~positive] = None
            out[f"reason_{rank + 1}"] = reasons
            out[f"reason_{rank + 1}_value"] = texts
            out[f"reason_{rank + 1}_contribution"] = np.where(positive, chosen[:, rank], np.nan)
        return pd.DataFrame(out, index=frame.index)


def _frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    raise TypeError(
        f"X must be a pandas DataFrame with named columns, not {type(X).__name__}; "
        "the model finds numbers and categories by column"
    )


def _fit_calibrator(
    method: str, margins: np.ndarray, target: np.ndarray
) -> IsotonicRegression | LogisticRegression:
    if method == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(margins, target)
        return iso
    # Platt (1999) scaling on the raw margin; a weak penalty, as sklearn's _SigmoidCalibration.
    platt = LogisticRegression(C=1e6, max_iter=1000)
    platt.fit(margins.reshape(-1, 1), target)
    return platt


def _apply_calibrator(
    calibrator: IsotonicRegression | LogisticRegression, margins: np.ndarray
) -> np.ndarray:
    if isinstance(calibrator, IsotonicRegression):
        return np.asarray(calibrator.predict(margins), dtype=np.float64)
    return np.asarray(calibrator.predict_proba(margins.reshape(-1, 1))[:, 1], dtype=np.float64)


# -- measuring a binary score ------------------------------------------------------------------


@dataclass(frozen=True)
class BinaryEvaluation:
    """How well a score ranks and how honest its probabilities are, on held-out rows.

    ``lift`` has one row per decile of the score (highest first): rows, positives, rate,
    lift (rate / base rate), cumulative share of positives (gains). ``gains`` is that
    cumulative share at 0 %, 10 %, ..., 100 % targeted. ``calibration`` has one row per
    decile of the predicted probability: mean predicted, observed rate, rows.
    """

    rows: int
    positives: int
    base_rate: float
    auc: float
    pr_auc: float
    brier: float
    lift: list[dict[str, float]]
    gains: list[dict[str, float]]
    calibration: list[dict[str, float]]
    kind: str = "binary"

    def headline(self) -> dict[str, float]:
        """The few numbers a person looks at first."""
        top = self.lift[0] if self.lift else {}
        return {
            "auc": round(self.auc, 4),
            "pr_auc": round(self.pr_auc, 4),
            "brier": round(self.brier, 5),
            "base_rate": round(self.base_rate, 5),
            "top_decile_lift": round(float(top.get("lift", math.nan)), 3),
            "rows": self.rows,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON and the registry."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BinaryEvaluation:
        """Read back what ``to_dict`` wrote."""
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**fields)


def _deciles(n: int, bins: int = 10) -> np.ndarray:
    """Decile number (0 = first tenth) of each position 0..n-1, sizes as even as they go."""
    return (np.arange(n) * bins) // max(n, 1)


def evaluate_binary(y_true: Any, score: Any, *, bins: int = 10) -> BinaryEvaluation:
    """AUC, PR-AUC (average precision), Brier score, lift by decile, gains and a calibration
    table for a score against 0/1 outcomes.
    """
    truth = np.asarray(y_true, dtype=np.float64)
    prediction = np.asarray(score, dtype=np.float64)
    if truth.shape != prediction.shape or truth.ndim != 1:
        raise ValueError("y_true and score must be one-dimensional and of the same length")
    n = len(truth)
    positives = int(truth.sum())
    if n == 0 or positives in (0, n):
        raise ValueError(
            f"evaluation needs both outcomes among the rows: {positives} positive of {n}"
        )
    base = positives / n
    order = np.argsort(-prediction, kind="stable")
    ranked = truth[order]
    decile = _deciles(n, bins)
    lift = []
    captured = 0.0
    gains = [{"targeted": 0.0, "captured": 0.0}]
    for d in range(bins):
        mask = decile == d
        rows = int(mask.sum())
        hits = float(ranked[mask].sum())
        captured += hits
        rate = hits / rows if rows else 0.0
        lift.append(
            {
                "decile": d + 1,
                "rows": rows,
                "positives": hits,
                "rate": rate,
                "lift": rate / base,
                "cumulative_captured": captured / positives,
            }
        )
        gains.append({"targeted": (d + 1) / bins, "captured": captured / positives})
    by_probability = np.argsort(prediction, kind="stable")
    calibration = []
    for d in range(bins):
        mask = by_probability[decile == d]
        if len(mask) == 0:
            continue
        calibration.append(
            {
                "bin": d + 1,
                "rows": len(mask),
                "mean_predicted": float(prediction[mask].mean()),
                "observed_rate": float(truth[mask].mean()),
            }
        )
    return BinaryEvaluation(
        rows=n,
        positives=positives,
        base_rate=base,
        auc=float(roc_auc_score(truth, prediction)),
        pr_auc=float(average_precision_score(truth, prediction)),
        brier=float(brier_score_loss(truth, np.clip(prediction, 0.0, 1.0))),
        lift=lift,
        gains=gains,
        calibration=calibration,
    )


# -- tables: reading, targets, splits ------------------------------------------------------------


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in TABLE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise _fail(
        "unknown table format; expected a .csv, .csv.gz or .parquet file",
        source=path,
        hint="export the table as CSV or Parquet",
    )


def read_table(path: Path) -> pd.DataFrame:
    """A CSV (plain or gzip) or Parquet file as a frame; the format is chosen by extension."""
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise NotFoundError(f"table {path} not found")
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, low_memory=False)
    except (ValueError, OSError, pa.ArrowException) as exc:
        raise _fail(f"cannot be read: {exc}", source=path) from None


def file_fingerprint(path: Path) -> str:
    """SHA-256 of a file's bytes: which data a model was trained on."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's column names and row hashes (order matters)."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _same_value(values: pd.Series, wanted: str) -> pd.Series:
    """Which values equal a value given as text (a number column compares as numbers)."""
    if pd.api.types.is_bool_dtype(values.dtype):
        lowered = wanted.strip().lower()
        if lowered in _TRUE | _FALSE:
            return values == (lowered in _TRUE)
    if pd.api.types.is_numeric_dtype(values.dtype):
        try:
            number = float(wanted)
        except ValueError:
            return pd.Series(False, index=values.index)
        return values.astype("float64") == number
    return (_as_text(values) == wanted.strip()).fillna(False).astype(bool)


def binary_target(
    frame: pd.DataFrame,
    target: str,
    *,
    positive: str | None = None,
    source: Path | str | None = None,
) -> tuple[np.ndarray, str, int]:
    """The 0/1 target of a table, the positive value as text, and rows without a target.

    Without ``positive`` the column must be 0/1 or true/false; any other pair of values asks
    for ``--positive``.
    """
    if target not in frame.columns:
        raise _fail(
            f"no target column {target!r}; columns: {', '.join(map(str, frame.columns))}",
            source=source,
            column=target,
        )
    values = frame[target]
    missing = _as_text(values).isna()
    present = values[~missing]
    distinct = sorted(set(_as_text(present)))
    if positive is None:
        lowered = {v.lower() for v in distinct}
        if lowered <= {"0", "1"} or lowered <= {"true", "false"}:
            positive = next((v for v in distinct if v.lower() in ("1", "true")), "1")
        else:
            shown = ", ".join(repr(v) for v in distinct[:10])
            raise _fail(
                f"target has the values {shown}; say which one is the positive outcome",
                source=source,
                column=target,
                hint=f"pass --positive VALUE, for example --positive {distinct[-1]!r}"
                if distinct
                else "",
            )
    # More than two values is allowed: one value against all others ("bought product A").
    hit = _same_value(present, positive).to_numpy(dtype=bool)
    if not hit.any():
        shown = ", ".join(repr(v) for v in distinct[:10])
        raise _fail(
            f"no row has the positive value {positive!r}; the column holds {shown}",
            source=source,
            column=target,
        )
    if hit.all():
        raise _fail(
            f"every row has the positive value {positive!r}; a model needs both outcomes",
            source=source,
            column=target,
        )
    labels = np.full(len(frame), -1, dtype=np.int8)
    labels[~missing.to_numpy()] = hit.astype(np.int8)
    return labels, positive, int(missing.sum())


def split_rows(
    target: np.ndarray,
    *,
    validation_fraction: float = 0.25,
    random_state: int = 0,
    times: pd.Series | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation row positions: a random split stratified on the target, or —
    with ``times`` — the latest ``validation_fraction`` of rows by time for validation.
    """
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), not {validation_fraction}")
    positions = np.arange(len(target))
    if times is not None:
        order = np.argsort(times.to_numpy(), kind="stable")
        cut = round(len(order) * (1 - validation_fraction))
        return np.sort(order[:cut]), np.sort(order[cut:])
    train, valid = train_test_split(
        positions,
        test_size=validation_fraction,
        random_state=random_state,
        stratify=target,
    )
    return np.sort(train), np.sort(valid)


@dataclass
class TableFit:
    """A propensity model fitted on a table, and how it did on the validation rows."""

    model: PropensityModel
    evaluation: BinaryEvaluation
    target: str
    positive: str
    features: list[str]
    dropped: dict[str, str]
    id_column: str | None
    rows_train: int
    rows_validation: int
    rows_without_target: int
    validation: str
    excluded: list[str] = field(default_factory=list)

    def params(self) -> dict[str, Any]:
        """What the registry records as the model's parameters."""
        return {
            **self.model.get_params(),
            "target": self.target,
            "positive": self.positive,
            "id_column": self.id_column,
            "excluded": self.excluded,
            "validation": self.validation,
        }


def feature_frame(
    frame: pd.DataFrame,
    *,
    drop: Sequence[str],
    exclude: Sequence[str] = (),
    source: Path | str | None = None,
) -> pd.DataFrame:
    """The frame without the target, id, time and excluded columns; unknown names are errors."""
    unknown = [c for c in exclude if c not in frame.columns]
    if unknown:
        raise _fail(
            f"cannot exclude {', '.join(repr(c) for c in unknown)}: no such column; columns: "
            f"{', '.join(map(str, frame.columns))}",
            source=source,
            column=unknown[0],
        )
    gone = {*drop, *exclude}
    return frame[[c for c in frame.columns if c not in gone]]


def fit_propensity_table(
    frame: pd.DataFrame,
    target: str,
    *,
    positive: str | None = None,
    exclude: Sequence[str] = (),
    id_column: str | None = None,
    time_column: str | None = None,
    validation_fraction: float = 0.25,
    model: PropensityModel | None = None,
    source: Path | str | None = None,
) -> TableFit:
    """Fit a propensity model on a flat table and measure it on held-out rows.

    Rows without a target value are left out (and counted). Validation is a random split
    stratified on the target, or the latest rows by ``time_column``. The returned model is
    the one fitted on the training rows, so its metrics are honest out-of-sample figures.
    """
    for column in (id_column, time_column):
        if column is not None and column not in frame.columns:
            raise _fail(
                f"no column {column!r}; columns: {', '.join(map(str, frame.columns))}",
                source=source,
                column=column,
            )
    labels, positive_value, unlabelled = binary_target(
        frame, target, positive=positive, source=source
    )
    keep = labels >= 0
    table = frame.loc[keep].reset_index(drop=True)
    y = labels[keep].astype(np.int64)
    times = None
    if time_column is not None:
        times = pd.to_datetime(table[time_column], errors="coerce", utc=True)
        if times.isna().any():
            position = int(np.flatnonzero(times.isna().to_numpy())[0])
            raise _fail(
                f"expected a date or time, found {table[time_column].iloc[position]!r}",
                source=source,
                column=time_column,
                row=int(np.flatnonzero(keep)[position]) + 1,
            )
    drop = [c for c in (target, id_column, time_column) if c is not None]
    features = feature_frame(table, drop=drop, exclude=exclude, source=source)
    train, valid = split_rows(
        y,
        validation_fraction=validation_fraction,
        random_state=(model.random_state if model is not None else 0),
        times=times,
    )
    estimator = model if model is not None else PropensityModel()
    try:
        estimator.fit(features.iloc[train], y[train])
    except TableInputError:
        raise
    except ValueError as exc:
        raise _fail(str(exc), source=source) from None
    score = estimator.predict_proba(features.iloc[valid])[:, 1]
    evaluation = evaluate_binary(y[valid], score)
    return TableFit(
        model=estimator,
        evaluation=evaluation,
        target=target,
        positive=positive_value,
        features=list(estimator.feature_names_in_),
        dropped=dict(estimator.dropped_columns_),
        id_column=id_column,
        rows_train=len(train),
        rows_validation=len(valid),
        rows_without_target=unlabelled,
        validation=(
            f"latest {validation_fraction:.0%} of rows by {time_column}"
            if time_column
            else f"random {validation_fraction:.0%} of rows, stratified on the target"
        ),
        excluded=list(exclude),
    )


# -- scoring a file in batches -------------------------------------------------------------------


class Scorer(Protocol):
    """What ``score_file`` needs of a model: its encoder and a score from an encoded matrix."""

    encoder_: _TableEncoder

    def score_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """One score per row of an encoded matrix."""
        ...


@dataclass(frozen=True)
class ScoreReport:
    """What ``score_file`` wrote."""

    rows: int
    output: Path
    id_column: str | None
    seconds: float
    batches: int

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``--json``."""
        return {
            "rows": self.rows,
            "output": str(self.output),
            "id_column": self.id_column or ROW_COLUMN,
            "seconds": round(self.seconds, 3),
            "batches": self.batches,
        }


def _arrow_types(encoder: _TableEncoder) -> dict[str, pa.DataType]:
    types: dict[str, pa.DataType] = {}
    for name in encoder.columns_:
        kind = encoder.kinds_[name]
        # booleans as text: the encoder reads yes/no, true/false and 1/0 alike
        types[name] = pa.float64() if kind == NUMBER else pa.string()
    return types


def table_columns(path: Path) -> list[str]:
    """The column names of a CSV or Parquet file (reads only its head)."""
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise NotFoundError(f"table {path} not found")
    if suffix == ".parquet":
        return list(pq.ParquetFile(path).schema_arrow.names)
    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16))
    names = list(reader.schema.names)
    reader.close()
    return names


def _csv_reader(
    path: Path, columns: Sequence[str], types: dict[str, pa.DataType], batch_size: int
) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=max(1 << 20, batch_size * 64)),
        convert_options=pacsv.ConvertOptions(
            include_columns=list(columns),
            column_types={c: t for c, t in types.items() if c in columns},
            strings_can_be_null=True,
        ),
    )


def _bad_number(path: Path, columns: Sequence[str], types: dict[str, pa.DataType]) -> None:
    """Find the first value of a number column that is not a number, and say where it is.

    Arrow's conversion error names neither row nor, always, the column; this second pass
    (only taken after such an error) reads the number columns as text to find them.
    """
    numbers = [c for c in columns if types.get(c) == pa.float64()]
    as_text = dict.fromkeys(numbers, pa.string())
    reader = _csv_reader(path, numbers, as_text, 100_000)
    seen = 0
    try:
        for batch in reader:
            frame = batch.to_pandas()
            for column in numbers:
                text = _as_text(frame[column])
                bad = pd.to_numeric(text, errors="coerce").isna() & text.notna()
                if bad.any():
                    position = int(np.flatnonzero(bad.to_numpy())[0])
                    raise _fail(
                        f"expected a number, found {text.iloc[position]!r}",
                        source=path,
                        column=column,
                        row=seen + position + 1,
                    )
            seen += len(frame)
    finally:
        reader.close()


def iter_table_batches(
    path: Path,
    columns: Sequence[str],
    *,
    types: dict[str, pa.DataType],
    batch_size: int = 200_000,
) -> Iterator[pd.DataFrame]:
    """Stream the named columns of a CSV or Parquet file as frames of about ``batch_size``
    rows, in file order. CSV columns are parsed with the given types in every batch, so a
    batch never guesses differently from the one before.
    """
    suffix = _suffix(path)
    present = table_columns(path)
    missing = [c for c in columns if c not in present]
    if missing:
        raise _fail(
            f"missing column(s) {', '.join(repr(c) for c in missing)}; the file has: "
            f"{', '.join(present)}",
            source=path,
            column=missing[0],
        )
    if suffix == ".parquet":
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=batch_size, columns=list(columns)):
            yield batch.to_pandas()
        return
    try:
        reader = _csv_reader(path, columns, types, batch_size)
        try:
            for batch in reader:
                yield batch.to_pandas()
        finally:
            reader.close()
    except pa.ArrowInvalid as exc:
        _bad_number(path, columns, types)
        raise _fail(
            f"cannot be read as the model expects: {str(exc).splitlines()[0]}", source=path
        ) from None


def score_file(
    model: Scorer,
    table: Path,
    output: Path,
    *,
    id_column: str | None = None,
    batch_size: int = 200_000,
) -> ScoreReport:
    """Score every row of a CSV or Parquet file and write ``id_column`` (or ``row``, the
    1-based row number) and ``score``, one row per input row, in the input's order.

    The input is streamed in batches, so a file larger than memory can be scored. The output
    format follows the output's extension (.csv, .csv.gz or .parquet).
    """
    started = time.perf_counter()
    table, output = Path(table), Path(output)
    out_suffix = _suffix(output)
    encoder = model.encoder_
    columns = list(encoder.columns_)
    wanted = [*columns, *([id_column] if id_column and id_column not in columns else [])]
    types = _arrow_types(encoder)
    if id_column:
        types[id_column] = pa.string()
    key_type = pa.string() if id_column else pa.int64()
    schema = pa.schema([(id_column or ROW_COLUMN, key_type), (SCORE_COLUMN, pa.float64())])
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    rows = 0
    batches = 0
    writer: pq.ParquetWriter | pacsv.CSVWriter
    sink = pa.OSFile(str(partial), "wb")
    stream = pa.CompressedOutputStream(sink, "gzip") if out_suffix == ".csv.gz" else sink
    if out_suffix == ".parquet":
        writer = pq.ParquetWriter(stream, schema)
    else:
        writer = pacsv.CSVWriter(stream, schema)
    try:
        for frame in iter_table_batches(table, wanted, types=types, batch_size=batch_size):
            matrix = encoder.transform(frame, source=table, first_row=rows + 1)
            scores = model.score_matrix(matrix)
            if id_column:
                keys = pa.array(_as_text(frame[id_column]), type=pa.string())
            else:
                keys = pa.array(np.arange(rows + 1, rows + len(frame) + 1), type=pa.int64())
            writer.write_table(
                pa.Table.from_arrays([keys, pa.array(scores, type=pa.float64())], schema=schema)
            )
            rows += len(frame)
            batches += 1
    except BaseException:
        _close(writer, stream, sink)
        partial.unlink(missing_ok=True)
        raise
    _close(writer, stream, sink)
    partial.replace(output)
    return ScoreReport(rows, output, id_column, time.perf_counter() - started, batches)


def _close(writer: pq.ParquetWriter | pacsv.CSVWriter, *streams: pa.NativeFile) -> None:
    writer.close()
    for stream in streams:
        if not stream.closed:
            stream.close()


def evaluate_propensity_table(
    model: PropensityModel,
    frame: pd.DataFrame,
    *,
    target: str,
    positive: str | None = None,
    source: Path | str | None = None,
) -> BinaryEvaluation:
    """Measure a fitted model on another labelled table (rows without a target left out)."""
    labels, _, _ = binary_target(frame, target, positive=positive, source=source)
    keep = labels >= 0
    matrix = model.transform_features(frame.loc[keep], source=source)
    return evaluate_binary(labels[keep], model.probability(matrix))
