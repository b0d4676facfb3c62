"""Predicted click-through rate: a logistic regression of the context (placement, hour, who
the person is, whether the ad matches their interests, how often they saw it) trained on the
impression and click logs, times each creative's own effect shrunk to a Beta prior.

``pCTR(i, c) = sigmoid(context_logit(i) + delta_c)``, with

- ``context_logit`` from ``LogisticRegression`` over one-hot features, kept as a table of
  weights so serving is a handful of dict look-ups (no model call on the request path);
- ``delta_c = logit((alpha + clicks_c) / (alpha + beta + n_c)) - logit((alpha + expected_c) /
  (alpha + beta + n_c))``: the creative's clicks against what the context model expected for
  its own impressions, both shrunk by the same Beta(alpha, beta) prior. ``alpha, beta`` are
  fitted by maximum likelihood of the beta-binomial over every creative with impressions
  (empirical Bayes). A new creative (no impressions) gets ``delta = 0``: the context model,
  whose average is the prior's mean CTR.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jingzhun.core import EngineError

FREQUENCY_BUCKETS = 4  # 0, 1, 2, 3+ earlier impressions of the campaign in 24 hours
FEATURES = ("placement", "hour", "age_band", "gender", "known", "interest_match", "frequency")
DEFAULT_CTR = 0.01


def logit(p: float) -> float:
    """log(p / (1 - p)), clipped away from 0 and 1."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def sigmoid(x: float) -> float:
    """The logistic function."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def frequency_bucket(earlier: int) -> int:
    """Earlier impressions of the campaign to the person in 24 hours, 3 or more as one."""
    return min(earlier, FREQUENCY_BUCKETS - 1)


@dataclass
class CtrModel:
    """The fitted weights (``feature -> level -> weight``), the Beta prior and per-creative
    effects. ``CtrModel()`` is the untrained default: every pCTR is ``DEFAULT_CTR``.
    """

    intercept: float = logit(DEFAULT_CTR)
    weights: dict[str, dict[str, float]] = field(default_factory=dict)
    alpha: float = 1.0
    beta: float = 99.0
    creative_effects: dict[str, float] = field(default_factory=dict)  # "campaign/creative"
    metrics: dict[str, Any] = field(default_factory=dict)

    # -- serving -------------------------------------------------------------------------------

    def level(self, feature: str, value: object) -> float:
        """The weight of one feature level (0 for a level the model never saw)."""
        table = self.weights.get(feature)
        return table.get(str(value), 0.0) if table else 0.0

    def person_logit(self, age_band: str | None, gender: str | None, known: bool) -> float:
        """The part of the logit that depends on the person only (computed once a person)."""
        return (
            self.level("age_band", age_band or "unknown")
            + self.level("gender", gender or "unknown")
            + self.level("known", int(known))
        )

    def context_logit(self, placement: str, hour: int) -> float:
        """The part that depends on the placement and hour only (once a request)."""
        return self.intercept + self.level("placement", placement) + self.level("hour", hour)

    def predict_one(
        self,
        base_logit: float,
        campaign: str,
        creative: str,
        interest_match: bool,
        earlier: int,
    ) -> float:
        """PCTR of one creative for a request whose person and context logits add to
        ``base_logit``.
        """
        x = (
            base_logit
            + self.level("interest_match", int(interest_match))
            + self.level("frequency", frequency_bucket(earlier))
            + self.creative_effects.get(f"{campaign}/{creative}", 0.0)
        )
        return sigmoid(x)

    def prior_mean(self) -> float:
        """The Beta prior's mean CTR: what a creative nobody has seen is expected to get."""
        return self.alpha / (self.alpha + self.beta)

    # -- batch ---------------------------------------------------------------------------------

    def context_logits(self, frame: pd.DataFrame) -> np.ndarray:
        """The context model's logit for each row of a feature frame (``FEATURES`` columns)."""
        out = np.full(len(frame), self.intercept, dtype=float)
        for feature in FEATURES:
            table = self.weights.get(feature, {})
            out += frame[feature].astype(str).map(table).fillna(0.0).to_numpy(dtype=float)
        return out

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """PCTR for each row of a feature frame with ``campaign`` and ``creative`` columns."""
        keys = frame["campaign"].astype(str) + "/" + frame["creative"].astype(str)
        effects = keys.map(self.creative_effects).fillna(0.0).to_numpy(dtype=float)
        x = self.context_logits(frame) + effects
        return 1.0 / (1.0 + np.exp(-x))

    # -- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready data (the artifact is plain JSON: nothing to unpickle)."""
        return {
            "intercept": self.intercept,
            "weights": self.weights,
            "alpha": self.alpha,
            "beta": self.beta,
            "creative_effects": self.creative_effects,
            "metrics": self.metrics,
        }

    def save(self, path: Path) -> Path:
        """Write the model as JSON; returns the path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> CtrModel:
        """Read a model written by ``save``."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                intercept=float(data["intercept"]),
                weights={
                    k: {str(a): float(b) for a, b in v.items()} for k, v in data["weights"].items()
                },
                alpha=float(data["alpha"]),
                beta=float(data["beta"]),
                creative_effects={str(k): float(v) for k, v in data["creative_effects"].items()},
                metrics=dict(data.get("metrics", {})),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EngineError(f"{path} is not a CTR model written by jingzhun ({exc})") from exc


