"""Recommenders with the scikit-learn shape: constructors store settings, ``fit`` learns from
``Interactions``, learned state ends in ``_``.

``recommend(customers, n, scope=..., exclude=..., items=...)`` gives the top ``n`` items per
customer as ``customer_key, item_id, rank, score, method, reason``; ``similar_items(item, n)``
gives ``item_id, similar_item_id, rank, score, method``. Every method scores a batch of
customers against every item (dense scores, or sparse ones holding only its candidates), the
shared code masks what may not be shown and keeps the best ``n``; reasons are worked out for
the kept pairs only.

``scope``: ``all`` items, ``new`` (not bought by the customer before) or ``history`` (bought
before: re-purchase reminders). ``exclude``: a customer x item matrix (or pairs) never to
show; ``items``: a boolean mask of items that may be shown (in stock, not postage).
"""

from __future__ import annotations

import abc
import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from jingzhun.core import NotFoundError, SpecError, SpecProblem
from jingzhun.recommend._data import Interactions

SCOPES: tuple[str, ...] = ("all", "new", "history")
RESULT_COLUMNS = ("customer_key", "item_id", "rank", "score", "method", "reason")
_BATCH = 2048
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
_STOP_WORDS = frozenset({"and", "the", "for", "with", "set", "of", "in", "pack", "size"})


class Method(StrEnum):
    """The recommenders by the name the CLI and the ``method`` column use."""

    POPULARITY = "popularity"
    COOCCURRENCE = "cooccurrence"
    ALS = "als"
    RULES = "rules"
    CONTENT = "content"
    REPURCHASE = "repurchase"
    REPLENISHMENT = "replenishment"
    BLEND = "blend"


@dataclass(frozen=True)
class Candidates:
    """Top candidates of a batch in long form: batch row, item code, score and rank (1 = best)."""

    rows: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray

    @classmethod
    def empty(cls) -> Candidates:
        """No candidates."""
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none.copy(), np.zeros(0, dtype=np.float64), none.copy())


def _rank_within_rows(rows: np.ndarray, order: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Given entries sorted by row then best first: which to keep (the first ``k`` of each
    row) and their 1-based ranks.
    """
    sorted_rows = rows[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_rows)) + 1]
    lengths = np.diff(np.r_[starts, len(sorted_rows)])
    rank = np.arange(len(sorted_rows)) - np.repeat(starts, lengths)
    keep = rank < k
    return order[keep], rank[keep] + 1


def _best_first_by_row(
    rows: np.ndarray, cols: np.ndarray, data: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """The order of entries by row, best score first, ties by column.

    One sort of 64-bit keys ``row | inverted score | column`` (the score scaled to the bits
    left over): several times faster than a lexsort of millions of candidates. Scores closer
    than the key's resolution (2^-20 of the batch's range or finer) count as ties.
    """
    row_bits = max(1, int(shape[0] - 1).bit_length())
    col_bits = max(1, int(shape[1] - 1).bit_length())
    # A float64 holds 53 bits exactly: more score bits would round into the row bits.
    score_bits = min(52, 63 - row_bits - col_bits)
    if score_bits < 20:
        return np.lexsort((cols, -data, rows))
    lo, hi = float(data.min()), float(data.max())
    top = (1 << score_bits) - 1
    scaled = (data - lo) / (hi - lo) if hi > lo else np.zeros_like(data)
    inverted = np.clip(np.round((1.0 - scaled) * top), 0, top).astype(np.int64)
    keys = (rows.astype(np.int64) << (score_bits + col_bits)) | (inverted << col_bits) | cols
    order: np.ndarray = np.argsort(keys)
    return order


def top_entries(
    rows: np.ndarray, cols: np.ndarray, data: np.ndarray, shape: tuple[int, int], k: int
) -> Candidates:
    """The ``k`` best finite entries per row of a matrix given as entries, best first; ties
    by column.
    """
    data = np.asarray(data, dtype=np.float64)
    finite = np.isfinite(data)
    if not finite.all():
        rows, cols, data = rows[finite], cols[finite], data[finite]
    if len(rows) == 0:
        return Candidates.empty()
    order = _best_first_by_row(rows, cols, data, shape)
    kept, rank = _rank_within_rows(rows, order, k)
    return Candidates(
        rows[kept].astype(np.int64), cols[kept].astype(np.int64), data[kept], rank.astype(np.int64)
    )


def top_per_row(matrix: np.ndarray | sp.csr_matrix, k: int) -> Candidates:
    """The ``k`` best finite entries of each row (stored entries for a sparse matrix), best
    first; ties by item code.
    """
    if sp.issparse(matrix):
        csr = sp.csr_matrix(matrix)
        rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
        return top_entries(rows, csr.indices.astype(np.int64), csr.data, csr.shape, k)
    dense = np.asarray(matrix)
    if dense.size == 0:
        return Candidates.empty()
    width = dense.shape[1]
    kk = min(k, width)
    if kk < width:
        part = np.argpartition(-dense, kk - 1, axis=1)[:, :kk]
    else:
        part = np.broadcast_to(np.arange(width), dense.shape)
    rows = np.repeat(np.arange(dense.shape[0], dtype=np.int64), part.shape[1])
    cols = part.ravel().astype(np.int64)
    return top_entries(rows, cols, dense[rows, cols], dense.shape, k)


def pairs_matrix(
    interactions: Interactions, pairs: pd.DataFrame | sp.spmatrix | None
) -> sp.csr_matrix | None:
    """A customer x item boolean matrix from ``customer_key, item_id`` pairs (unknown keys and
    items are ignored) or a matrix as it is.
    """
    if pairs is None:
        return None
    if sp.issparse(pairs):
        return sp.csr_matrix(pairs, dtype=np.float32)
    assert isinstance(pairs, pd.DataFrame)
    customers = interactions.customer_codes.reindex(pairs["customer_key"].to_numpy(dtype=object))
    items = interactions.item_codes.reindex(pairs["item_id"].to_numpy(dtype=object))
    known = customers.notna().to_numpy() & items.notna().to_numpy()
    rows = customers.to_numpy()[known].astype(np.int64)
    cols = items.to_numpy()[known].astype(np.int64)
    data = np.ones(len(rows), dtype=np.float32)
    shape = (interactions.n_customers, interactions.n_items)
    matrix = sp.csr_matrix((data, (rows, cols)), shape=shape)
    matrix.data[:] = 1.0
    return matrix


def _holds(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Whether ``matrix[rows[i], cols[i]]`` is stored, for each i (one sorted search)."""
    csr = sp.csr_matrix(matrix)
    if csr.nnz == 0 or len(rows) == 0:
        return np.zeros(len(rows), dtype=bool)
    width = csr.shape[1]
    stored = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr)) * width
    stored = np.sort(stored + csr.indices)
    wanted = rows.astype(np.int64) * width + cols
    position = np.minimum(np.searchsorted(stored, wanted), len(stored) - 1)
    found: np.ndarray = stored[position] == wanted
    return found


