"""Multi-touch attribution: which channels get the credit for conversions, seven ways.

A touch log has one row per marketing touch: a journey (or customer) id, a timestamp, a
channel, and either a conversion flag per journey or conversion events in the same log.
``journeys_from_touches`` turns it into *paths* (the touches before one conversion, or the
touches of a journey that did not convert); each model then splits every path's conversions
over its channels. Credits are conversions (and value, when the log carries one); every model
hands out exactly the conversions of paths that have at least one touch.

- ``first_touch`` / ``last_touch``: all of a path's conversions to its first / last touch.
- ``linear``: an equal share to every touch (a channel touched twice gets two shares).
- ``time_decay(half_life)``: touch weight ``2 ** (-(conversion time - touch time) / half_life)``,
  normalised per path (Google Analytics' time-decay rule; half-life 7 days by default).
- ``position_based(first=0.4, last=0.4)``: the "U-shaped" rule: 40% to the first touch, 40%
  to the last, the rest split over the touches between; a path of two touches splits
  ``first : last``, a path of one gives it everything.
- ``markov_removal_effect(order)``: the paths as a Markov chain with states ``(start)``,
  channel states (the last ``order`` channels) and the absorbing ``(conversion)`` and
  ``(null)``; the removal effect of a channel is ``1 - P(conversion without it) / P(conversion)``
  where removing a channel sends every transition into a state holding it to ``(null)``; the
  conversions are split in proportion to the removal effects (Anderl, Becker, von Wangenheim &
  Schumann 2016, "Mapping the customer journey: Lessons learned from graph-based online
  attribution modeling", IJRM 33(3); the worked example of Bryl' 2016, "Marketing
  Multi-Channel Attribution model with R", is a test).
- ``shapley``: a cooperative game per distinct channel set ``T`` that paths touched, whose worth
  ``v(S)`` for ``S ⊆ T`` is the conversion rate of the paths that touched exactly the channels
  ``S`` (``v(∅) = 0``: a touch log has no untouched paths; a set no path touched is worth 0).
  Each path's conversions are split by the Shapley values of its set's game, so credit of
  channel ``c`` is ``Σ_T n_T φ_c(T)`` and the credits add up to the conversions (Shapley's
  efficiency). The characteristic function over exact channel sets follows Zhao, Mahboobi &
  Bagheri 2018, "Shapley Value Methods for Attribution Modeling in Online Advertising",
  arXiv:1804.05327, with conversion rates as worth as in Dalessandro et al. 2012, "Causally
  Motivated Attribution for Online Advertising", ADKDD. Computed exactly through the Harsanyi
  dividends of all ``2^n`` subsets (a Möbius and a zeta transform), so ``n`` is capped at 12.

``simulate_journeys`` draws journeys where each channel the journey touched adds a known
amount to its conversion probability, so every channel's incremental conversions are known;
``share_errors`` measures how far each model's credit shares lie from those true shares.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import sparse
from scipy.sparse.linalg import spsolve

from jingzhun.core import IngestError, SpecError, SpecProblem

MAX_SHAPLEY_CHANNELS = 12
DEFAULT_HALF_LIFE = dt.timedelta(days=7)
START_STATE = "(start)"
CONVERSION_STATE = "(conversion)"
NULL_STATE = "(null)"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class AttributionModel(StrEnum):
    """The attribution models ``attribute`` runs, by name."""

    FIRST_TOUCH = "first_touch"
    LAST_TOUCH = "last_touch"
    LINEAR = "linear"
    TIME_DECAY = "time_decay"
    POSITION_BASED = "position_based"
    MARKOV = "markov"
    SHAPLEY = "shapley"


ALL_MODELS: tuple[AttributionModel, ...] = tuple(AttributionModel)


# -- the touch log as paths -------------------------------------------------------------------


@dataclass(frozen=True)
class Journeys:
    """A touch log as paths ready for attribution.

    ``touches`` has one row per touch, ordered by path then time: ``path`` (0..n-1),
    ``position`` (0 = first touch), ``length`` (touches in the path), ``channel`` (text),
    ``seconds`` (the touch time as seconds since 1970, UTC). ``paths`` has one row per path
    (index = path): ``journey`` (the id in the log), ``conversions``, ``value`` and
    ``converted_at_seconds`` (the conversion time: the conversion event, or the last touch when
    the log carries a flag). ``channels`` are sorted. Conversions that no touch preceded
    (a conversion event first in its journey, or right after another) cannot be credited to
    any channel; they are counted in ``unattributed_conversions``.
    """

    touches: pd.DataFrame
    paths: pd.DataFrame
    channels: tuple[str, ...]
    has_value: bool = False
    unattributed_conversions: float = 0.0
    unattributed_value: float = 0.0

    @property
    def conversions(self) -> float:
        """Conversions of paths with touches: what every model hands out."""
        return float(self.paths["conversions"].sum())

    @property
    def value(self) -> float:
        """Value of those conversions (0 when the log carries none)."""
        return float(self.paths["value"].sum())


def _text_column(
    frame: pd.DataFrame, column: str, source: Path, row_offset: int, what: str
) -> npt.NDArray[np.object_]:
    raw = frame[column]
    missing = raw.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise IngestError(
            source,
            f"the {what} is empty; every touch needs one",
            row=row + row_offset,
            column=column,
        )
    return raw.astype(str).to_numpy(dtype=object)


def _time_column(frame: pd.DataFrame, column: str, source: Path, row_offset: int) -> FloatArray:
    """A time column as float seconds since 1970 UTC (naive times are taken as UTC)."""
    raw = frame[column]
    missing = raw.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise IngestError(
            source, "the time is empty; every touch needs one", row=row + row_offset, column=column
        )
    parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise IngestError(
            source,
            f"'{raw.iloc[row]}' is not a date and time",
            row=row + row_offset,
            column=column,
            hint="write times like 2024-03-01 14:30:00 (UTC unless an offset is given)",
        )
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    return ((parsed - epoch) / pd.Timedelta(seconds=1)).to_numpy(dtype=float)


def _amount_column(
    frame: pd.DataFrame, column: str, source: Path, row_offset: int, what: str
) -> FloatArray:
    """A non-negative number per row; an empty cell counts as 0."""
    raw = frame[column]
    if raw.dtype == bool:
        raw = raw.astype(float)
    values = pd.to_numeric(raw, errors="coerce")
    bad = (values.isna() & raw.notna()).to_numpy()
    numbers = values.fillna(0.0).to_numpy(dtype=float)
    bad = bad | ~np.isfinite(numbers)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise IngestError(
            source,
            f"'{raw.iloc[row]}' is not a number; '{column}' holds the {what}",
            row=row + row_offset,
            column=column,
        )
    negative = numbers < 0
    if negative.any():
        row = int(np.flatnonzero(negative)[0])
        raise IngestError(
            source,
            f"{numbers[row]:g} is negative; the {what} cannot be",
            row=row + row_offset,
            column=column,
        )
    return numbers


def journeys_from_touches(
    touches: pd.DataFrame,
    *,
    journey_col: str = "journey_id",
    time_col: str = "timestamp",
    channel_col: str = "channel",
    conversion_col: str | None = "converted",
    conversion_event: str | None = None,
    value_col: str | None = None,
    source: Path | str = "<touches>",
    row_offset: int = 2,
) -> Journeys:
    """Check a touch log and cut it into paths.

    Two layouts are read. With ``conversion_col`` (a flag or count per row; an empty cell
    counts as 0), a journey is one path and its conversions are the largest value on its rows,
    so the flag may be repeated on every row or written on one; its value is the largest
    ``value_col`` on its rows; its conversion time is its last touch. With
    ``conversion_event``, rows whose channel equals it are conversions (their ``value_col`` is
    the value) and every conversion closes a path of the touches since the previous one;
    touches after the last conversion form a path that did not convert; a touch at the same
    time as a conversion comes before it.

    Parameters
    ----------
    touches
        One row per touch (and per conversion event).
    source, row_offset
        The file named in errors, and what to add to a 0-based row position to name its row
        (2 for a CSV with a header line, as ingest counts).

    Raises
    ------
    IngestError
        A column is missing, the log has no touches, or a row has an empty id, time or
        channel, a time that is not one, or a conversion or value that is not a non-negative
        number; the error names the row and the column.
    SpecError
        Both or neither of ``conversion_col`` and ``conversion_event``.
    """
    path = Path(source)
    if (conversion_col is None) == (conversion_event is None):
        raise SpecError(
            [
                SpecProblem(
                    path,
                    None,
                    "conversion",
                    "give a conversion column (a flag per journey) or a conversion event "
                    "(a channel value that marks conversions), not both or neither",
                )
            ]
        )
    header = [str(c) for c in touches.columns]
    wanted = [journey_col, time_col, channel_col]
    wanted += [c for c in (conversion_col, value_col) if c is not None]
    for column in wanted:
        if column not in header:
            raise IngestError(
                path, f"no column '{column}'", column=column, hint=f"the header has: {header}"
            )
    if touches.empty:
        raise IngestError(path, "the touch log has no rows", hint="one row per touch is expected")

    journey = _text_column(touches, journey_col, path, row_offset, "journey id")
    channel = _text_column(touches, channel_col, path, row_offset, "channel")
    seconds = _time_column(touches, time_col, path, row_offset)
    value = (
        _amount_column(touches, value_col, path, row_offset, "conversion value")
        if value_col
        else np.zeros(len(touches))
    )
    journey_code, journey_ids = pd.factorize(journey)
    rows = np.arange(len(touches))

    if conversion_col is not None:
        flag = _amount_column(touches, conversion_col, path, row_offset, "conversions")
        order = np.lexsort((rows, seconds, journey_code))
        path_of = journey_code[order]
        by_path = pd.DataFrame(
            {"path": path_of, "conversions": flag[order], "value": value[order]}
        ).groupby("path", sort=True)
        paths = pd.DataFrame(
            {
                "journey": np.asarray(journey_ids, dtype=object),
                "conversions": by_path["conversions"].max().to_numpy(),
                "value": by_path["value"].max().to_numpy(),
            }
        )
        touch = pd.DataFrame(
            {"path": path_of, "channel": channel[order], "seconds": seconds[order]}
        )
        unattributed = (0.0, 0.0)
    else:
        is_conversion = channel == conversion_event
        order = np.lexsort((rows, is_conversion, seconds, journey_code))
        code = journey_code[order]
        conv = is_conversion[order]
        before = pd.Series(conv.astype(np.int64)).groupby(code).cumsum().to_numpy()
        segment = before - conv  # conversions strictly before each row
        key_code, _ = pd.factorize(pd.MultiIndex.from_arrays([code, segment]))
        frame = pd.DataFrame(
            {
                "key": key_code,
                "journey": np.asarray(journey_ids, dtype=object)[code],
                "conv": conv.astype(float),
                "value": np.where(conv, value[order], 0.0),
                "channel": channel[order],
                "seconds": seconds[order],
            }
        )
        touched_keys = frame.loc[~conv, "key"].unique()
        grouped = frame.groupby("key", sort=True)
        summary = pd.DataFrame(
            {
                "journey": grouped["journey"].first(),
                "conversions": grouped["conv"].sum(),
                "value": grouped["value"].sum(),
                "converted_at_seconds": frame[conv].groupby("key")["seconds"].max(),
            }
        )
        has_touch = summary.index.isin(touched_keys)
        unattributed = (
            float(summary.loc[~has_touch, "conversions"].sum()),
            float(summary.loc[~has_touch, "value"].sum()),
        )
        summary = summary[has_touch]
        renumber = pd.Series(np.arange(len(summary)), index=summary.index)
        touch_rows = frame[~conv]
        touch = pd.DataFrame(
            {
                "path": renumber.loc[touch_rows["key"].to_numpy()].to_numpy(),
                "channel": touch_rows["channel"].to_numpy(),
                "seconds": touch_rows["seconds"].to_numpy(),
            }
        )
        paths = summary.reset_index(drop=True)

    if touch.empty:
        raise IngestError(
            path,
            f"no touches: every row is the conversion event '{conversion_event}'",
            column=channel_col,
        )
    touch = touch.sort_values(["path"], kind="stable").reset_index(drop=True)
    touch["position"] = touch.groupby("path").cumcount().to_numpy()
    touch["length"] = touch.groupby("path")["path"].transform("size").to_numpy()
    last_touch = touch.groupby("path")["seconds"].max()
    if "converted_at_seconds" not in paths:
        paths["converted_at_seconds"] = last_touch.to_numpy()
    else:
        paths["converted_at_seconds"] = paths["converted_at_seconds"].fillna(last_touch)
    return Journeys(
        touches=touch[["path", "position", "length", "channel", "seconds"]],
        paths=paths[["journey", "conversions", "value", "converted_at_seconds"]],
        channels=tuple(sorted(set(touch["channel"]))),
        has_value=value_col is not None,
        unattributed_conversions=unattributed[0],
        unattributed_value=unattributed[1],
    )


# -- credits ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelCredit:
    """The conversions (and value) one model credits to each channel.

    ``removal_effects`` and ``conversion_probability`` are set by the Markov model: the
    removal effect of each channel and the chain's probability of reaching ``(conversion)``.
    """

    model: str
    conversions: dict[str, float]
    value: dict[str, float] | None = None
    removal_effects: dict[str, float] | None = None
    conversion_probability: float | None = None

    @property
    def shares(self) -> dict[str, float]:
        """Each channel's share of the credited conversions (zeros when nothing converted)."""
        total = sum(self.conversions.values())
        if total == 0:
            return dict.fromkeys(self.conversions, 0.0)
        return {channel: credit / total for channel, credit in self.conversions.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values."""
        out: dict[str, Any] = {
            "model": self.model,
            "conversions": dict(self.conversions),
            "shares": self.shares,
            "value": None if self.value is None else dict(self.value),
        }
        if self.removal_effects is not None:
            out["removal_effects"] = dict(self.removal_effects)
            out["conversion_probability"] = self.conversion_probability
        return out


def _credit_by_weights(journeys: Journeys, model: str, weights: FloatArray) -> ChannelCredit:
    """Credit from per-touch weights that add up to 1 within each path."""
    touches = journeys.touches
    path = touches["path"].to_numpy()
    conversions = journeys.paths["conversions"].to_numpy(dtype=float)[path] * weights
    values = journeys.paths["value"].to_numpy(dtype=float)[path] * weights
    frame = pd.DataFrame({"channel": touches["channel"], "c": conversions, "v": values})
    sums = frame.groupby("channel").sum()
    return ChannelCredit(
        model=model,
        conversions={ch: float(sums.at[ch, "c"]) for ch in journeys.channels},
        value={ch: float(sums.at[ch, "v"]) for ch in journeys.channels}
        if journeys.has_value
        else None,
    )


def first_touch(journeys: Journeys) -> ChannelCredit:
    """All of a path's conversions to its first touch."""
    position = journeys.touches["position"].to_numpy()
    return _credit_by_weights(journeys, AttributionModel.FIRST_TOUCH.value, (position == 0) * 1.0)


def last_touch(journeys: Journeys) -> ChannelCredit:
    """All of a path's conversions to its last touch."""
    touches = journeys.touches
    last = touches["position"].to_numpy() == touches["length"].to_numpy() - 1
    return _credit_by_weights(journeys, AttributionModel.LAST_TOUCH.value, last * 1.0)


def linear(journeys: Journeys) -> ChannelCredit:
    """An equal share of a path's conversions to each of its touches."""
    length = journeys.touches["length"].to_numpy(dtype=float)
    return _credit_by_weights(journeys, AttributionModel.LINEAR.value, 1.0 / length)


def time_decay(journeys: Journeys, half_life: dt.timedelta = DEFAULT_HALF_LIFE) -> ChannelCredit:
    """Touches weighted by ``2 ** (-age / half_life)``, age = conversion time - touch time.

    Raises
    ------
    ValueError
        A half-life that is not positive.
    """
    half = half_life.total_seconds()
    if not half > 0:
        raise ValueError(f"the half-life must be positive, got {half_life}")
    touches = journeys.touches
    path = touches["path"].to_numpy()
    converted_at = journeys.paths["converted_at_seconds"].to_numpy(dtype=float)[path]
    age = np.maximum(converted_at - touches["seconds"].to_numpy(dtype=float), 0.0)
    raw = np.exp2(-age / half)
    total = np.bincount(path, weights=raw, minlength=len(journeys.paths))
    return _credit_by_weights(journeys, AttributionModel.TIME_DECAY.value, raw / total[path])


def position_based(journeys: Journeys, first: float = 0.4, last: float = 0.4) -> ChannelCredit:
    """``first`` to the first touch, ``last`` to the last, the rest over the touches between.

    A path of one touch gives it everything; a path of two splits ``first : last``.

    Raises
    ------
    ValueError
        Shares below 0 or adding up to more than 1.
    """
    if first < 0 or last < 0 or first + last > 1 or first + last == 0:
        raise ValueError(
            f"first and last must be non-negative, add up to at most 1 and not both be 0; "
            f"got first={first}, last={last}"
        )
    touches = journeys.touches
    position = touches["position"].to_numpy()
    length = touches["length"].to_numpy()
    is_first = position == 0
    is_last = position == length - 1
    middle_share = (1.0 - first - last) / np.maximum(length - 2, 1)
    weights = np.where(is_first, first, np.where(is_last, last, middle_share))
    weights = np.where(length == 2, np.where(is_first, first, last) / (first + last), weights)
    weights = np.where(length == 1, 1.0, weights)
    return _credit_by_weights(journeys, AttributionModel.POSITION_BASED.value, weights)


def _split_by(journeys: Journeys, model: str, effects: dict[str, float]) -> ChannelCredit:
    """Total conversions (and value) in proportion to non-negative per-channel effects."""
    total_effect = sum(effects.values())
    shares = {
        ch: (effects[ch] / total_effect if total_effect > 0 else 0.0) for ch in journeys.channels
    }
    return ChannelCredit(
        model=model,
        conversions={ch: share * journeys.conversions for ch, share in shares.items()},
        value={ch: share * journeys.value for ch, share in shares.items()}
        if journeys.has_value
        else None,
    )


def _absorption(
    counts: sparse.csr_matrix, removed: npt.NDArray[np.bool_], n_transient: int, conversion: int
) -> float:
    """P(reaching conversion from start) with the removed states turned into (null)."""
    totals = np.asarray(counts.sum(axis=1)).ravel()[:n_transient]
    inverse = sparse.diags(np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0))
    keep = sparse.diags((~removed).astype(float))
    transient = inverse @ counts[:n_transient, :n_transient] @ keep  # into removed -> (null)
    transient = keep @ transient  # a removed state moves nowhere but (null)
    to_conversion = (keep @ inverse @ counts[:n_transient, conversion]).toarray().ravel()
    system = sparse.identity(n_transient, format="csc") - transient.tocsc()
    solution = np.atleast_1d(spsolve(system, to_conversion))
    return float(solution[0])


