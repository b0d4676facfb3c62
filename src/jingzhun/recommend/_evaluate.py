"""Offline evaluation on a time split: train on purchases up to ``split``, test on the
purchases after it.

Test customers bought before the split and after it. Two questions, two modes:

- ``discovery`` — new items: each method ranks only items the customer had not bought before
  the split; relevant are the items bought after the split that they had not bought before.
  The baseline is ``popularity`` (the most bought items the customer has not bought yet).
- ``repurchase`` — reminders: each method ranks only items the customer bought before the
  split; relevant are those bought again after it. The baseline is ``repurchase`` (each
  customer's own most frequently bought items, ties by the latest purchase): wholesale
  buyers re-order a lot, so plain popularity is no baseline there.
- ``all`` — the list as it is sent: every method ranks every item, relevant is everything
  bought after the split; baseline ``repurchase`` again (its lists hold only items bought
  before, so they are shorter for customers who bought fewer than k).

Metrics at ``k`` (10), averaged over the test customers who have at least one relevant item:
HR@k (share with a hit in the top k), NDCG@k (binary gains, ideal = min(relevant, k) hits
on top; Järvelin & Kekäläinen 2002), precision@k, recall@k; over all lists: coverage (share of
the items that may be shown that appear in some list) and novelty (mean self-information
``-log2(share of training customers who bought the item)`` of the items shown; Zhou et al.
2010). Items on the rules' ``never`` list are neither shown nor counted as relevant; items out
of stock at the split are not shown (a customer who bought one after it counts as a miss for
every method).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jingzhun.core import NotFoundError, SpecError, SpecProblem
from jingzhun.recommend._data import Interactions
from jingzhun.recommend._recommenders import Blend, Method, Recommender, make_recommender
from jingzhun.recommend._rules import BusinessRules, allowed_items


class EvaluationMode(StrEnum):
    """What a time-split evaluation asks: new items or re-purchases."""

    DISCOVERY = "discovery"
    REPURCHASE = "repurchase"
    ALL = "all"


BASELINES: dict[EvaluationMode, Method] = {
    EvaluationMode.DISCOVERY: Method.POPULARITY,
    EvaluationMode.REPURCHASE: Method.REPURCHASE,
    EvaluationMode.ALL: Method.REPURCHASE,
}
DEFAULT_METHODS: dict[EvaluationMode, tuple[Method, ...]] = {
    EvaluationMode.DISCOVERY: (
        Method.POPULARITY,
        Method.COOCCURRENCE,
        Method.ALS,
        Method.RULES,
        Method.CONTENT,
        Method.BLEND,
    ),
    EvaluationMode.REPURCHASE: (
        Method.REPURCHASE,
        Method.POPULARITY,
        Method.COOCCURRENCE,
        Method.ALS,
        Method.REPLENISHMENT,
        Method.BLEND,
    ),
    EvaluationMode.ALL: (
        Method.REPURCHASE,
        Method.POPULARITY,
        Method.COOCCURRENCE,
        Method.REPLENISHMENT,
        Method.BLEND,
    ),
}
_SCOPE = {
    EvaluationMode.DISCOVERY: "new",
    EvaluationMode.REPURCHASE: "history",
    EvaluationMode.ALL: "all",
}
_WHERE = Path("<recommend evaluate>")
_WHAT = {
    EvaluationMode.DISCOVERY: "an item new to them",
    EvaluationMode.REPURCHASE: "an item again",
    EvaluationMode.ALL: "anything",
}


@dataclass(frozen=True)
class MethodScores:
    """One method's figures on the test customers."""

    method: str
    hit_rate: float
    ndcg: float
    precision: float
    recall: float
    coverage: float
    novelty: float
    seconds: float