def fit_beta_prior(impressions: np.ndarray, clicks: np.ndarray) -> tuple[float, float]:
    """Beta(alpha, beta) maximising the beta-binomial likelihood of clicks out of impressions
    over creatives (empirical Bayes); method of moments when there are too few creatives.
    """
    from scipy import optimize, stats

    n = np.asarray(impressions, dtype=float)
    k = np.asarray(clicks, dtype=float)
    keep = n > 0
    n, k = n[keep], k[keep]
    mean = float(k.sum() / n.sum()) if n.sum() > 0 else DEFAULT_CTR
    mean = min(max(mean, 1e-4), 0.5)
    if len(n) < 3:
        strength = 100.0  # a prior worth 100 impressions
        return mean * strength, (1 - mean) * strength

    def negative_log_likelihood(params: np.ndarray) -> float:
        a, b = np.exp(params)
        return -float(stats.betabinom.logpmf(k, n, a, b).sum())

    start = np.log([mean * 100, (1 - mean) * 100])
    result = optimize.minimize(negative_log_likelihood, start, method="Nelder-Mead")
    a, b = np.exp(result.x)
    # Creatives that barely differ make the likelihood flat in the prior's strength; cap it so
    # a creative's own clicks still count after some 10,000 impressions.
    strength = min(a + b, 10_000.0)
    m = a / (a + b)
    return float(m * strength), float((1 - m) * strength)


def fit_ctr(frame: pd.DataFrame, *, c: float = 1.0, seed: int = 0) -> CtrModel:
    """Fit the context model and the creative effects on a feature frame (one row per
    impression: ``FEATURES``, ``campaign``, ``creative``, ``clicked``).

    A time-ordered last fifth is held out for the metrics (log loss and AUC of the model and of
    the constant base rate); the model is then refitted on every row.
    """
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss, roc_auc_score

    if len(frame) == 0:
        raise EngineError("no impressions to train a CTR model on: run ads or `ads simulate` first")
    y = frame["clicked"].astype(int).to_numpy()
    if y.sum() == 0 or y.sum() == len(y):
        raise EngineError(
            f"{len(y)} impressions and {int(y.sum())} clicks: a CTR model needs both clicked "
            "and unclicked impressions"
        )
    records = frame[list(FEATURES)].astype(str).to_dict("records")

    def fit(rows: list[Mapping[str, str]], labels: np.ndarray) -> tuple[Any, Any]:
        vectorizer = DictVectorizer()
        x = vectorizer.fit_transform(rows)
        model = LogisticRegression(C=c, max_iter=1000, random_state=seed)
        model.fit(x, labels)
        return vectorizer, model

    cut = int(len(frame) * 0.8)
    metrics: dict[str, Any] = {"impressions": len(frame), "clicks": int(y.sum())}
    if 0 < y[:cut].sum() < cut and 0 < y[cut:].sum() < len(y) - cut:
        vectorizer, model = fit(records[:cut], y[:cut])
        p = model.predict_proba(vectorizer.transform(records[cut:]))[:, 1]
        base = np.full(len(p), y[:cut].mean())
        metrics.update(
            holdout_rows=len(p),
            holdout_auc=float(roc_auc_score(y[cut:], p)),
            holdout_log_loss=float(log_loss(y[cut:], p, labels=[0, 1])),
            base_rate_log_loss=float(log_loss(y[cut:], base, labels=[0, 1])),
        )
    vectorizer, model = fit(records, y)
    weights: dict[str, dict[str, float]] = {}
    for name, weight in zip(vectorizer.feature_names_, model.coef_[0], strict=True):
        feature, _, level = name.partition("=")
        weights.setdefault(feature, {})[level] = float(weight)
    ctr = CtrModel(intercept=float(model.intercept_[0]), weights=weights)
    # creative effects against what the context model expects for their own impressions
    expected = 1.0 / (1.0 + np.exp(-ctr.context_logits(frame)))
    per_creative = (
        frame.assign(_expected=expected, _clicked=y)
        .groupby(["campaign", "creative"], observed=True)
        .agg(n=("_clicked", "size"), k=("_clicked", "sum"), e=("_expected", "sum"))
        .reset_index()
    )
    alpha, beta = fit_beta_prior(per_creative["n"].to_numpy(), per_creative["k"].to_numpy())
    ctr.alpha, ctr.beta = alpha, beta
    for row in per_creative.itertuples(index=False):
        total = alpha + beta + float(row.n)
        effect = logit((alpha + float(row.k)) / total) - logit((alpha + float(row.e)) / total)
        ctr.creative_effects[f"{row.campaign}/{row.creative}"] = effect
    metrics.update(alpha=alpha, beta=beta, prior_mean_ctr=alpha / (alpha + beta))
    ctr.metrics = metrics
    return ctr