def markov_removal_effect(journeys: Journeys, order: int = 1) -> ChannelCredit:
    """Conversions in proportion to each channel's removal effect in a Markov chain of order k.

    Each path walks ``(start) → s_1 → … → s_n → (conversion)`` (or ``(null)`` when it did not
    convert), where ``s_i`` is the tuple of the last ``order`` channels up to touch ``i``;
    transition probabilities are the observed transition shares over all paths.

    Raises
    ------
    ValueError
        An order below 1.
    """
    if order < 1:
        raise ValueError(f"the order of the chain must be at least 1, got {order}")
    touches = journeys.touches
    n_channels = len(journeys.channels)
    code = pd.Categorical(touches["channel"], categories=list(journeys.channels)).codes.astype(
        np.int64
    )
    position = touches["position"].to_numpy()
    # A state is the last `order` channels, written as digits base (n + 1); 0 = no touch yet.
    base = n_channels + 1
    if base**order >= 2**62:
        raise ValueError(f"order {order} is too high for {n_channels} channels")
    key = np.zeros(len(touches), dtype=np.int64)
    for back in range(order):
        shifted = np.roll(code, back)
        digit = np.where(position >= back, shifted + 1, 0)
        key = key + digit * (base**back)
    state_code, state_keys = pd.factorize(key)
    n_states = len(state_keys)
    contains = np.zeros((n_channels, n_states), dtype=bool)
    for back in range(order):
        digits = np.array([(int(k) // base**back) % base for k in state_keys], dtype=np.int64)
        for index in range(n_channels):
            contains[index] |= digits == index + 1

    # States: 0 = start, 1..n_states = channel states, then conversion, then null.
    start, conversion, null = 0, n_states + 1, n_states + 2
    state = state_code.astype(np.int64) + 1
    previous = np.where(position == 0, start, np.roll(state, 1))
    last = position == touches["length"].to_numpy() - 1
    converted = journeys.paths["conversions"].to_numpy()[touches["path"].to_numpy()] > 0
    end = np.where(converted, conversion, null)
    sources = np.concatenate([previous, state[last]])
    targets = np.concatenate([state, end[last]])
    size = n_states + 3
    counts = sparse.csr_matrix(
        (np.ones(len(sources)), (sources, targets)), shape=(size, size), dtype=float
    )
    n_transient = n_states + 1
    none_removed = np.zeros(n_transient, dtype=bool)
    probability = _absorption(counts, none_removed, n_transient, conversion)
    effects: dict[str, float] = {}
    for channel_index, channel in enumerate(journeys.channels):
        removed = np.concatenate([[False], contains[channel_index]])
        without = _absorption(counts, removed, n_transient, conversion)
        effects[channel] = 1.0 - without / probability if probability > 0 else 0.0
    credit = _split_by(journeys, AttributionModel.MARKOV.value, effects)
    return ChannelCredit(
        model=credit.model,
        conversions=credit.conversions,
        value=credit.value,
        removal_effects=effects,
        conversion_probability=probability,
    )


def _subset_sums(values: FloatArray, n: int) -> FloatArray:
    """Zeta transform: ``out[T] = Σ_{S ⊆ T} values[S]`` over bit masks of n items."""
    out = values.copy()
    masks = np.arange(1 << n)
    for bit in range(n):
        has = (masks >> bit) & 1 == 1
        out[..., has] += out[..., masks[has] ^ (1 << bit)]
    return out


def _dividends(worth: FloatArray, n: int) -> FloatArray:
    """Möbius transform: the Harsanyi dividends ``d`` with ``worth[T] = Σ_{S ⊆ T} d[S]``."""
    out = worth.copy()
    masks = np.arange(1 << n)
    for bit in range(n):
        has = (masks >> bit) & 1 == 1
        out[has] -= out[masks[has] ^ (1 << bit)]
    return out


def shapley(journeys: Journeys) -> ChannelCredit:
    """Each path's conversions split by the Shapley values of the game on its channel set.

    The worth of a channel set is the conversion rate of the paths that touched exactly those
    channels (0 for a set no path touched). Shapley value of channel ``c`` in the game on set
    ``T`` = ``Σ_{S ⊆ T, c ∈ S} d(S) / |S|`` with ``d`` the Harsanyi dividends of the worth.

    Raises
    ------
    ValueError
        More than ``MAX_SHAPLEY_CHANNELS`` channels (2^n subsets are enumerated).
    """
    n = len(journeys.channels)
    if n > MAX_SHAPLEY_CHANNELS:
        raise ValueError(
            f"exact Shapley values enumerate all 2^n channel sets and are limited to "
            f"{MAX_SHAPLEY_CHANNELS} channels; the touches have {n}"
        )
    touches = journeys.touches
    code = pd.Categorical(touches["channel"], categories=list(journeys.channels)).codes
    bits = np.left_shift(np.int64(1), code.astype(np.int64))
    distinct = pd.DataFrame({"path": touches["path"], "bit": bits})
    masks = distinct.drop_duplicates().groupby("path")["bit"].sum().to_numpy(dtype=np.int64)
    paths = journeys.paths
    size = 1 << n
    n_paths = np.bincount(masks, minlength=size).astype(float)
    conversions = np.bincount(masks, weights=paths["conversions"].to_numpy(), minlength=size)
    values = np.bincount(masks, weights=paths["value"].to_numpy(), minlength=size)
    worth = np.divide(conversions, n_paths, out=np.zeros(size), where=n_paths > 0)
    dividends = _dividends(worth, n)
    members = np.arange(size)
    popcount = np.array([bin(m).count("1") for m in members], dtype=float)
    per_member = np.divide(dividends, popcount, out=np.zeros(size), where=popcount > 0)
    holds = np.array([(members >> c) & 1 == 1 for c in range(n)])  # channel x set
    phi = _subset_sums(np.where(holds, per_member, 0.0), n)  # phi[c, T]
    # Σ_c phi[c, T] = worth[T]; n_T * worth[T] = the conversions of set T.
    credit_conversions = phi @ n_paths
    share_in_set = np.divide(phi, worth, out=np.zeros_like(phi), where=worth > 0)
    credit_values = share_in_set @ values
    return ChannelCredit(
        model=AttributionModel.SHAPLEY.value,
        conversions={ch: float(credit_conversions[i]) for i, ch in enumerate(journeys.channels)},
        value={ch: float(credit_values[i]) for i, ch in enumerate(journeys.channels)}
        if journeys.has_value
        else None,
    )


# -- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributionReport:
    """Every model's credit per channel on one touch log.

    ``conversions`` (and ``value``) are what the models hand out: conversions of paths with
    at least one touch; ``unattributed_conversions`` had no touch before them.
    """

    channels: list[str]
    journeys: int
    paths: int
    converting_paths: int
    touches: int
    conversions: float
    value: float | None
    unattributed_conversions: float
    unattributed_value: float | None
    credits: dict[str, ChannelCredit]
    parameters: dict[str, Any] = field(default_factory=dict)

    def shares(self, model: str) -> dict[str, float]:
        """One model's credit shares per channel."""
        return self.credits[str(model)].shares

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values."""
        return {
            "channels": list(self.channels),
            "journeys": self.journeys,
            "paths": self.paths,
            "converting_paths": self.converting_paths,
            "touches": self.touches,
            "conversions": self.conversions,
            "value": self.value,
            "unattributed_conversions": self.unattributed_conversions,
            "unattributed_value": self.unattributed_value,
            "parameters": dict(self.parameters),
            "models": {name: credit.to_dict() for name, credit in self.credits.items()},
        }


def _model_names(models: Sequence[str] | None, source: Path) -> list[AttributionModel]:
    if models is None:
        return list(ALL_MODELS)
    chosen: list[AttributionModel] = []
    problems: list[SpecProblem] = []
    for name in models:
        try:
            model = AttributionModel(str(name).strip())
        except ValueError:
            known = ", ".join(m.value for m in AttributionModel)
            problems.append(SpecProblem(source, None, "models", f"'{name}' is not one of {known}"))
            continue
        if model not in chosen:
            chosen.append(model)
    if not chosen and not problems:
        problems.append(SpecProblem(source, None, "models", "name at least one model"))
    if problems:
        raise SpecError(problems)
    return chosen


def attribute(
    touches: pd.DataFrame | Journeys,
    *,
    models: Sequence[str] | None = None,
    journey_col: str = "journey_id",
    time_col: str = "timestamp",
    channel_col: str = "channel",
    conversion_col: str | None = "converted",
    conversion_event: str | None = None,
    value_col: str | None = None,
    half_life: dt.timedelta = DEFAULT_HALF_LIFE,
    first: float = 0.4,
    last: float = 0.4,
    markov_order: int = 1,
    source: Path | str = "<touches>",
    row_offset: int = 2,
) -> AttributionReport:
    """Run attribution models on a touch log (see ``journeys_from_touches`` for its layout).

    Parameters
    ----------
    touches
        The touch log, or journeys already cut from one.
    models
        Model names (``AttributionModel`` values); all seven by default.
    half_life
        Of the time-decay model.
    first, last
        Shares of the first and last touch in the position-based model.
    markov_order
        Channels per Markov state.

    Raises
    ------
    IngestError
        A bad touch log (naming row and column), or more channels than exact Shapley values
        allow when ``shapley`` is asked for.
    SpecError
        An unknown model or a parameter out of range.
    """
    path = Path(source)
    names = _model_names(models, path)
    problems: list[SpecProblem] = []
    if AttributionModel.TIME_DECAY in names and not half_life.total_seconds() > 0:
        problems.append(SpecProblem(path, None, "half_life", f"{half_life} is not positive"))
    if AttributionModel.POSITION_BASED in names and (
        first < 0 or last < 0 or first + last > 1 or first + last == 0
    ):
        problems.append(
            SpecProblem(
                path,
                None,
                "first/last",
                f"{first} and {last} must be non-negative, add up to at most 1 and not both be 0",
            )
        )
    if AttributionModel.MARKOV in names and markov_order < 1:
        problems.append(SpecProblem(path, None, "markov_order", f"{markov_order} is below 1"))
    if problems:
        raise SpecError(problems)
    journeys = (
        touches
        if isinstance(touches, Journeys)
        else journeys_from_touches(
            touches,
            journey_col=journey_col,
            time_col=time_col,
            channel_col=channel_col,
            conversion_col=conversion_col,
            conversion_event=conversion_event,
            value_col=value_col,
            source=path,
            row_offset=row_offset,
        )
    )
    if AttributionModel.SHAPLEY in names and len(journeys.channels) > MAX_SHAPLEY_CHANNELS:
        shown = ", ".join(journeys.channels[:20])
        raise IngestError(
            path,
            f"{len(journeys.channels)} channels ({shown}); exact Shapley values are limited to "
            f"{MAX_SHAPLEY_CHANNELS} channels (2^n channel sets are enumerated)",
            column=channel_col,
            hint="group channels (e.g. paid_social for every social network) or leave shapley "
            "out of the models",
        )
    credits: dict[str, ChannelCredit] = {}
    for name in names:
        if name is AttributionModel.FIRST_TOUCH:
            credit = first_touch(journeys)
        elif name is AttributionModel.LAST_TOUCH:
            credit = last_touch(journeys)
        elif name is AttributionModel.LINEAR:
            credit = linear(journeys)
        elif name is AttributionModel.TIME_DECAY:
            credit = time_decay(journeys, half_life)
        elif name is AttributionModel.POSITION_BASED:
            credit = position_based(journeys, first, last)
        elif name is AttributionModel.MARKOV:
            credit = markov_removal_effect(journeys, markov_order)
        else:
            credit = shapley(journeys)
        credits[name.value] = credit
    paths = journeys.paths
    return AttributionReport(
        channels=list(journeys.channels),
        journeys=int(paths["journey"].nunique()),
        paths=len(paths),
        converting_paths=int((paths["conversions"] > 0).sum()),
        touches=len(journeys.touches),
        conversions=journeys.conversions,
        value=journeys.value if journeys.has_value else None,
        unattributed_conversions=journeys.unattributed_conversions,
        unattributed_value=journeys.unattributed_value if journeys.has_value else None,
        credits=credits,
        parameters={
            "half_life_days": half_life.total_seconds() / 86_400,
            "first": first,
            "last": last,
            "markov_order": markov_order,
        },
    )


# -- journeys with known effects --------------------------------------------------------------


@dataclass(frozen=True)
class SimulatedJourneys:
    """Journeys drawn with known channel effects, and the conversions each channel caused.

    ``touches`` has columns ``journey_id, timestamp, channel, converted`` (the flag repeated on
    every row of a journey). ``true_conversions[c] = effect_c × journeys that touched c``: the
    expected conversions channel ``c`` added; ``baseline_conversions = base_rate × n`` would
    have happened without any touch.
    """

    touches: pd.DataFrame
    channel_effects: dict[str, float]
    base_rate: float
    seed: int
    exposed: dict[str, int]
    true_conversions: dict[str, float]
    baseline_conversions: float

    @property
    def true_shares(self) -> dict[str, float]:
        """Each channel's share of the incremental conversions."""
        total = sum(self.true_conversions.values())
        return {ch: value / total for ch, value in self.true_conversions.items()}


def simulate_journeys(
    n: int,
    channel_effects: Mapping[str, float],
    base_rate: float,
    seed: int,
    *,
    mean_touches: float = 3.0,
    channel_weights: Mapping[str, float] | None = None,
    channel_stages: Mapping[str, float] | None = None,
    start: dt.datetime = dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    days: int = 30,
) -> SimulatedJourneys:
    """Draw ``n`` journeys whose conversion probability is ``base_rate + Σ effect_c`` over the
    distinct channels they touched, so each channel's incremental conversions are known.

    Parameters
    ----------
    n
        Journeys.
    channel_effects
        What touching each channel adds to the conversion probability.
    base_rate
        Conversion probability without any touch.
    seed
        Seed of the ``numpy.random.Generator`` (PCG64); the same arguments give the same table.
    mean_touches
        Touches per journey: ``1 + Poisson(mean_touches - 1)``.
    channel_weights
        Relative frequency of each channel's touches (equal by default).
    channel_stages
        Where in a journey each channel tends to come, 0 (first) to 1 (last): touches are
        ordered by ``stage + Normal(0, 0.2)``. 0.5 for all by default (random order).
    start, days
        Journeys start uniformly in ``[start, start + days)``; touches follow one another
        after exponential gaps of one day on average.

    Raises
    ------
    ValueError
        No channels, negative effects, weights or rates, fewer than one journey, or
        ``base_rate + Σ effects`` above 1.
    """
    channels = list(channel_effects)
    effects = np.array([float(channel_effects[c]) for c in channels])
    if not channels:
        raise ValueError("name at least one channel and its effect")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if mean_touches < 1:
        raise ValueError(f"mean_touches must be at least 1, got {mean_touches}")
    if (effects < 0).any() or not 0 <= base_rate <= 1:
        raise ValueError("effects must be non-negative and base_rate between 0 and 1")
    if base_rate + effects.sum() > 1:
        raise ValueError(
            f"base_rate + the sum of effects is {base_rate + effects.sum():g}: a journey "
            "touching every channel would convert with a probability above 1"
        )
    weights = np.array([float((channel_weights or {}).get(c, 1.0)) for c in channels])
    if (weights < 0).any() or weights.sum() == 0:
        raise ValueError("channel weights must be non-negative and not all 0")
    stages = np.array([float((channel_stages or {}).get(c, 0.5)) for c in channels])
    rng = np.random.default_rng(seed)

    count = 1 + rng.poisson(mean_touches - 1, n)
    journey = np.repeat(np.arange(n), count)
    channel = rng.choice(len(channels), size=len(journey), p=weights / weights.sum())
    rank = stages[channel] + rng.normal(0.0, 0.2, len(journey))
    order = np.lexsort((rank, journey))
    channel = channel[order]
    journey_start = rng.uniform(0, days * 86_400, n)
    gaps = rng.exponential(86_400, len(journey))
    first = np.r_[True, journey[1:] != journey[:-1]]
    gaps[first] = 0.0
    offset = np.cumsum(gaps)
    offset -= np.repeat(offset[first], count)  # restart the running sum in each journey
    seconds = np.round(journey_start[journey] + offset)

    touched = np.zeros((n, len(channels)), dtype=bool)
    touched[journey, channel] = True
    probability = base_rate + touched @ effects
    converted = rng.random(n) < probability
    exposed = touched.sum(axis=0)
    touches = pd.DataFrame(
        {
            "journey_id": [f"j{j:06d}" for j in journey],
            "timestamp": pd.Timestamp(start) + pd.to_timedelta(seconds, unit="s"),
            "channel": pd.array([channels[c] for c in channel], dtype="str"),
            "converted": converted[journey].astype(np.int64),
        }
    )
    return SimulatedJourneys(
        touches=touches,
        channel_effects={c: float(e) for c, e in zip(channels, effects, strict=True)},
        base_rate=base_rate,
        seed=seed,
        exposed={c: int(x) for c, x in zip(channels, exposed, strict=True)},
        true_conversions={
            c: float(e * x) for c, e, x in zip(channels, effects, exposed, strict=True)
        },
        baseline_conversions=base_rate * n,
    )


def share_errors(
    report: AttributionReport, true_conversions: Mapping[str, float]
) -> dict[str, float]:
    """Mean absolute error of each model's credit shares against the true shares.

    The true share of a channel is its incremental conversions over all channels'; a channel
    the report does not know has a credited share of 0.

    Returns
    -------
    dict
        Model name → mean over channels of ``|credited share - true share|``.

    Raises
    ------
    ValueError
        True conversions that add up to 0.
    """
    total = sum(true_conversions.values())
    if not total > 0:
        raise ValueError("the true conversions add up to 0: no shares to compare with")
    truth = {ch: value / total for ch, value in true_conversions.items()}
    names = sorted(set(truth) | set(report.channels))
    errors: dict[str, float] = {}
    for model, credit in report.credits.items():
        shares = credit.shares
        gaps = [abs(shares.get(ch, 0.0) - truth.get(ch, 0.0)) for ch in names]
        errors[model] = math.fsum(gaps) / len(gaps)
    return errors
