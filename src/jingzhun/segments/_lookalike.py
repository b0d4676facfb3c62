"""``lookalike``: rank everybody outside a seed segment by how much they resemble it.

A gradient-boosted classifier (LightGBM) learns the seed against everybody else from the
customers' behaviour, interests and country; each customer's score comes from a model that
did not train on them (out-of-fold), so seed members and the rest are scored alike and
nobody's own label leaks into their score.

Two ways to choose the customers the model learns as "not like the seed":

- ``classifier``: everybody outside the seed. Simple, but the people we are looking for —
  customers like the seed who are not in it yet — are taught to the model as negatives.
- ``pu`` (the default): positive-unlabelled learning by the spy technique (Liu, Lee, Yu & Li,
  "Partially Supervised Classification of Text Documents", ICML 2002). Some seed members
  (spies) are hidden among the rest and a first model is fitted; the rest who score below
  nearly all spies are reliable negatives, and the final model learns the seed against those
  only. Elkan & Noto's calibration (KDD 2008) was the other candidate; it divides the
  classifier's scores by one constant, which leaves their order — and so the ranking, which
  is all a look-alike audience uses — exactly as ``classifier`` has it.

``evaluate_lookalike`` measures it: hide part of the seed, train on the rest, and count how
many hidden members land in the top N, against N / candidates for a random pick.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from jingzhun.core import NotFoundError
from jingzhun.engine import Engine
from jingzhun.segments._features import (
    BehaviourFeatures,
    check_as_of,
    check_name,
    load_behaviour,
    parameter_problem,
    replace_rows,
    utc_now,
)

LOOKALIKE_SCORES = "lookalike_scores"
LOOKALIKE_SCHEMA = pa.schema(
    [
        ("seed_segment", pa.string()),
        ("customer_key", pa.string()),
        ("score", pa.float64()),
        ("rank", pa.int64()),
        ("in_seed", pa.bool_()),
        ("built_at", pa.timestamp("us", tz="UTC")),
        ("as_of", pa.date32()),
        ("method", pa.string()),
        ("seed", pa.int64()),
    ]
)
# Tags that add what the behaviour columns do not hold. Tags computed from those columns
# (RFM segment, value tier, lifecycle) are left out: they would restate the seed's rule.
LOOKALIKE_TAGS = ("interest_1", "interest_2", "interest_3", "country", "gender")
MIN_SEED = 10  # five folds need two seed members each at least
_FOLDS = 5
_SPY_SHARE = 0.15  # Liu et al. (2002) hide 15 % of the positives as spies
# Reliable negatives score below the spies' 10th percentile: nine spies in ten, and so about
# nine hidden look-alikes in ten, stay out of the negatives.
_SPY_QUANTILE = 0.10
# Above this many, negatives are a seeded sample (everybody is still scored): enough for the
# model, and training time stays flat as the customer base grows.
MAX_TRAINING_NEGATIVES = 200_000
_MODEL_PARAMETERS: dict[str, Any] = {
    "n_estimators": 200,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 20,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}
_CURVE_SHARES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


class LookalikeMethod(StrEnum):
    """Whom the model learns as unlike the seed."""

    CLASSIFIER = "classifier"
    PU = "pu"


@dataclass(frozen=True)
class CurvePoint:
    """One audience size on the size–similarity curve.

    ``mean_score`` is the mean score of the top ``size``; ``min_score`` the score of the last
    one taken; ``similarity_retained`` the mean score over the seed's own (out-of-fold) mean
    score: how seed-like the audience still is as it grows.
    """

    size: int
    mean_score: float
    min_score: float
    similarity_retained: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        return {
            "size": self.size,
            "mean_score": round(self.mean_score, 4),
            "min_score": round(self.min_score, 4),
            "similarity_retained": round(self.similarity_retained, 4),
        }


@dataclass
class LookalikeResult:
    """What a look-alike run scored and wrote.

    ``scores`` has a row per customer (``customer_key``, ``score``, ``rank``, ``in_seed``;
    rank 1 = the most similar customer outside the seed, null for seed members); ``to_dict``
    leaves it out.
    """

    seed_segment: str
    method: LookalikeMethod
    seed: int
    as_of: dt.date
    built_at: dt.datetime
    seed_size: int
    candidates: int
    negatives: int
    seed_mean_score: float
    top: int | None
    audience: list[str]
    curve: list[CurvePoint]
    features: list[str]
    scores: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (the per-customer scores left out)."""
        return {
            "seed_segment": self.seed_segment,
            "method": self.method.value,
            "seed": self.seed,
            "as_of": self.as_of.isoformat(),
            "built_at": self.built_at.isoformat(),
            "seed_size": self.seed_size,
            "candidates": self.candidates,
            "negatives": self.negatives,
            "seed_mean_score": round(self.seed_mean_score, 4),
            "top": self.top,
            "audience": self.audience,
            "curve": [p.to_dict() for p in self.curve],
            "features": self.features,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class RecallPoint:
    """Hidden seed members found in the top N, against a random pick of N."""

    top_n: int
    hits: int
    recall: float
    random_recall: float
    lift: float
    precision: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        return {
            "top_n": self.top_n,
            "hits": self.hits,
            "recall": round(self.recall, 4),
            "random_recall": round(self.random_recall, 4),
            "lift": round(self.lift, 3),
            "precision": round(self.precision, 4),
        }


@dataclass
class LookalikeEvaluation:
    """How well a look-alike finds seed members it was not shown.

    ``auc`` is the chance that a hidden member outranks a random other candidate (0.5 is a
    random ranking).
    """

    method: LookalikeMethod
    seed: int
    seed_size: int
    hidden: int
    trained_on: int
    candidates: int
    auc: float
    points: list[RecallPoint]

    def point(self, top_n: int) -> RecallPoint:
        """The recall point of one N."""
        for p in self.points:
            if p.top_n == top_n:
                return p
        raise KeyError(top_n)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        return {
            "method": self.method.value,
            "seed": self.seed,
            "seed_size": self.seed_size,
            "hidden": self.hidden,
            "trained_on": self.trained_on,
            "candidates": self.candidates,
            "auc": round(self.auc, 4),
            "points": [p.to_dict() for p in self.points],
        }


def _method(method: str) -> LookalikeMethod:
    try:
        return LookalikeMethod(method)
    except ValueError:
        allowed = ", ".join(m.value for m in LookalikeMethod)
        raise parameter_problem(
            "lookalike", "method", f"unknown method {method!r}; allowed: {allowed}"
        ) from None


def _check_threads(where: str, threads: int) -> None:
    if threads < 1:
        raise parameter_problem(where, "threads", f"{threads}: use at least 1 thread")


def _design(features: BehaviourFeatures) -> pd.DataFrame:
    """Model input: standardised behaviour plus tags as categories (fixed, sorted levels)."""
    design = features.standardised.copy()
    for column in features.tags.columns:
        values = features.tags[column]
        levels = sorted(values.dropna().unique().tolist())
        design[f"tag_{column}"] = pd.Categorical(values, categories=levels)
    return design


def _seed_mask(features: BehaviourFeatures, seed_keys: Iterable[str], where: str) -> np.ndarray:
    """Seed members as a mask over the customers; unknown keys and tiny seeds are errors."""
    keys = list(dict.fromkeys(str(k) for k in seed_keys))
    if not keys:
        raise parameter_problem(
            where,
            "seed_keys",
            f"the seed has no customers; a look-alike needs at least {MIN_SEED} seed members",
        )
    index = features.standardised.index
    known = index.isin(keys)
    if int(known.sum()) < len(keys):
        unknown = sorted(set(keys) - set(index[known]))
        shown = ", ".join(unknown[:5]) + (", …" if len(unknown) > 5 else "")
        raise NotFoundError(
            f"{len(unknown)} of {len(keys)} seed keys are not customers in profiles "
            f"(as of {features.as_of.isoformat()}): {shown}; the seed must list "
            "customer_key values of the profiles table"
        )
    if len(keys) < MIN_SEED:
        raise parameter_problem(
            where,
            "seed_keys",
            f"the seed has {len(keys)} customers; a look-alike needs at least {MIN_SEED}",
        )
    if len(keys) >= len(index):
        raise parameter_problem(
            where,
            "seed_keys",
            f"the seed holds all {len(index)} customers; nobody is left to rank",
        )
    return np.asarray(known)


def _model(seed: int, threads: int) -> lgb.LGBMClassifier:
    return lgb.LGBMClassifier(random_state=seed, n_jobs=threads, **_MODEL_PARAMETERS)


def _probability(model: lgb.LGBMClassifier, rows: pd.DataFrame) -> np.ndarray:
    """The model's probability that each row belongs to the seed."""
    return np.asarray(model.predict_proba(rows))[:, 1]


def _capped(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """At most ``MAX_TRAINING_NEGATIVES`` of the rows in ``mask``, a seeded sample."""
    rows = np.flatnonzero(mask)
    if len(rows) <= MAX_TRAINING_NEGATIVES:
        return mask
    kept = np.zeros_like(mask)
    kept[rng.choice(rows, size=MAX_TRAINING_NEGATIVES, replace=False)] = True
    return kept


def _out_of_fold(
    design: pd.DataFrame, positives: np.ndarray, negatives: np.ndarray, seed: int, threads: int
) -> np.ndarray:
    """Scores for every customer from models that did not train on them.

    Training rows (positives and negatives) are scored by the fold model that held them out;
    everybody else by the mean of the fold models.
    """
    training = np.flatnonzero(positives | negatives)
    target = positives[training].astype("int64")
    outside = ~(positives | negatives)
    scores = np.zeros(len(design), dtype="float64")
    folds = StratifiedKFold(n_splits=_FOLDS, shuffle=True, random_state=seed)
    for fold, (fit_rows, held_rows) in enumerate(folds.split(training, target)):
        model = _model(seed + fold, threads).fit(design.iloc[training[fit_rows]], target[fit_rows])
        held = training[held_rows]
        scores[held] = _probability(model, design.iloc[held])
        if outside.any():
            scores[outside] += _probability(model, design[outside]) / _FOLDS
    return scores


def _reliable_negatives(
    design: pd.DataFrame,
    seed_mask: np.ndarray,
    rest: np.ndarray,
    rng: np.random.Generator,
    seed: int,
    threads: int,
) -> np.ndarray:
    """The spy step: the rest who score below nearly every seed member hidden among them."""
    members = np.flatnonzero(seed_mask)
    spies = np.zeros_like(seed_mask)
    spies[rng.choice(members, size=max(1, round(_SPY_SHARE * len(members))), replace=False)] = True
    labelled = seed_mask & ~spies
    unlabelled = rest | spies
    training = labelled | unlabelled
    model = _model(seed, threads).fit(design[training], labelled[training].astype("int64"))
    scores = _probability(model, design)
    threshold = float(np.quantile(scores[spies], _SPY_QUANTILE))
    return rest & (scores < threshold)


def _scores(
    features: BehaviourFeatures,
    seed_mask: np.ndarray,
    method: LookalikeMethod,
    seed: int,
    threads: int,
    warnings: list[str],
) -> tuple[np.ndarray, int, list[str]]:
    """Every customer's similarity to the seed, how many negatives trained the model, and
    the model's input columns.
    """
    design = _design(features)
    rng = np.random.default_rng(seed)
    rest = ~seed_mask
    negatives = rest
    if method is LookalikeMethod.PU:
        reliable = _reliable_negatives(design, seed_mask, _capped(rest, rng), rng, seed, threads)
        if int(reliable.sum()) < MIN_SEED:
            warnings.append(
                f"the spy step found {int(reliable.sum())} reliable negatives; "
                "everybody outside the seed was used instead (as method 'classifier')"
            )
        else:
            negatives = reliable
    negatives = _capped(negatives, rng)
    scores = _out_of_fold(design, seed_mask, negatives, seed, threads)
    return scores, int(negatives.sum()), list(design.columns)


def _ranked(scores: np.ndarray, keys: pd.Index, candidates: np.ndarray) -> np.ndarray:
    """Row numbers of the candidates, most similar first (ties by ``customer_key``)."""
    rows = np.flatnonzero(candidates)
    order = np.lexsort((keys.to_numpy()[rows].astype(str), -scores[rows]))
    return rows[order]


def _curve(
    ranked_scores: np.ndarray, seed_mean: float, sizes: Sequence[int] | None, seed_size: int
) -> list[CurvePoint]:
    total = len(ranked_scores)
    if sizes is None:
        wanted = {max(1, round(share * total)) for share in _CURVE_SHARES}
        wanted.add(min(seed_size, total))
    else:
        wanted = {int(s) for s in sizes if 1 <= int(s) <= total}
    cumulative = np.cumsum(ranked_scores)
    return [
        CurvePoint(
            size=n,
            mean_score=float(cumulative[n - 1] / n),
            min_score=float(ranked_scores[n - 1]),
            similarity_retained=float(cumulative[n - 1] / n / seed_mean) if seed_mean else 0.0,
        )
        for n in sorted(wanted)
    ]


def lookalike(
    engine: Engine,
    *,
    seed_segment: str,
    seed_keys: Iterable[str],
    top: int | None = None,
    method: str = "pu",
    seed: int = 0,
    columns: Sequence[str] | None = None,
    curve_sizes: Sequence[int] | None = None,
    as_of: dt.date | None = None,
    threads: int = 1,
) -> LookalikeResult:
    """Score everybody by similarity to a seed segment and rank those outside it.

    Parameters
    ----------
    engine
        The warehouse: reads ``profiles``, replaces this seed segment's rows of
        ``lookalike_scores``.
    seed_segment
        Name of the seed segment; the rows of ``lookalike_scores`` are stored under it.
    seed_keys
        The seed's members (``customer_key`` values of ``profiles``); at least ``MIN_SEED``.
    top
        Size of the audience returned in ``audience`` (every score is stored either way).
    method
        ``"pu"`` (spy-technique positive-unlabelled learning, the default) or
        ``"classifier"`` (seed against everybody else); see the module docstring.
    seed
        Seeds spies, folds, samples and the model: the same seed gives the same scores.
    columns
        Numeric profile columns to learn from (default ``DEFAULT_BEHAVIOUR_COLUMNS``).
    curve_sizes
        Audience sizes for the size–similarity curve (default: 0.5 % … 100 % of the
        candidates, and the seed's size).
    as_of
        The date the profiles must describe (default: whatever they describe).
    threads
        LightGBM threads. One by default: on a shared machine, threads waiting for busy
        cores made the demo's look-alike ten times slower (measured), and one thread gives
        the same scores on every machine.

    Raises
    ------
    SpecError
        An unknown method, a seed of fewer than ``MIN_SEED`` customers or of everybody,
        ``top`` below 1, a segment name that is not a lower-case identifier.
    NotFoundError
        No profiles, profiles of another date, or seed keys that are not customers.
    """
    check_name("lookalike", "seed_segment", seed_segment)
    chosen = _method(method)
    _check_threads("lookalike", threads)
    if top is not None and top < 1:
        raise parameter_problem("lookalike", "top", f"{top}: an audience has at least 1 customer")
    features = load_behaviour(engine, columns=columns, tag_columns=LOOKALIKE_TAGS)
    profiles_as_of = check_as_of(features, as_of)
    seed_mask = _seed_mask(features, seed_keys, f"lookalike {seed_segment}")
    warnings: list[str] = []
    scores, negatives, feature_names = _scores(features, seed_mask, chosen, seed, threads, warnings)

    keys = features.standardised.index
    ranked = _ranked(scores, keys, ~seed_mask)
    ranks = np.zeros(len(keys), dtype="int64")
    ranks[ranked] = np.arange(1, len(ranked) + 1)
    seed_mean = float(scores[seed_mask].mean())
    curve = _curve(scores[ranked], seed_mean, curve_sizes, int(seed_mask.sum()))
    if top is not None and top > len(ranked):
        warnings.append(f"top {top} asked, but only {len(ranked)} customers are outside the seed")
    audience = [str(k) for k in keys[ranked[:top]]] if top is not None else []
    built_at = utc_now()
    n = len(keys)
    rank = pa.array(ranks, pa.int64(), mask=seed_mask)  # seed members have no rank
    rows = pa.table(
        {
            "seed_segment": pa.array([seed_segment] * n, pa.string()),
            "customer_key": pa.array(keys.to_numpy(), pa.string()),
            "score": pa.array(scores, pa.float64()),
            "rank": rank,
            "in_seed": pa.array(seed_mask, pa.bool_()),
            "built_at": pa.array([built_at] * n, pa.timestamp("us", tz="UTC")),
            "as_of": pa.array([profiles_as_of] * n, pa.date32()),
            "method": pa.array([chosen.value] * n, pa.string()),
            "seed": pa.array([seed] * n, pa.int64()),
        }
    )
    replace_rows(engine, LOOKALIKE_SCORES, LOOKALIKE_SCHEMA, "seed_segment", seed_segment, rows)
    return LookalikeResult(
        seed_segment=seed_segment,
        method=chosen,
        seed=seed,
        as_of=profiles_as_of,
        built_at=built_at,
        seed_size=int(seed_mask.sum()),
        candidates=len(ranked),
        negatives=negatives,
        seed_mean_score=seed_mean,
        top=top,
        audience=audience,
        curve=curve,
        features=feature_names,
        scores=pd.DataFrame(
            {
                "score": scores,
                "rank": pd.array(rank.to_pylist(), dtype="Int64"),
                "in_seed": seed_mask,
            },
            index=keys,
        ),
        warnings=warnings,
    )


def evaluate_lookalike(
    engine: Engine,
    seed_keys: Iterable[str],
    *,
    hidden_fraction: float = 0.3,
    top_ns: Sequence[int] | None = None,
    method: str = "pu",
    seed: int = 0,
    columns: Sequence[str] | None = None,
    threads: int = 1,
) -> LookalikeEvaluation:
    """Hide part of the seed, train on the rest, and measure how many hidden members rank high.

    Nothing is written. Recall at N is the share of hidden members among the top N of the
    candidates (everybody outside the seed part trained on); a random pick of N finds
    N / candidates of them, so ``lift`` = recall / (N / candidates).

    Parameters
    ----------
    engine
        The warehouse holding ``profiles``.
    seed_keys
        The whole seed (``customer_key`` values).
    hidden_fraction
        Share of the seed hidden from training (seeded draw); between 0 and 1.
    top_ns
        Audience sizes to measure; default: the hidden part's size, the seed's size, and
        twice and five times the seed's size (those that fit in the candidates).
    method
        As for ``lookalike``.
    seed
        Seeds the hidden draw and the model.
    columns
        Numeric profile columns to learn from.
    threads
        As for ``lookalike``.

    Raises
    ------
    SpecError
        A hidden fraction outside (0, 1), or a part too small to train on or to measure.
    NotFoundError
        As for ``lookalike``.
    """
    chosen = _method(method)
    _check_threads("evaluate_lookalike", threads)
    if not 0 < hidden_fraction < 1:
        raise parameter_problem(
            "evaluate_lookalike",
            "hidden_fraction",
            f"{hidden_fraction}: hide a share of the seed between 0 and 1 (e.g. 0.3)",
        )
    features = load_behaviour(engine, columns=columns, tag_columns=LOOKALIKE_TAGS)
    seed_mask = _seed_mask(features, seed_keys, "evaluate_lookalike")
    members = np.flatnonzero(seed_mask)
    rng = np.random.default_rng(seed)
    hidden_count = math.floor(hidden_fraction * len(members))
    if hidden_count < 1 or len(members) - hidden_count < MIN_SEED:
        raise parameter_problem(
            "evaluate_lookalike",
            "hidden_fraction",
            f"hiding {hidden_fraction} of {len(members)} seed members leaves "
            f"{hidden_count} hidden and {len(members) - hidden_count} to train on; "
            f"at least 1 hidden and {MIN_SEED} to train on are needed",
        )
    hidden = np.zeros_like(seed_mask)
    hidden[rng.choice(members, size=hidden_count, replace=False)] = True
    trained = seed_mask & ~hidden
    scores, _, _ = _scores(features, trained, chosen, seed, threads, [])
    keys = features.standardised.index
    candidates = ~trained
    ranked = _ranked(scores, keys, candidates)
    found = np.cumsum(hidden[ranked])
    total = len(ranked)
    if top_ns is None:
        wanted = [hidden_count, len(members), 2 * len(members), 5 * len(members)]
    else:
        wanted = [int(n) for n in top_ns]
    sizes = sorted({n for n in wanted if 1 <= n <= total})
    if not sizes:
        raise parameter_problem(
            "evaluate_lookalike", "top_ns", f"no size between 1 and the {total} candidates"
        )
    points = []
    for n in sizes:
        hits = int(found[n - 1])
        recall = hits / hidden_count
        random_recall = n / total
        points.append(
            RecallPoint(
                top_n=n,
                hits=hits,
                recall=recall,
                random_recall=random_recall,
                lift=recall / random_recall,
                precision=hits / n,
            )
        )
    auc = float(roc_auc_score(hidden[candidates], scores[candidates]))
    return LookalikeEvaluation(
        method=chosen,
        seed=seed,
        seed_size=len(members),
        hidden=hidden_count,
        trained_on=int(trained.sum()),
        candidates=total,
        auc=auc,
        points=points,
    )