def _restrict_sparse(
    scores: sp.csr_matrix,
    history: sp.csr_matrix,
    scope: str,
    exclude: sp.csr_matrix | None,
    allowed: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored entries (rows, columns, scores) a customer may be shown.

    Done on the entries themselves rather than by sparse products: no sorting of millions of
    candidates' indices.
    """
    csr = sp.csr_matrix(scores)
    rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    cols = csr.indices.astype(np.int64)
    data = csr.data.astype(np.float64)
    keep = np.isfinite(data)
    if scope == "new":
        keep &= ~_holds(history, rows, cols)
    elif scope == "history":
        keep &= _holds(history, rows, cols)
    if exclude is not None:
        keep &= ~_holds(exclude, rows, cols)
    if allowed is not None:
        keep &= allowed[cols]
    return rows[keep], cols[keep], data[keep]


def _restrict_dense(
    scores: np.ndarray,
    history: sp.csr_matrix,
    scope: str,
    exclude: sp.csr_matrix | None,
    allowed: np.ndarray | None,
) -> np.ndarray:
    """Set what a customer may not be shown to -inf (in place when ``scores`` is a fresh
    float32 array).
    """
    fresh = scores.dtype == np.float32 and scores.flags.writeable and scores.flags.owndata
    out = scores if fresh else np.array(scores, dtype=np.float32)
    if scope == "new":
        r, c = history.nonzero()
        out[r, c] = -np.inf
    elif scope == "history":
        r, c = history.nonzero()
        kept = out[r, c]
        out[:] = -np.inf
        out[r, c] = kept
    if exclude is not None:
        r, c = exclude.nonzero()
        out[r, c] = -np.inf
    if allowed is not None:
        out += np.where(allowed, np.float32(0), np.float32(-np.inf))  # a row, broadcast
    return out


@dataclass(frozen=True)
class LinkIndex:
    """A sparse "source → item" matrix (history column x item) kept as sorted codes
    ``source * n_items + item`` for fast look-ups of many single cells.
    """

    codes: np.ndarray
    values: np.ndarray
    n_items: int

    @classmethod
    def of(cls, link: sp.spmatrix) -> LinkIndex:
        """Index a matrix whose rows are history columns and whose columns are items."""
        csr = sp.csr_matrix(link, dtype=np.float64)
        csr.sum_duplicates()
        csr.sort_indices()
        source = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
        codes = source * csr.shape[1] + csr.indices
        return cls(codes, csr.data, csr.shape[1])

    def lookup(self, source: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``link[source[i], items[i]]`` for each i (0 where unset)."""
        wanted = source.astype(np.int64) * self.n_items + items
        position = np.searchsorted(self.codes, wanted)
        position = np.minimum(position, max(len(self.codes) - 1, 0))
        if len(self.codes) == 0:
            return np.zeros(len(wanted))
        found = self.codes[position] == wanted
        return np.where(found, self.values[position], 0.0)


def strongest_source(
    history: sp.csr_matrix, link: LinkIndex, rows: np.ndarray, items: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each pair (customer row, target item): the history column ``i`` (an item bought,
    a feature of the profile) with the largest ``history[row, i] * link[i, item]`` and that
    value (-1 and 0 when none links).
    """
    source = np.full(len(rows), -1, dtype=np.int64)
    value = np.zeros(len(rows))
    if len(rows) == 0:
        return source, value
    mine = sp.csr_matrix(history[rows])
    pair = np.repeat(np.arange(len(rows)), np.diff(mine.indptr))
    column = mine.indices.astype(np.int64)
    contribution = mine.data * link.lookup(column, items[pair])
    linked = contribution > 0
    pair, column, contribution = pair[linked], column[linked], contribution[linked]
    if len(pair) == 0:
        return source, value
    order = _best_first_by_row(pair, column, contribution, (len(rows), mine.shape[1]))
    pair, column, contribution = pair[order], column[order], contribution[order]
    first = np.r_[True, pair[1:] != pair[:-1]]
    source[pair[first]] = column[first]
    value[pair[first]] = contribution[first]
    return source, value


def cells(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The values ``matrix[rows[i], cols[i]]`` as a flat float array (zeros where unset)."""
    if len(rows) == 0:
        return np.zeros(0)
    return np.asarray(matrix[rows, cols]).ravel().astype(np.float64)


def _names(interactions: Interactions) -> np.ndarray:
    names: np.ndarray = interactions.catalogue["name"].astype(object).to_numpy(dtype=object)
    return names


def _day_text(interactions: Interactions, ages: Iterable[int]) -> list[str]:
    """ISO dates ``ages`` days before ``as_of``."""
    base = interactions.as_of.toordinal()
    return [dt.date.fromordinal(base - a).isoformat() for a in ages]


def _bought_reason(prefix: str, names: np.ndarray, sources: np.ndarray, fallback: str) -> list[str]:
    return [f"{prefix} {names[s]}" if s >= 0 else fallback for s in sources.tolist()]


class Recommender(abc.ABC):
    """Base of every recommender: fit on ``Interactions``, then recommend and explain."""

    method: ClassVar[str]
    interactions_: Interactions

    def fit(self, interactions: Interactions) -> Self:
        """Learn from the purchases as of ``interactions.as_of``; returns the recommender."""
        self.interactions_ = interactions
        self._fit(interactions)
        return self

    @abc.abstractmethod
    def _fit(self, interactions: Interactions) -> None:
        """Learn (subclasses)."""

    @abc.abstractmethod
    def _scores(self, rows: np.ndarray) -> np.ndarray | sp.csr_matrix:
        """Scores of customers ``rows`` for every item: dense (-inf = no opinion) or sparse
        with positive values for its candidates only.
        """

    def _explain(self, rows: np.ndarray, items: np.ndarray) -> list[str]:
        """Why each (customer row, item) pair was recommended (subclasses)."""
        return [self.method] * len(rows)

    def _similar(self, items: np.ndarray, k: int) -> Candidates:
        """The ``k`` items most like each of ``items`` (rows = position in ``items``)."""
        raise NotFoundError(
            f"method '{self.method}' has no notion of similar items; use cooccurrence, als, "
            "rules, content or blend"
        )

    def _check_fitted(self) -> Interactions:
        interactions = getattr(self, "interactions_", None)
        if interactions is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(interactions)")
        return interactions

    def candidates(
        self,
        rows: np.ndarray,
        k: int,
        *,
        scope: str = "all",
        exclude: sp.csr_matrix | None = None,
        allowed: np.ndarray | None = None,
    ) -> Candidates:
        """The ``k`` best items for a batch of customer rows, after the masks."""
        interactions = self._check_fitted()
        history = interactions.bought[rows]
        excluded = exclude[rows] if exclude is not None else None
        scores = self._scores(rows)
        if sp.issparse(scores):
            kept_rows, kept_cols, kept_scores = _restrict_sparse(
                sp.csr_matrix(scores), history, scope, excluded, allowed
            )
            return top_entries(kept_rows, kept_cols, kept_scores, scores.shape, k)
        dense = _restrict_dense(np.asarray(scores), history, scope, excluded, allowed)
        return top_per_row(dense, k)

    def customer_rows(self, customers: Iterable[str] | None) -> np.ndarray:
        """Row codes of ``customers`` (every customer with purchases when None)."""
        interactions = self._check_fitted()
        if customers is None:
            return interactions.buyers
        keys = list(customers)
        codes = interactions.customer_codes.reindex(pd.Index(keys, dtype=object))
        unknown = [k for k, c in zip(keys, codes.isna(), strict=True) if c]
        if unknown:
            shown = ", ".join(map(str, unknown[:5]))
            raise NotFoundError(
                f"{len(unknown)} customer_key(s) unknown as of "
                f"{interactions.as_of.isoformat()}: {shown}; give keys of customers known "
                "on the training date"
            )
        return codes.to_numpy().astype(np.int64)

    def recommend(
        self,
        customers: Iterable[str] | None = None,
        n: int = 10,
        *,
        scope: str = "all",
        exclude: pd.DataFrame | sp.spmatrix | None = None,
        items: np.ndarray | None = None,
        reasons: bool = True,
    ) -> pd.DataFrame:
        """Top ``n`` items per customer: ``customer_key, item_id, rank, score, method,
        reason``.

        Parameters
        ----------
        customers
            ``customer_key`` values (every customer with purchases when None).
        n
            Items per customer (fewer when fewer qualify).
        scope
            ``all``, ``new`` (only items the customer has not bought) or ``history`` (only
            items the customer bought before).
        exclude
            Pairs never to recommend: a DataFrame of ``customer_key, item_id`` or a customer x
            item matrix.
        items
            Boolean mask over item codes of items that may be recommended.
        reasons
            Work out the ``reason`` text (skip it for evaluation).
        """
        frame = self.top_frame(customers, n, scope=scope, exclude=exclude, items=items)
        if reasons:
            frame["reason"] = self.reasons_for(frame)
        return self.with_ids(frame)

    def top_frame(
        self,
        customers: Iterable[str] | None = None,
        n: int = 10,
        *,
        scope: str = "all",
        exclude: pd.DataFrame | sp.spmatrix | None = None,
        items: np.ndarray | None = None,
    ) -> pd.DataFrame:
        """``recommend`` in codes, without reasons: ``customer, item, rank, score, source``
        (``source``: which part of a blend gave most; 0 otherwise). Reasons can follow for the
        rows kept (``reasons_for``), which saves working them out for rows a rule drops.
        """
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        if n < 1:
            raise ValueError(f"n must be at least 1, not {n}")
        interactions = self._check_fitted()
        rows = self.customer_rows(customers)
        excluded = pairs_matrix(interactions, exclude)
        parts = []
        for start in range(0, len(rows), _BATCH):
            batch = rows[start : start + _BATCH]
            found, source = self._recommend_batch(
                batch, n, scope=scope, exclude=excluded, allowed=items
            )
            parts.append(
                pd.DataFrame(
                    {
                        "customer": batch[found.rows],
                        "item": found.items,
                        "rank": found.ranks,
                        "score": found.scores,
                        "source": source,
                    }
                )
            )
        if not parts:
            none = np.zeros(0, dtype=np.int64)
            return pd.DataFrame(
                {"customer": none, "item": none, "rank": none, "score": np.zeros(0),
                 "source": none}
            )  # fmt: skip
        return pd.concat(parts, ignore_index=True)

    def _recommend_batch(
        self,
        rows: np.ndarray,
        n: int,
        *,
        scope: str,
        exclude: sp.csr_matrix | None,
        allowed: np.ndarray | None,
    ) -> tuple[Candidates, np.ndarray]:
        """The top ``n`` of a batch and the part each came from (0 but for blends)."""
        found = self.candidates(rows, n, scope=scope, exclude=exclude, allowed=allowed)
        return found, np.zeros(len(found.rows), dtype=np.int64)

    def reasons_for(self, frame: pd.DataFrame) -> list[str]:
        """Reasons for the rows of a ``top_frame`` (customer and item codes, source part)."""
        if frame.empty:
            return []
        return self._explain(
            frame["customer"].to_numpy(dtype=np.int64), frame["item"].to_numpy(dtype=np.int64)
        )

    def with_ids(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A ``top_frame`` (with or without ``reason``) as ``customer_key, item_id, rank,
        score, method, reason``.
        """
        interactions = self._check_fitted()
        reasons = (
            frame["reason"].to_numpy(dtype=object) if "reason" in frame else np.full(len(frame), "")
        )
        return pd.DataFrame(
            {
                "customer_key": interactions.customer_keys[frame["customer"].to_numpy(np.int64)],
                "item_id": interactions.item_ids[frame["item"].to_numpy(np.int64)],
                "rank": frame["rank"].to_numpy(dtype=np.int64),
                "score": frame["score"].to_numpy(dtype=np.float64),
                "method": self.method,
                "reason": reasons,
            },
            columns=list(RESULT_COLUMNS),
        )

    def similar_items(
        self, item: str, n: int = 10, *, items: np.ndarray | None = None
    ) -> pd.DataFrame:
        """The ``n`` items most like ``item``: ``item_id, similar_item_id, rank, score,
        method``. ``items`` masks which items may be shown.
        """
        interactions = self._check_fitted()
        code = interactions.item_codes.get(item)
        if code is None:
            raise NotFoundError(
                f"item '{item}' is not in the catalogue as of {interactions.as_of.isoformat()}"
            )
        return self.similar_table(n, of=np.array([int(code)]), items=items)

    def similar_table(
        self, n: int = 10, *, of: np.ndarray | None = None, items: np.ndarray | None = None
    ) -> pd.DataFrame:
        """Similar items for every item (or the item codes ``of``), in the long form of
        ``similar_items``.
        """
        interactions = self._check_fitted()
        codes = np.arange(interactions.n_items) if of is None else np.asarray(of)
        parts = []
        for start in range(0, len(codes), _BATCH):
            batch = codes[start : start + _BATCH]
            found = self._similar(batch, n + 1 + (0 if items is None else int((~items).sum())))
            source = batch[found.rows]
            keep = found.items != source
            if items is not None:
                keep &= items[found.items]
            frame = pd.DataFrame(
                {"source": source[keep], "item": found.items[keep], "score": found.scores[keep]}
            )
            frame["rank"] = frame.groupby("source").cumcount() + 1
            parts.append(frame[frame["rank"] <= n])
        found_all = (
            pd.concat(parts, ignore_index=True)
            if parts
            else pd.DataFrame({"source": [], "item": [], "score": [], "rank": []})
        )
        ids = interactions.item_ids
        return pd.DataFrame(
            {
                "item_id": ids[found_all["source"].to_numpy(dtype=np.int64)],
                "similar_item_id": ids[found_all["item"].to_numpy(dtype=np.int64)],
                "rank": found_all["rank"].to_numpy(dtype=np.int64),
                "score": found_all["score"].to_numpy(dtype=np.float64),
                "method": self.method,
            }
        )


class Popularity(Recommender):
    """The baseline: the items most customers bought (in the last ``window_days``, or ever).

    Parameters
    ----------
    window_days
        Count buyers of the last this many days only; None counts every purchase.
    """

    method = Method.POPULARITY.value

    def __init__(self, window_days: int | None = None) -> None:
        self.window_days = window_days

    def _fit(self, interactions: Interactions) -> None:
        p = interactions.purchases
        if self.window_days is not None:
            p = p[p["age_days"] < self.window_days]
        pairs = p[["customer", "item"]].drop_duplicates()
        self.buyers_ = np.bincount(pairs["item"].to_numpy(), minlength=interactions.n_items)
        self.order_ = np.lexsort((np.arange(interactions.n_items), -self.buyers_))
        self.order_ = self.order_[self.buyers_[self.order_] > 0]

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        scores = np.where(self.buyers_ > 0, self.buyers_, -np.inf).astype(np.float32)
        return np.broadcast_to(scores, (len(rows), len(scores)))

    def candidates(
        self,
        rows: np.ndarray,
        k: int,
        *,
        scope: str = "all",
        exclude: sp.csr_matrix | None = None,
        allowed: np.ndarray | None = None,
    ) -> Candidates:
        """Everybody gets the same list: take the head of it, wide enough for the masks."""
        interactions = self._check_fitted()
        if scope == "history":
            return super().candidates(rows, k, scope=scope, exclude=exclude, allowed=allowed)
        order = self.order_ if allowed is None else self.order_[allowed[self.order_]]
        history = interactions.bought[rows]
        excluded = exclude[rows] if exclude is not None else None
        hidden = np.zeros(len(rows), dtype=np.int64)
        if scope == "new":
            hidden += np.diff(history.indptr)
        if excluded is not None:
            hidden += np.diff(excluded.indptr)
        head = order[: k + int(hidden.max(initial=0))]
        scores = np.broadcast_to(self.buyers_[head].astype(np.float32), (len(rows), len(head)))
        scores = np.array(scores)
        if scope == "new":
            scores[history[:, head].toarray() > 0] = -np.inf
        if excluded is not None:
            scores[excluded[:, head].toarray() > 0] = -np.inf
        found = top_per_row(scores, k)
        return Candidates(found.rows, head[found.items], found.scores, found.ranks)

    def _explain(self, rows: np.ndarray, items: np.ndarray) -> list[str]:
        when = f" in the last {self.window_days} days" if self.window_days else ""
        return [f"popular: {b:,} customers bought it{when}" for b in self.buyers_[items].tolist()]


class Repurchase(Recommender):
    """The re-purchase baseline: each customer's own most frequently bought items (orders
    holding the item), ties broken by the latest purchase. With ``half_life_days`` each order
    counts ``0.5 ** (age / half-life)``.
    """

    method = Method.REPURCHASE.value

    def __init__(self, half_life_days: float | None = None) -> None:
        self.half_life_days = half_life_days

    def _fit(self, interactions: Interactions) -> None:
        self.orders_ = interactions.matrix("orders")
        p = interactions.purchases
        last = p.groupby(["customer", "item"], sort=False)["age_days"].min()
        codes = last.index
        shape = (interactions.n_customers, interactions.n_items)
        self.last_age_ = sp.csr_matrix(
            (
                last.to_numpy(dtype=np.float64) + 1.0,
                (codes.get_level_values(0).to_numpy(), codes.get_level_values(1).to_numpy()),
            ),
            shape=shape,
        )
        if self.half_life_days is None:
            base = self.orders_.astype(np.float64)
        else:
            base = interactions.matrix("orders", self.half_life_days).astype(np.float64)
        # The tie-break adds less than one order: 1 / (2 + days since the last purchase).
        recency = self.last_age_.copy()
        recency.data = 1.0 / (1.0 + recency.data)
        self.scores_ = sp.csr_matrix(
            base + recency * (0.5 if self.half_life_days is None else 1e-6)
        )

    def _scores(self, rows: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix(self.scores_[rows])

    def _explain(self, rows: np.ndarray, items: np.ndarray) -> list[str]:
        interactions = self._check_fitted()
        times = cells(self.orders_, rows, items).astype(int)
        ages = cells(self.last_age_, rows, items).astype(int) - 1
        days = _day_text(interactions, ages.tolist())
        return [
            f"you bought it {t} time{'s' if t != 1 else ''}, last on {d}"
            for t, d in zip(times.tolist(), days, strict=True)
        ]


class ItemCooccurrence(Recommender):
    """Item-item co-occurrence: "customers who bought X also bought Y".

    Two items are similar when the same customers bought both: ``buyers(i, j) /
    (buyers(i) ** alpha * buyers(j) ** (1 - alpha))`` (``alpha = 0.5`` is the cosine); each
    item keeps its ``neighbours`` most similar items. A customer's score for an item is the
    sum of its similarities to what they bought, each bought item weighted by
    ``0.5 ** (age / half-life)`` of its latest purchase when ``half_life_days`` is set.

    ``neighbours=None`` keeps ``max_links`` links in all: 1,000 per item for a catalogue of up
    to 4,000 items, 200 for 20,000. More neighbours rank a little better (Online Retail's
    validation NDCG@10: 0.115 with 200, 0.123 with 1,000) but the candidates per customer
    grow with them: with 20,000 items, 1,000 neighbours made scoring 13 times slower than 200.
    """

    method = Method.COOCCURRENCE.value

    def __init__(
        self,
        alpha: float = 0.5,
        neighbours: int | None = None,
        half_life_days: float | None = 30.0,
        min_buyers: int = 1,
        max_links: int = 4_000_000,
    ) -> None:
        self.alpha = alpha
        self.neighbours = neighbours
        self.half_life_days = half_life_days
        self.min_buyers = min_buyers
        self.max_links = max_links

    def _fit(self, interactions: Interactions) -> None:
        bought = interactions.bought
        buyers = interactions.item_buyers.astype(np.float64)
        by_item = sp.csr_matrix(bought.T)
        norm_a = np.power(np.maximum(buyers, 1.0), self.alpha)
        norm_b = np.power(np.maximum(buyers, 1.0), 1.0 - self.alpha)
        self.neighbours_ = self.neighbours or max(
            10, min(1000, self.max_links // max(1, interactions.n_items))
        )
        parts = []
        block = max(1, 4_000_000 // max(1, interactions.n_items))
        for start in range(0, interactions.n_items, block):
            stop = min(start + block, interactions.n_items)
            counts = sp.csr_matrix(by_item[start:stop] @ bought, dtype=np.float64)
            counts = sp.coo_matrix(counts)
            keep = (counts.row + start != counts.col) & (counts.data >= self.min_buyers)
            rows, cols = counts.row[keep], counts.col[keep]
            data = counts.data[keep] / (norm_a[rows + start] * norm_b[cols])
            found = top_per_row(
                sp.csr_matrix((data, (rows, cols)), shape=(stop - start, interactions.n_items)),
                self.neighbours_,
            )
            parts.append((found.rows + start, found.items, found.scores))
        rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        cols = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        data = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0)
        shape = (interactions.n_items, interactions.n_items)
        # similarity_[i, j]: how much having bought i speaks for j.
        self.similarity_ = sp.csr_matrix((data, (rows, cols)), shape=shape)
        self.links_ = LinkIndex.of(self.similarity_)
        self.profile_ = (
            interactions.bought
            if self.half_life_days is None
            else _latest_decay(interactions, self.half_life_days)
        )

    def _scores(self, rows: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix(self.profile_[rows] @ self.similarity_)

    def _explain(self, rows: np.ndarray, items: np.ndarray) -> list[str]:
        interactions = self._check_fitted()
        source, _ = strongest_source(self.profile_, self.links_, rows, items)
        return _bought_reason(
            "bought together with", _names(interactions), source, "bought together often"
        )

    def _similar(self, items: np.ndarray, k: int) -> Candidates:
        return top_per_row(sp.csr_matrix(self.similarity_[items]), k)


def _latest_decay(interactions: Interactions, half_life_days: float) -> sp.csr_matrix:
    """Customer x item: ``0.5 ** (age / half-life)`` of the latest purchase of each item."""
    p = interactions.purchases
    last = p.groupby(["customer", "item"], sort=False)["age_days"].min()
    codes = last.index
    weight = np.power(0.5, last.to_numpy(dtype=np.float64) / half_life_days)
    return sp.csr_matrix(
        (
            weight.astype(np.float32),
            (codes.get_level_values(0).to_numpy(), codes.get_level_values(1).to_numpy()),
        ),
        shape=(interactions.n_customers, interactions.n_items),
    )


def als_factors(
    matrix: sp.csr_matrix,
    *,
    factors: int,
    regularization: float,
    alpha: float,
    iterations: int,
    random_state: int,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """User and item factors of a customer x item matrix by ``implicit``'s ALS (seeded)."""
    from implicit.cpu.als import AlternatingLeastSquares

    # implicit runs its own threads; BLAS threads on top of them only compete.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=random_state,
            num_threads=n_jobs or 0,
        )
        model.fit(sp.csr_matrix(matrix, dtype=np.float32), show_progress=False)
    return (
        np.asarray(model.user_factors, dtype=np.float32),
        np.asarray(model.item_factors, dtype=np.float32),
    )


class ImplicitALS(Recommender):
    """Matrix factorisation for implicit feedback (Hu, Koren & Volinsky 2008) through the
    ``implicit`` library's alternating least squares.

    Each customer x item cell bought gets confidence ``1 + alpha * weight`` (``weight``:
    ``binary``, or ``log`` = log(1 + orders)); ``factors``, ``regularization`` and
    ``iterations`` as in ``implicit.als.AlternatingLeastSquares``; ``random_state`` seeds the
    initial factors, so a fit is reproducible.
    """

    method = Method.ALS.value

    def __init__(
        self,
        factors: int = 32,
        regularization: float = 1.0,
        iterations: int = 15,
        alpha: float = 2.0,
        weight: str = "binary",
        random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.iterations = iterations
        self.alpha = alpha
        self.weight = weight
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _fit(self, interactions: Interactions) -> None:
        if self.weight == "binary":
            matrix = interactions.bought
        elif self.weight == "log":
            matrix = interactions.matrix("orders")
            matrix.data = np.log1p(matrix.data)
        else:
            raise ValueError(f"weight must be binary or log, not {self.weight!r}")
        self.user_factors_, self.item_factors_ = als_factors(
            matrix,
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        )
        norms = np.linalg.norm(self.item_factors_, axis=1, keepdims=True)
        self.item_unit_ = self.item_factors_ / np.maximum(norms, 1e-9)

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        scores: np.ndarray = self.user_factors_[rows] @ self.item_factors_.T
        return scores

    def _explain(self, rows: np.ndarray, items: np.ndarray) -> list[str]:
        interactions = self._check_fitted()
        history = sp.coo_matrix(interactions.bought[rows])
        source = np.full(len(rows), -1, dtype=np.int64)
        if history.nnz:
            sim = np.einsum(
                "ij,ij->i",
                self.item_unit_[history.col],
                self.item_unit_[items[history.row]],
            )
            order = np.lexsort((history.col, -sim, history.row))
            r, c = history.row[order], history.col[order]
            first = np.r_[True, r[1:] != r[:-1]]
            source[r[first]] = c[first]
        return _bought_reason(
            "customers with your taste buy it; close to",
            _names(interactions),
            source,
            "customers with your taste buy it",
        )

    def _similar(self, items: np.ndarray, k: int) -> Candidates:
        return top_per_row(self.item_unit_[items] @ self.item_unit_.T, k)


class AssociationRules(Recommender):
    """Association rules "X → Y" mined with mlxtend's FP-growth over baskets (orders).

    Rules with one item on each side and at least ``min_support`` (share of baskets holding
    both), ``min_confidence`` (share of baskets with X that hold Y) and ``min_lift`` are
    kept; a customer's score for Y adds the confidence of each rule whose X they bought.
    Longer antecedents seldom fire for a single customer and cost a pass per rule, so they
    are left out on purpose.
    """

    method = Method.RULES.value

    def __init__(
        self,
        min_support: float = 0.005,
        min_confidence: float = 0.2,
        min_lift: float = 1.0,
        max_items: int = 2000,
    ) -> None:
        self.min_support = min_support
        self.min_confidence = min_confidence
        self.min_lift = min_lift
        self.max_items = max_items

    def _fit(self, interactions: Interactions) -> None:
        from mlxtend.frequent_patterns import association_rules, fpgrowth

        p = interactions.purchases[["order", "item"]].drop_duplicates()
        orders = pd.factorize(p["order"])[0]
        n_orders = int(orders.max()) + 1 if len(orders) else 0
        per_item = np.bincount(p["item"].to_numpy(), minlength=interactions.n_items)
        frequent = np.flatnonzero(per_item >= self.min_support * max(n_orders, 1))
        frequent = frequent[np.argsort(-per_item[frequent], kind="stable")][: self.max_items]
        shape = (interactions.n_items, interactions.n_items)
        self.rules_ = pd.DataFrame(
            {"antecedent": [], "consequent": [], "support": [], "confidence": [], "lift": []}
        )
        self.confidence_ = sp.csr_matrix(shape, dtype=np.float64)
        self.lift_ = sp.csr_matrix(shape, dtype=np.float64)
        if len(frequent) < 2:
            self.links_ = LinkIndex.of(self.confidence_)
            return
        column = np.full(interactions.n_items, -1)
        column[frequent] = np.arange(len(frequent))
        in_frequent = column[p["item"].to_numpy()] >= 0
        baskets = sp.csr_matrix(
            (
                np.ones(int(in_frequent.sum()), dtype=bool),
                (orders[in_frequent], column[p["item"].to_numpy()[in_frequent]]),
            ),
            shape=(n_orders, len(frequent)),
        )
        # mlxtend wants plain Python strings as item names (pandas 3 gives its own str type).
        names = pd.Index([str(i) for i in frequent.tolist()], dtype=object)
        onehot = pd.DataFrame.sparse.from_spmatrix(baskets, columns=names)
        itemsets = fpgrowth(onehot, min_support=self.min_support, use_colnames=True, max_len=2)
        if len(itemsets) == 0 or itemsets["itemsets"].map(len).max() < 2:
            self.links_ = LinkIndex.of(self.confidence_)
            return
        with np.errstate(divide="ignore", invalid="ignore"):  # mlxtend's "certainty" 0/0
            rules = association_rules(
                itemsets,
                num_itemsets=n_orders,
                metric="confidence",
                min_threshold=self.min_confidence,
            )
        single = (rules["antecedents"].map(len) == 1) & (rules["consequents"].map(len) == 1)
        rules = rules[single & (rules["lift"] >= self.min_lift)]
        antecedent = np.array([int(next(iter(a))) for a in rules["antecedents"]], dtype=np.int64)
        consequent = np.array([int(next(iter(c))) for c in rules["consequents"]], dtype=np.int64)
        self.rules_ = pd.DataFrame(
            {
                "antecedent": interactions.item_ids[antecedent],
                "consequent": interactions.item_ids[consequent],
                "support": rules["support"].to_numpy(dtype=np.float64),
                "confidence": rules["confidence"].to_numpy(dtype=np.float64),
                "lift": rules["lift"].to_numpy(dtype=np.float64),
            }
        ).sort_values(["confidence", "lift"], ascending=False, ignore_index=True)
        conf = rules["confidence"].to_numpy(dtype=np.float64)
        lift = rules["lift"].to_numpy(dtype=np.float64)
        self.confidence_ = sp.csr_matrix((conf, (antecedent, consequent)), shape=shape)
        self.lift_ = sp.csr_matrix((lift, (antecedent, consequent)), shape=shape)
        self.links_ = LinkIndex.of(self.confidence_)

    def _scores(self, rows: np.ndarray) -> sp.csr_matrix:
        interactions = self._check_fitted()
        return sp.csr_matrix(interactions.bought[rows] @ self.confidence_)

    def _explain(self, rows: np.ndarray, items: np.ndarray) -> list[str]:
        interactions = self._check_fitted()
        source, confidence = strongest_source(interactions.bought, self.links_, rows, items)
        names = _names(interactions)
        lifts = cells(self.lift_, np.maximum(source, 0), items)
        return [
            f"{c:.0%} of orders with {names[s]} also hold it (lift {lift:.1f})"
            if s >= 0
            else "bought together often"
            for s, c, lift in zip(source.tolist(), confidence.tolist(), lifts.tolist(), strict=True)
        ]

    def _similar(self, items: np.ndarray, k: int) -> Candidates:
        return top_per_row(sp.csr_matrix(self.confidence_[items]), k)


def _tokens(name: str) -> set[str]:
    return {w for w in (m.lower() for m in _WORD.findall(name)) if w not in _STOP_WORDS}


class ContentBased(Recommender):
    """Content-based: items like the ones a customer buys, by category, brand and the words
    of product names (tags), without looking at other customers.

    Each item is a vector of its category (weight ``category_weight``), brand
    (``brand_weight``) and name words (TF-IDF, words on more than ``max_word_share`` of items
    dropped), scaled to length one. A customer's profile adds the vectors of what they
    bought, each weighted ``0.5 ** (age / half_life_days)`` by its latest purchase; an
    item's score is its cosine with the profile.
    """

    method = Method.CONTENT.value

    def __init__(
        self,
        category_weight: float = 1.0,
        brand_weight: float = 0.5,
        word_weight: float = 1.0,
        half_life_days: float = 90.0,
        max_word_share: float = 0.05,
    ) -> None:
        self.category_weight = category_weight
        self.brand_weight = brand_weight
        self.word_weight = word_weight
        self.half_life_days = half_life_days
        self.max_word_share = max_word_share

    def _fit(self, interactions: Interactions) -> None:
        catalogue = interactions.catalogue
        n = len(catalogue)
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        features: list[str] = []
        for column, weight, label in (
            ("category", self.category_weight, "category {}"),
            ("brand", self.brand_weight, "brand {}"),
        ):
            if column not in catalogue or weight <= 0:
                continue
            values = catalogue[column].astype(object).where(catalogue[column].notna(), None)
            codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
            present = codes >= 0
            rows.append(np.flatnonzero(present))
            cols.append(codes[present] + len(features))
            vals.append(np.full(int(present.sum()), weight))
            features.extend(label.format(u) for u in uniques)
        if self.word_weight > 0:
            words = [_tokens(str(name)) for name in catalogue["name"].tolist()]
            counts: dict[str, int] = {}
            for ws in words:
                for w in ws:
                    counts[w] = counts.get(w, 0) + 1
            vocabulary = sorted(w for w, c in counts.items() if 2 <= c <= self.max_word_share * n)
            index = {w: i + len(features) for i, w in enumerate(vocabulary)}
            idf = {w: math.log(n / counts[w]) for w in vocabulary}
            r, c, v = [], [], []
            for item, ws in enumerate(words):
                kept = [w for w in ws if w in index]
                if not kept:
                    continue
                scale = self.word_weight / math.sqrt(len(kept))
                for w in kept:
                    r.append(item)
                    c.append(index[w])
                    v.append(scale * idf[w] / max(idf.values()))
            rows.append(np.array(r, dtype=np.int64))
            cols.append(np.array(c, dtype=np.int64))
            vals.append(np.array(v, dtype=np.float64))
            features.extend(f"'{w}'" for w in vocabulary)
        self.features_ = np.array(features, dtype=object)
        matrix = sp.csr_matrix(
            (
                np.concatenate(vals) if vals else np.zeros(0),
                (
                    np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64),
                    np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64),
                ),
            ),
            shape=(n, len(features)),
        )
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        self.item_features_ = sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ matrix)
        self.feature_links_ = LinkIndex.of(self.item_features_.T)
        # Few features (categories, brands, a vocabulary): a dense feature x item matrix makes
        # scoring one sparse-times-dense product.
        self.features_by_item_ = (
            np.asarray(self.item_features_.T.toarray(), dtype=np.float32)
            if len(features) * n <= 50_000_000
            else None
        )
        self.profile_ = sp.csr_matrix(
            _latest_decay(interactions, self.half_life_days) @ self.item_features_
        )
        profile_norm = np.sqrt(np.asarray(self.profile_.multiply(self.profile_).sum(axis=1)))
        self.profile_ = sp.csr_matrix(
            sp.diags(1.0 / np.maximum(profile_norm.ravel(), 1e-12)) @ self.profile_
        )

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        # Nearly every item shares a category or word with a profile: dense is faster.
        profile = self.profile_[rows].astype(np.float32)
        if self.features_by_item_ is not None:
            scores = np.asarray(profile @ self.features_by_item_, dtype=np.float32)
        else:
            scores = np.asarray((profile @ self.item_features_.T).toarray(), np.float32)
        scores[scores <= 0] = -np.inf
        return scores

    def _explain(self, rows: np.ndarray, items: np.ndarray) -> list[str]:
        feature, _ = strongest_source(self.profile_, self.feature_links_, rows, items)
        return [
            f"like what you buy: {self.features_[f]}" if f >= 0 else "like what you buy"
            for f in feature.tolist()
        ]

    def _similar(self, items: np.ndarray, k: int) -> Candidates:
        return top_per_row(sp.csr_matrix(self.item_features_[items] @ self.item_features_.T), k)