@dataclass(frozen=True)
class Evaluation:
    """A time-split evaluation: the split, who was tested, and each method's figures."""

    mode: str
    split: dt.date
    test_until: dt.date
    k: int
    customers: int
    relevant_items: int
    baseline: str
    scores: list[MethodScores] = field(default_factory=list)

    def score(self, method: str) -> MethodScores:
        """The figures of one method."""
        for s in self.scores:
            if s.method == method:
                return s
        known = ", ".join(s.method for s in self.scores)
        raise NotFoundError(f"method '{method}' was not evaluated; evaluated: {known}")

    def ratio(self, method: str) -> float:
        """NDCG@k of ``method`` over that of the baseline."""
        base = self.score(self.baseline).ndcg
        return self.score(method).ndcg / base if base > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` and benchmark files."""
        return {
            "mode": self.mode,
            "split": self.split.isoformat(),
            "test_until": self.test_until.isoformat(),
            "k": self.k,
            "customers": self.customers,
            "relevant_items": self.relevant_items,
            "baseline": self.baseline,
            "methods": [
                {
                    **{k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(s).items()},
                    "ndcg_vs_baseline": round(self.ratio(s.method), 3),
                }
                for s in self.scores
            ],
        }


def ndcg_at_k(hits: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k per customer from a (customers x k) hit matrix and relevant-item counts."""
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits[:, :k] * discount[: hits.shape[1]]).sum(axis=1)
    ideal_cum = np.r_[0.0, np.cumsum(discount)]
    ideal = ideal_cum[np.minimum(relevant, k)]
    out: np.ndarray = np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)
    return out


def score_lists(
    lists: pd.DataFrame,
    relevant: pd.DataFrame,
    *,
    k: int,
    item_buyers: np.ndarray,
    buyers: int,
    shown_items: int,
) -> dict[str, float]:
    """HR, NDCG, precision, recall, coverage and novelty of top-k lists.

    ``lists``: ``customer, item, rank`` (codes; rank 1 = first); ``relevant``: ``customer,
    item`` of the test customers' relevant items.
    """
    customers = np.unique(relevant["customer"].to_numpy())
    index = pd.Series(np.arange(len(customers)), index=customers)
    n_items = len(item_buyers)
    top = lists[lists["rank"] <= k]
    top = top[top["customer"].isin(customers)]
    wanted = set(
        (
            relevant["customer"].to_numpy().astype(np.int64) * n_items + relevant["item"].to_numpy()
        ).tolist()
    )
    pair = top["customer"].to_numpy().astype(np.int64) * n_items + top["item"].to_numpy()
    is_hit = np.fromiter((p in wanted for p in pair.tolist()), dtype=bool, count=len(pair))
    hits = np.zeros((len(customers), k))
    hits[index.reindex(top["customer"].to_numpy()).to_numpy(), top["rank"].to_numpy() - 1] = is_hit
    n_relevant = np.bincount(
        index.reindex(relevant["customer"].to_numpy()).to_numpy(), minlength=len(customers)
    )
    found = hits.sum(axis=1)
    shown = top["item"].to_numpy()
    share = np.maximum(item_buyers[shown], 1) / max(buyers, 1)
    return {
        "hit_rate": float((found > 0).mean()) if len(customers) else 0.0,
        "ndcg": float(ndcg_at_k(hits, n_relevant, k).mean()) if len(customers) else 0.0,
        "precision": float((found / k).mean()) if len(customers) else 0.0,
        "recall": float((found / np.maximum(n_relevant, 1)).mean()) if len(customers) else 0.0,
        "coverage": float(len(np.unique(shown)) / max(shown_items, 1)),
        "novelty": float(-np.log2(share).mean()) if len(shown) else 0.0,
    }


@dataclass(frozen=True)
class TimeSplit:
    """The training side of a split and the relevant test pairs of each mode."""

    train: Interactions
    split: dt.date
    test_until: dt.date
    relevant: dict[EvaluationMode, pd.DataFrame]


def time_split(
    interactions: Interactions,
    split: dt.date,
    *,
    test_until: dt.date | None = None,
    rules: BusinessRules | None = None,
) -> TimeSplit:
    """Cut the data at ``split``: training data as of it, test pairs after it (to
    ``test_until``, default the data's date) for each mode.
    """
    end = test_until or interactions.as_of
    if not split < end <= interactions.as_of:
        raise SpecError(
            [
                SpecProblem(
                    _WHERE,
                    None,
                    "split",
                    f"the split {split.isoformat()} must come before the end of the test "
                    f"period {end.isoformat()}, and that no later than the data "
                    f"({interactions.as_of.isoformat()})",
                )
            ]
        )
    data = interactions if end == interactions.as_of else interactions.until(end)
    train = data.until(split)
    if train.purchases.empty:
        raise NotFoundError(
            f"no purchases up to {split.isoformat()}: pick a later split date "
            f"(the data runs to {interactions.as_of.isoformat()})"
        )
    later = data.after(split)[["customer", "item"]].drop_duplicates()
    never = set((rules or BusinessRules()).never)
    if never:
        later = later[~pd.Series(train.item_ids[later["item"].to_numpy()]).isin(never).to_numpy()]
    later = later[np.isin(later["customer"].to_numpy(), train.buyers)]
    history = train.bought
    before = np.asarray(history[later["customer"].to_numpy(), later["item"].to_numpy()]).ravel() > 0
    relevant = {
        EvaluationMode.DISCOVERY: later[~before].reset_index(drop=True),
        EvaluationMode.REPURCHASE: later[before].reset_index(drop=True),
        EvaluationMode.ALL: later.reset_index(drop=True),
    }
    return TimeSplit(train=train, split=split, test_until=end, relevant=relevant)


def evaluate(
    data: TimeSplit,
    mode: EvaluationMode | str,
    *,
    recommenders: Mapping[str, Recommender] | None = None,
    methods: Sequence[str] | None = None,
    k: int = 10,
    rules: BusinessRules | None = None,
    random_state: int = 0,
) -> Evaluation:
    """Evaluate methods on a time split in one mode.

    Parameters
    ----------
    data
        From ``time_split``.
    mode
        ``discovery`` or ``repurchase``.
    recommenders
        Recommenders by name, fitted on ``data.train`` or not (they are fitted when not);
        the baseline of the mode is added when missing.
    methods
        Names of methods to build with their tuned settings when ``recommenders`` is None
        (default: every method that fits the mode).
    k
        List length.
    rules
        The business rules; only the ``never`` list and the in-stock rule apply
        (``BusinessRules.for_ranking``).
    random_state
        Seed of the methods built here.
    """
    try:
        mode = EvaluationMode(mode)
    except ValueError:
        modes = ", ".join(m.value for m in EvaluationMode)
        raise SpecError(
            [SpecProblem(_WHERE, None, "mode", f"unknown mode '{mode}'; modes: {modes}")]
        ) from None
    ranking_rules = (rules or BusinessRules()).for_ranking()
    baseline = BASELINES[mode].value
    chosen: dict[str, Recommender] = dict(recommenders or {})
    if not chosen:
        names = list(methods or [m.value for m in DEFAULT_METHODS[mode]])
        chosen = {name: make_recommender(name, random_state=random_state) for name in names}
    if baseline not in chosen:
        chosen = {baseline: make_recommender(baseline, random_state=random_state), **chosen}
    blend = chosen.get(Method.BLEND.value)
    if recommenders is None and isinstance(blend, Blend):
        # The default blend's parts are built as make_recommender builds them alone, so the
        # ones evaluated alone too are fitted once and shared.
        blend.parts = [
            replace(part, recommender=chosen.get(part.recommender.method, part.recommender))
            for part in blend.blend_parts()
        ]
    train = data.train
    relevant = data.relevant[mode]
    if relevant.empty:
        raise NotFoundError(
            f"no test customer bought {_WHAT[mode]} "
            f"between {data.split.isoformat()} and {data.test_until.isoformat()}"
        )
    customers = np.unique(relevant["customer"].to_numpy())
    keys = list(train.customer_keys[customers])
    allowed = allowed_items(train, ranking_rules)
    scores = []
    for name, recommender in chosen.items():
        started = time.perf_counter()
        if getattr(recommender, "interactions_", None) is not train:
            recommender.fit(train)
        found = recommender.recommend(keys, k, scope=_SCOPE[mode], items=allowed, reasons=False)
        seconds = time.perf_counter() - started
        lists = pd.DataFrame(
            {
                "customer": train.customer_codes.reindex(
                    found["customer_key"].to_numpy(dtype=object)
                ).to_numpy(),
                "item": train.item_codes.reindex(
                    found["item_id"].to_numpy(dtype=object)
                ).to_numpy(),
                "rank": found["rank"].to_numpy(),
            }
        )
        figures = score_lists(
            lists,
            relevant,
            k=k,
            item_buyers=train.item_buyers,
            buyers=len(train.buyers),
            shown_items=int(allowed.sum()),
        )
        scores.append(MethodScores(method=name, seconds=round(seconds, 2), **figures))
    return Evaluation(
        mode=mode.value,
        split=data.split,
        test_until=data.test_until,
        k=k,
        customers=len(customers),
        relevant_items=len(relevant),
        baseline=baseline,
        scores=scores,
    )