# The Replenishment features, by family; see Replenishment.
_PAIR_FEATURES = (
    "orders", "first_days", "last_days", "decay_14", "decay_60", "decay_180", "units",
    "interval_days", "due", "share", "orders_since", "in_last_5", "since_x_share",
    "last_units", "last_units_ratio",
)  # fmt: skip
_CUSTOMER_FEATURES = ("customer_orders", "customer_last_days", "customer_first_days",
                      "customer_items", "customer_repeat_share")  # fmt: skip
_ITEM_FEATURES = ("item_buyers", "item_last_days", "item_buyers_7", "item_buyers_30",
                  "item_buyers_90", "item_repeat_share", "item_trend")  # fmt: skip
_RANK_FEATURES = (
    "orders_rank", "decay_14_rank", "decay_60_rank", "decay_180_rank",
    "orders_of_max", "decay_14_of_max", "decay_60_of_max", "decay_180_of_max",
)  # fmt: skip
FEATURES = (*_PAIR_FEATURES, *_CUSTOMER_FEATURES, *_ITEM_FEATURES, *_RANK_FEATURES, "als")


def _group_rank(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Percentile rank of each value within its group: 1 for the largest, 1/n the smallest."""
    ranked: np.ndarray = pd.Series(values).groupby(groups).rank(pct=True).to_numpy()
    return ranked


def _pairs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(codes, return_inverse=True)`` by hashing (several times faster)."""
    inverse, uniques = pd.factorize(codes, sort=True)
    return np.asarray(uniques, dtype=np.int64), inverse.astype(np.int64)


def replenishment_features(
    interactions: Interactions,
    customers: np.ndarray | None = None,
    *,
    user_factors: np.ndarray | None = None,
    item_factors: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per (customer, item bought before) with the features ``Replenishment`` ranks
    on, as of ``interactions.as_of``; ``customers`` limits the rows to those customer codes.
    """
    p = interactions.purchases
    n_items = interactions.n_items
    if customers is not None:
        wanted = np.zeros(interactions.n_customers, dtype=bool)
        wanted[customers] = True
        mine = p[wanted[p["customer"].to_numpy()]]
    else:
        mine = p
    customer = mine["customer"].to_numpy()
    item = mine["item"].to_numpy()
    age = mine["age_days"].to_numpy().astype(np.float64)
    units = mine["quantity"].to_numpy()
    pair = customer.astype(np.int64) * n_items + item
    codes, inverse = _pairs(pair)
    npairs = len(codes)

    def add(values: np.ndarray) -> np.ndarray:
        return np.bincount(inverse, weights=values, minlength=npairs)

    out = pd.DataFrame({"customer": codes // n_items, "item": codes % n_items})
    out["orders"] = np.bincount(inverse, minlength=npairs).astype(np.float64)
    last = np.full(npairs, np.inf)
    np.minimum.at(last, inverse, age)
    first = np.full(npairs, -np.inf)
    np.maximum.at(first, inverse, age)
    out["first_days"] = first
    out["last_days"] = last
    for half_life in (14, 60, 180):
        out[f"decay_{half_life}"] = add(np.power(0.5, age / half_life))
    out["units"] = add(units)
    span = first - last
    repeat = out["orders"].to_numpy() > 1
    interval = np.where(repeat, span / np.maximum(out["orders"].to_numpy() - 1, 1), np.nan)
    out["interval_days"] = interval
    with np.errstate(divide="ignore", invalid="ignore"):
        out["due"] = last / interval

    # The customer's orders, newest first: how many orders ago the item was last in one.
    orders = mine[["customer", "order", "age_days"]].drop_duplicates(["customer", "order"])
    orders = orders.sort_values(["customer", "age_days", "order"], ascending=[True, True, False])
    orders["back"] = orders.groupby("customer", sort=False).cumcount()
    back = pd.Series(orders["back"].to_numpy(), index=orders["order"].to_numpy())
    back_of_line = back.reindex(mine["order"].to_numpy()).to_numpy().astype(np.float64)
    since = np.full(npairs, np.inf)
    np.minimum.at(since, inverse, back_of_line)
    out["orders_since"] = since
    out["in_last_5"] = add((back_of_line < 5).astype(np.float64))
    per_customer = orders.groupby("customer", sort=False).agg(
        customer_orders=("order", "size"),
        customer_last_days=("age_days", "min"),
        customer_first_days=("age_days", "max"),
    )
    cust = per_customer.reindex(out["customer"].to_numpy())
    for column in ("customer_orders", "customer_last_days", "customer_first_days"):
        out[column] = cust[column].to_numpy(dtype=np.float64)
    grouped = out.groupby("customer", sort=False)
    out["customer_items"] = grouped["orders"].transform("size").to_numpy(dtype=np.float64)
    out["customer_repeat_share"] = (
        pd.Series(repeat.astype(np.float64)).groupby(out["customer"].to_numpy()).transform("mean")
    ).to_numpy()
    out["share"] = out["orders"] / out["customer_orders"]
    out["since_x_share"] = out["orders_since"] * out["share"]
    # Units of the latest purchase of the item, against the customer's usual units of it.
    latest = age == last[inverse]
    last_units = np.zeros(npairs)
    np.maximum.at(last_units, inverse[latest], units[latest])
    out["last_units"] = last_units
    out["last_units_ratio"] = last_units / (out["units"].to_numpy() / out["orders"].to_numpy())

    # Item figures from everybody's purchases.
    every = interactions.purchases
    all_pairs = every["customer"].to_numpy().astype(np.int64) * n_items + every["item"].to_numpy()
    all_codes, all_inverse = _pairs(all_pairs)
    all_last = np.full(len(all_codes), np.inf)
    np.minimum.at(all_last, all_inverse, every["age_days"].to_numpy().astype(np.float64))
    all_orders = np.bincount(all_inverse, minlength=len(all_codes))
    all_item = all_codes % n_items
    buyers = np.bincount(all_item, minlength=n_items).astype(np.float64)
    item_table = {
        "item_buyers": buyers,
        "item_last_days": np.full(n_items, np.inf),
        "item_buyers_7": np.bincount(all_item[all_last < 7], minlength=n_items),
        "item_buyers_30": np.bincount(all_item[all_last < 30], minlength=n_items),
        "item_buyers_90": np.bincount(all_item[all_last < 90], minlength=n_items),
        "item_repeat_share": np.bincount(all_item, weights=all_orders > 1, minlength=n_items)
        / np.maximum(buyers, 1),
    }
    np.minimum.at(item_table["item_last_days"], all_item, all_last)
    item_table["item_trend"] = (item_table["item_buyers_30"] + 1.0) / (
        item_table["item_buyers_90"] / 3.0 + 1.0
    )
    item_code = out["item"].to_numpy()
    for column, values in item_table.items():
        out[column] = np.asarray(values, dtype=np.float64)[item_code]

    groups = out["customer"].to_numpy()
    for column in ("orders", "decay_14", "decay_60", "decay_180"):
        values = out[column].to_numpy()
        out[f"{column}_rank"] = _group_rank(values, groups)
        out[f"{column}_of_max"] = (
            values / out.groupby("customer", sort=False)[column].transform("max").to_numpy()
        )
    if user_factors is not None and item_factors is not None:
        out["als"] = np.einsum("ij,ij->i", user_factors[groups], item_factors[item_code]).astype(
            np.float64
        )
    else:
        out["als"] = np.nan
    for column in ("first_days", "last_days", "orders_since", "item_last_days"):
        values = out[column].to_numpy()
        out[column] = np.where(np.isfinite(values), values, np.nan)
    return out


class Replenishment(Recommender):
    """Re-purchase reminders learnt from the customers' own histories.

    Which of the items a customer bought before will they buy again within ``horizon_days``?

    A LightGBM model ranks each (customer, item bought before) on ``FEATURES``: how often and
    how lately the customer bought it (counts, decayed counts, the gap since the last
    purchase against the customer's usual gap, orders since), what the customer is like
    (orders, items, share of items re-bought), what the item does for everybody (buyers in
    the last 7/30/90 days, share of buyers who re-buy, trend) and an ALS score. It learns
    without looking past ``as_of``: at ``windows`` cut-offs ``as_of - horizon - k * step``
    the features are computed as of the cut-off and the label is whether the customer bought
    the item in the ``horizon_days`` after it. Two models are trained, a LambdaRank and a
    binary one; the score is the average of their per-customer percentile ranks, and the
    binary model's probability goes into the reason.

    Parameters
    ----------
    horizon_days, windows, step_days
        What "again" means and how many cut-offs, how far apart, give the training rows.
    max_train_customers
        Customers sampled (seeded) per cut-off for training; all are scored.
    rounds, learning_rate, num_leaves, min_data_in_leaf
        LightGBM settings.
    als_factors
        Factors of the ALS score feature (0 leaves it out).
    random_state
        Seeds the sample, ALS and LightGBM.
    """

    method = Method.REPLENISHMENT.value
    #: The columns of ``_features`` the models learn from; a subclass that adds features
    #: (as ``benchmarks/recommend_repurchase_ceiling.py`` does) lists them here.
    feature_names: tuple[str, ...] = FEATURES

    def __init__(
        self,
        horizon_days: int = 70,
        windows: int = 8,
        step_days: int = 20,
        max_train_customers: int = 20_000,
        rounds: int = 100,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_data_in_leaf: int = 50,
        max_bin: int = 255,
        als_factors: int = 32,
        random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.horizon_days = horizon_days
        self.windows = windows
        self.step_days = step_days
        self.max_train_customers = max_train_customers
        self.rounds = rounds
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_data_in_leaf = min_data_in_leaf
        self.max_bin = max_bin
        self.als_factors = als_factors
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _als(
        self, bought: sp.csr_matrix, rows: np.ndarray | None = None
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """ALS factors of the customers ``rows`` of ``bought`` (all when None); the user
        factors come back full size, zero for customers left out.
        """
        if self.als_factors <= 0:
            return None, None
        matrix = bought if rows is None else bought[rows]
        user, item = als_factors(
            matrix,
            factors=self.als_factors,
            regularization=0.05,
            alpha=10.0,
            iterations=10,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        )
        if rows is None:
            return user, item
        full = np.zeros((bought.shape[0], user.shape[1]), dtype=np.float32)
        full[rows] = user
        return full, item

    def _features(
        self, interactions: Interactions, customers: np.ndarray | None = None
    ) -> pd.DataFrame:
        """The rows to rank, with ``feature_names``, as of ``interactions.as_of``: one per
        (customer in ``customers``, or any, item they bought before).
        """
        user_factors, item_factors = self._als(interactions.bought, customers)
        return replenishment_features(
            interactions, customers, user_factors=user_factors, item_factors=item_factors
        )

    def _training_rows(self, interactions: Interactions) -> pd.DataFrame:
        rng = np.random.default_rng(self.random_state)
        oldest = (
            int(interactions.purchases["age_days"].max()) if len(interactions.purchases) else -1
        )
        parts = []
        for k in range(self.windows):
            label_end = k * self.step_days  # days before as_of
            cut = label_end + self.horizon_days
            if cut > oldest:
                break  # no history before this cut-off
            past = interactions.until(interactions.as_of - dt.timedelta(days=cut))
            buyers = past.buyers
            if len(buyers) > self.max_train_customers:
                buyers = np.sort(rng.choice(buyers, self.max_train_customers, replace=False))
            rows = self._features(past, buyers)
            p = interactions.purchases
            ages = p["age_days"].to_numpy()
            later = p[(ages < cut) & (ages >= label_end)]
            n_items = interactions.n_items
            bought = np.unique(
                later["customer"].to_numpy().astype(np.int64) * n_items + later["item"].to_numpy()
            )
            pair = rows["customer"].to_numpy().astype(np.int64) * n_items + rows["item"].to_numpy()
            rows["label"] = np.isin(pair, bought).astype(np.float64)
            rows["window"] = k
            parts.append(rows)
        if not parts:
            raise NotFoundError(
                f"not enough history before {interactions.as_of.isoformat()} to learn "
                f"re-purchases: needs purchases more than {self.horizon_days} days earlier"
            )
        return pd.concat(parts, ignore_index=True)

    def _threads(self) -> int:
        # LightGBM's OpenMP threads spin while they wait: on a machine busy with other work
        # more threads are far slower (Online Retail's fit here: 27 s on one thread, 214 s on
        # all while the two cores were shared), so one thread unless n_jobs asks for more.
        return self.n_jobs if self.n_jobs is not None else 1

    def _params(self, objective: str) -> dict[str, Any]:
        return {
            "objective": objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "seed": self.random_state,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self._threads(),
            "verbose": -1,
            "lambdarank_truncation_level": 20,
            "max_bin": self.max_bin,
        }

    def _fit(self, interactions: Interactions) -> None:
        train = self._training_rows(interactions)
        train = train.sort_values(["window", "customer"], kind="stable", ignore_index=True)
        names = list(self.feature_names)
        features = train[names].to_numpy(dtype=np.float64)
        labels = train["label"].to_numpy()
        groups = train.groupby(["window", "customer"], sort=False).size().to_numpy()
        self.training_rows_ = len(train)
        self.training_positive_share_ = float(labels.mean()) if len(labels) else 0.0
        ranker_data = lgb.Dataset(features, labels, group=groups, feature_name=names)
        self.ranker_ = lgb.train(
            self._params("lambdarank"), ranker_data, num_boost_round=self.rounds
        )
        binary_data = lgb.Dataset(features, labels, feature_name=names)
        self.classifier_ = lgb.train(
            self._params("binary"), binary_data, num_boost_round=self.rounds
        )
        now = self._features(interactions)
        matrix = now[names].to_numpy(dtype=np.float64)
        groups_now = now["customer"].to_numpy()
        # Prediction is one parallel loop over rows (no per-round waits, unlike training):
        # every core helps on a large table (3.5M rows: 26 s on one thread, half on two).
        threads = self.n_jobs if self.n_jobs is not None else (0 if len(now) >= 200_000 else 1)
        ranked = _group_rank(
            np.asarray(self.ranker_.predict(matrix, num_threads=threads)), groups_now
        )
        probability = np.asarray(self.classifier_.predict(matrix, num_threads=threads))
        by_probability = _group_rank(probability, groups_now)
        score = (ranked + by_probability) / 2.0
        shape = (interactions.n_customers, interactions.n_items)
        coords = (groups_now, now["item"].to_numpy())
        self.scores_ = sp.csr_matrix((score, coords), shape=shape)
        self.probability_ = sp.csr_matrix((probability, coords), shape=shape)
        self.orders_ = sp.csr_matrix((now["orders"].to_numpy(), coords), shape=shape)
        self.last_days_ = sp.csr_matrix((now["last_days"].to_numpy() + 1.0, coords), shape=shape)

    def _scores(self, rows: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix(self.scores_[rows])

    def _explain(self, rows: np.ndarray, items: np.ndarray) -> list[str]:
        interactions = self._check_fitted()
        times = cells(self.orders_, rows, items).astype(int)
        ages = cells(self.last_days_, rows, items).astype(int) - 1
        chance = cells(self.probability_, rows, items)
        days = _day_text(interactions, ages.tolist())
        return [
            f"time to buy again? you bought it {t} time{'s' if t != 1 else ''}, last on {d}; "
            f"{c:.0%} chance within {self.horizon_days} days"
            for t, d, c in zip(times.tolist(), days, chance.tolist(), strict=True)
        ]

    def feature_importance(self) -> pd.DataFrame:
        """Gain of each feature in the two models, largest first."""
        return pd.DataFrame(
            {
                "feature": list(self.feature_names),
                "ranker_gain": self.ranker_.feature_importance("gain"),
                "classifier_gain": self.classifier_.feature_importance("gain"),
            }
        ).sort_values("ranker_gain", ascending=False, ignore_index=True)


@dataclass(frozen=True)
class BlendPart:
    """One part of a blend: a recommender, its weight and the items it may propose
    (``all``, ``new`` or ``history``).
    """

    recommender: Recommender
    weight: float
    scope: str = "all"


def _both(blend_scope: str, part_scope: str) -> str | None:
    """The scope a part works in inside a blend's scope; None when they exclude each other."""
    if blend_scope == "all":
        return part_scope
    if part_scope in ("all", blend_scope):
        return blend_scope
    return None


class Blend(Recommender):
    """A weighted rank blend: each part proposes its top ``depth`` items, an item scores
    ``sum(weight / (rank_offset + rank))`` over the parts that proposed it (reciprocal rank
    fusion, Cormack, Clarke & Büttcher 2009, with weights), and the reason is that of the part
    that gave the most.

    A part can be held to items the customer bought before (``history``: reminders) or not
    (``new``: discoveries); asked for new items only, a history part is left out, and so on.

    Parameters
    ----------
    parts
        ``BlendPart`` or ``(recommender, weight[, scope])``; unfitted recommenders are fitted
        by ``fit``, fitted ones (on the same data) are used as they are.
    depth
        Candidates taken from each part.
    rank_offset
        The constant in the fusion; smaller lets the first ranks count more.
    """

    method = Method.BLEND.value

    def __init__(
        self,
        parts: Sequence[BlendPart | tuple[Recommender, float] | tuple[Recommender, float, str]],
        depth: int = 50,
        rank_offset: float = 10.0,
    ) -> None:
        self.parts = parts
        self.depth = depth
        self.rank_offset = rank_offset

    def blend_parts(self) -> list[BlendPart]:
        """The parts as ``BlendPart`` values."""
        out = []
        for part in self.parts:
            if isinstance(part, BlendPart):
                out.append(part)
            else:
                out.append(BlendPart(*part))
            if out[-1].scope not in SCOPES:
                raise ValueError(
                    f"a blend part's scope must be one of {', '.join(SCOPES)}, "
                    f"not {out[-1].scope!r}"
                )
        return out

    def _fit(self, interactions: Interactions) -> None:
        parts = self.blend_parts()
        if not parts:
            raise ValueError("a blend needs at least one part")
        for part in parts:
            if getattr(part.recommender, "interactions_", None) is not interactions:
                part.recommender.fit(interactions)

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError("a blend fuses ranks; it has no scores of its own")

    def _part_candidates(
        self,
        rows: np.ndarray,
        k: int,
        scope: str,
        exclude: sp.csr_matrix | None,
        allowed: np.ndarray | None,
    ) -> tuple[list[Candidates], list[float], list[int]]:
        """Each usable part's candidates, its weight and its index among the parts."""
        depth = max(self.depth, k)
        found, weights, index = [], [], []
        for i, part in enumerate(self.blend_parts()):
            within = _both(scope, part.scope)
            if within is None:
                continue
            found.append(
                part.recommender.candidates(
                    rows, depth, scope=within, exclude=exclude, allowed=allowed
                )
            )
            weights.append(part.weight)
            index.append(i)
        return found, weights, index

    def candidates(
        self,
        rows: np.ndarray,
        k: int,
        *,
        scope: str = "all",
        exclude: sp.csr_matrix | None = None,
        allowed: np.ndarray | None = None,
    ) -> Candidates:
        """Fuse the parts' ranks for a batch of customer rows."""
        self._check_fitted()
        found, weights, _ = self._part_candidates(rows, k, scope, exclude, allowed)
        return self._fuse(found, weights, k)[0]

    def _fuse(
        self, found: list[Candidates], weights: Sequence[float], k: int
    ) -> tuple[Candidates, np.ndarray]:
        """Fused top ``k`` per row and, for each, the index of the part that gave most."""
        n_items = self._check_fitted().n_items
        rows = np.concatenate([f.rows for f in found])
        if len(rows) == 0:
            return Candidates.empty(), np.zeros(0, dtype=np.int64)
        items = np.concatenate([f.items for f in found])
        gain = np.concatenate(
            [w / (self.rank_offset + f.ranks) for f, w in zip(found, weights, strict=True)]
        )
        part = np.concatenate([np.full(len(f.rows), i) for i, f in enumerate(found)])
        pair = rows.astype(np.int64) * n_items + items
        codes, inverse = np.unique(pair, return_inverse=True)
        total = np.bincount(inverse, weights=gain, minlength=len(codes))
        order = np.lexsort((part, -gain, inverse))
        first = np.r_[True, inverse[order][1:] != inverse[order][:-1]]
        best_part = np.zeros(len(codes), dtype=np.int64)
        best_part[inverse[order][first]] = part[order][first]
        fused = sp.csr_matrix(
            (total, (codes // n_items, codes % n_items)),
            shape=(int(rows.max()) + 1, n_items),
        )
        top = top_per_row(fused, k)
        chosen = np.searchsorted(codes, top.rows.astype(np.int64) * n_items + top.items)
        return top, best_part[chosen]

    def _recommend_batch(
        self,
        rows: np.ndarray,
        n: int,
        *,
        scope: str,
        exclude: sp.csr_matrix | None,
        allowed: np.ndarray | None,
    ) -> tuple[Candidates, np.ndarray]:
        found, weights, index = self._part_candidates(rows, n, scope, exclude, allowed)
        top, source = self._fuse(found, weights, n)
        return top, np.asarray(index, dtype=np.int64)[source] if len(index) else source

    def reasons_for(self, frame: pd.DataFrame) -> list[str]:
        """Each row's reason is that of the part that gave it most."""
        reason = np.empty(len(frame), dtype=object)
        source = frame["source"].to_numpy(dtype=np.int64)
        for index, part in enumerate(self.blend_parts()):
            mine = source == index
            if mine.any():
                reason[mine] = part.recommender.reasons_for(frame[mine])
        return list(reason)

    def _similar(self, items: np.ndarray, k: int) -> Candidates:
        found = []
        weights = []
        for part in self.blend_parts():
            try:
                found.append(part.recommender._similar(items, max(self.depth, k)))
            except NotFoundError:
                continue
            weights.append(part.weight)
        if not found:
            return super()._similar(items, k)
        return self._fuse(found, weights, k)[0]


# The default blend: reminders from Replenishment among the items bought before, discoveries
# from co-occurrence and ALS among the others; weights tuned on Online Retail's validation
# split (README). Content at weight 0.25 added 1.7 % to the discovery NDCG there but costs a
# dense pass over the catalogue for every customer (over a minute of the 1M-customer run),
# so it is not a default part.
BLEND_PARTS: tuple[tuple[Method, float, str], ...] = (
    (Method.REPLENISHMENT, 4.0, "history"),
    (Method.COOCCURRENCE, 1.0, "new"),
    (Method.ALS, 1.0, "new"),
)


def make_recommender(method: str | Method, *, random_state: int = 0) -> Recommender:
    """A recommender by name with the settings tuned on Online Retail's validation split
    (see the package README); unknown names raise ``SpecError`` listing the methods.
    """
    try:
        name = Method(method)
    except ValueError:
        allowed = ", ".join(m.value for m in Method)
        raise SpecError(
            [SpecProblem(Path("<recommend>"), None, "method",
                         f"unknown method '{method}'; methods: {allowed}")]
        ) from None  # fmt: skip
    if name is Method.POPULARITY:
        return Popularity()
    if name is Method.REPURCHASE:
        return Repurchase()
    if name is Method.COOCCURRENCE:
        return ItemCooccurrence()
    if name is Method.ALS:
        return ImplicitALS(random_state=random_state)
    if name is Method.RULES:
        return AssociationRules()
    if name is Method.CONTENT:
        return ContentBased()
    if name is Method.REPLENISHMENT:
        return Replenishment(random_state=random_state)
    return Blend(
        [
            BlendPart(make_recommender(part, random_state=random_state), weight, scope)
            for part, weight, scope in BLEND_PARTS
        ]
    )
