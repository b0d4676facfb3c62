"""Ordered funnels and cohort retention over event logs, in pandas and on the warehouse.

A funnel is a list of steps (event types). A customer reaches step ``k`` when, starting from
one of their step-1 events, each later step has an event not before the previous step's event
(the earliest such event is taken, which leaves the most room for the steps after it), and,
with a window ``within``, every step lies at most ``within`` after that start. A customer may
try many times; they count at the furthest step any start reached (as Amplitude's and
PostHog's conversion windows do). Without a window the first step-1 event is the best start.

``funnel`` does this on a pandas frame with ``merge_asof``; ``funnel_from_engine`` does it on
the warehouse as Ibis expressions (window functions, no SQL strings) over the events of known
customers as they stood on ``as_of`` (``jingzhun.profile.customer_events``). They are separate
implementations of the same definition, and the tests hold them to the same counts.

``cohort_retention_matrix`` is the acquisition cohort × period matrix of the share of each
cohort active, computed by ``jingzhun.models``' ``cohort_retention`` (one implementation) after
the event log has been checked; periods in which no cohort was active get their column here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import numpy.typing as npt
import pandas as pd

from jingzhun.core import IngestError, SpecError, SpecProblem
from jingzhun.engine import Engine
from jingzhun.models._retention import CohortPeriod, cohort_retention
from jingzhun.profile import AsOf, customer_events, identity_snapshot

_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


# -- shared checks ----------------------------------------------------------------------------


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], source: Path) -> None:
    header = [str(c) for c in frame.columns]
    for column in columns:
        if column not in header:
            raise IngestError(
                source, f"no column '{column}'", column=column, hint=f"the header has: {header}"
            )


def _checked_customers(
    raw: pd.Series, column: str, source: Path, row_offset: int
) -> npt.NDArray[np.object_]:
    missing = raw.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise IngestError(
            source,
            "the customer is empty",
            row=int(raw.index[row]) + row_offset,
            column=column,
            hint="leave anonymous events out, or resolve them to customers first",
        )
    return raw.astype(str).to_numpy(dtype=object)


def _checked_times(raw: pd.Series, column: str, source: Path, row_offset: int) -> pd.Series:
    """Times as UTC timestamps (naive ones taken as UTC), or an error naming the row."""
    parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        shown = raw.iloc[row]
        message = "the time is empty" if pd.isna(shown) else f"'{shown}' is not a date and time"
        raise IngestError(
            source,
            message,
            row=int(raw.index[row]) + row_offset,
            column=column,
            hint="write times like 2024-03-01 14:30:00 (UTC unless an offset is given)",
        )
    return parsed


def _micros(times: pd.Series) -> npt.NDArray[np.int64]:
    """UTC timestamps as whole microseconds since 1970 (the warehouse's precision)."""
    return ((times - _EPOCH) // pd.Timedelta(microseconds=1)).to_numpy(dtype=np.int64)


# -- cohort retention -------------------------------------------------------------------------


@dataclass(frozen=True)
class CohortRetention:
    """Acquisition cohorts × periods since: customers active and the share of the cohort.

    ``counts`` and ``shares`` are indexed by cohort (the period of a customer's first event,
    as text such as ``2024-03``) with integer columns 0, 1, … (periods after it); cells the
    data do not reach yet are NaN. Column 0 of ``counts`` is the cohort's size.
    """

    period: CohortPeriod
    counts: pd.DataFrame
    shares: pd.DataFrame

    @property
    def cohort_sizes(self) -> dict[str, int]:
        """Customers acquired in each cohort."""
        return {str(k): int(v) for k, v in self.counts[0].items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values; cells not reached yet are None."""

        def rows(frame: pd.DataFrame, cast: type) -> list[list[Any]]:
            return [
                [None if pd.isna(v) else cast(v) for v in values]
                for values in frame.to_numpy(dtype=float)
            ]

        return {
            "period": str(self.period),
            "cohorts": [str(c) for c in self.counts.index],
            "periods": [int(c) for c in self.counts.columns],
            "cohort_sizes": self.cohort_sizes,
            "counts": rows(self.counts, int),
            "shares": rows(self.shares, float),
        }


def cohort_retention_matrix(
    events: pd.DataFrame,
    customer_col: str,
    time_col: str,
    period: CohortPeriod | str = CohortPeriod.MONTH,
    *,
    source: Path | str = "<events>",
    row_offset: int = 2,
) -> CohortRetention:
    """Each customer's cohort is the period of their first event; the share of a cohort
    active (with any event) in each later period.

    Periods are calendar periods in UTC (``day``, ``week`` Monday to Sunday, ``month``,
    ``quarter``, ``year``). Orders work as events too: pass the orders table.

    Raises
    ------
    IngestError
        A missing column, no rows, or a row with an empty customer or a time that is not one.
    SpecError
        An unknown period.
    """
    path = Path(source)
    try:
        unit = CohortPeriod(period)
    except ValueError:
        allowed = ", ".join(p.value for p in CohortPeriod)
        raise SpecError(
            [SpecProblem(path, None, "period", f"'{period}' is not one of {allowed}")]
        ) from None
    _require_columns(events, [customer_col, time_col], path)
    if events.empty:
        raise IngestError(path, "the table has no rows", hint="one row per event is expected")
    frame = events.reset_index(drop=True)
    customers = _checked_customers(frame[customer_col], customer_col, path, row_offset)
    times = _checked_times(frame[time_col], time_col, path, row_offset)
    clean = pd.DataFrame({"customer": customers, "at": times})
    counts = _every_period(
        cohort_retention(clean, "customer", "at", unit, counts=True), times, unit
    )
    return CohortRetention(period=unit, counts=counts, shares=counts.div(counts[0], axis=0))


def _every_period(counts: pd.DataFrame, times: pd.Series, unit: CohortPeriod) -> pd.DataFrame:
    """One column per period index up to the last the data reach: 0 where a cohort was
    reached but nobody was active, NaN where the data do not reach yet.

    ``cohort_retention`` has a column only for period indexes in which some cohort was active;
    this adds the others so that column ``k`` always means ``k`` periods after acquisition.
    """
    last = times.dt.tz_localize(None).dt.to_period(unit.pandas_freq).max().ordinal
    cohorts = np.array([pd.Period(label, freq=unit.pandas_freq).ordinal for label in counts.index])
    reach = last - cohorts
    periods = list(range(int(reach.max()) + 1))
    full = counts.reindex(columns=periods, fill_value=0.0)
    full = full.where(np.subtract.outer(reach, np.array(periods)) >= 0)
    full.columns = pd.Index(periods, name="period")
    return full


# -- funnels ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelStep:
    """Customers who reached one step in order, and the conversion to it.

    ``conversion_from_previous`` is ``customers / customers of the step before`` and
    ``conversion_from_start`` is ``customers / customers of the first step``; both are None
    for the first step and when the step they divide by has no customers.
    """

    step: str
    customers: int
    conversion_from_previous: float | None
    conversion_from_start: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values."""
        return {
            "step": self.step,
            "customers": self.customers,
            "conversion_from_previous": self.conversion_from_previous,
            "conversion_from_start": self.conversion_from_start,
        }


@dataclass(frozen=True)
class Funnel:
    """An ordered funnel: the customers at each step and the conversions between steps."""

    steps: list[FunnelStep]
    within: dt.timedelta | None
    as_of: dt.date | None = None

    @property
    def counts(self) -> list[int]:
        """Customers at each step, in step order."""
        return [s.customers for s in self.steps]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values; the window in seconds."""
        return {
            "steps": [s.to_dict() for s in self.steps],
            "within_seconds": None if self.within is None else self.within.total_seconds(),
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
        }


def _funnel_of_counts(
    steps: Sequence[str], counts: Sequence[int], within: dt.timedelta | None, as_of: dt.date | None
) -> Funnel:
    rows: list[FunnelStep] = []
    for index, (name, customers) in enumerate(zip(steps, counts, strict=True)):
        previous = counts[index - 1] if index else 0
        rows.append(
            FunnelStep(
                step=name,
                customers=int(customers),
                conversion_from_previous=customers / previous if index and previous else None,
                conversion_from_start=customers / counts[0] if index and counts[0] else None,
            )
        )
    return Funnel(steps=rows, within=within, as_of=as_of)


def _check_steps(steps: Sequence[str], within: dt.timedelta | None, source: Path) -> list[str]:
    names = [str(s).strip() for s in steps]
    problems: list[SpecProblem] = []
    if not names or any(not n for n in names):
        problems.append(SpecProblem(source, None, "steps", "name every step, at least one"))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(
            SpecProblem(source, None, "steps", f"{repeated} appear twice; each step once")
        )
    if within is not None and not within > dt.timedelta(0):
        problems.append(SpecProblem(source, None, "within", f"{within} is not a positive window"))
    if problems:
        raise SpecError(problems)
    return names


def funnel(
    events: pd.DataFrame,
    customer_col: str,
    time_col: str,
    step_col: str,
    steps: Sequence[str],
    within: dt.timedelta | None = None,
    *,
    source: Path | str = "<events>",
    row_offset: int = 2,
) -> Funnel:
    """Customers who went through ``steps`` in order (each within ``within`` of their start).

    Parameters
    ----------
    events
        One row per event; rows whose ``step_col`` is not a step are ignored.
    steps
        Step names in order, e.g. ``["product_viewed", "added_to_cart", "order_completed"]``.
    within
        Longest time from a customer's step-1 event to their last step; no limit when None.
    source, row_offset
        The file named in errors and what to add to a 0-based row to name it (2 for a CSV).

    Raises
    ------
    IngestError
        A missing column, or a step event with an empty customer or a bad time.
    SpecError
        No steps, a step named twice, or a window that is not positive.
    """
    path = Path(source)
    names = _check_steps(steps, within, path)
    _require_columns(events, [customer_col, time_col, step_col], path)
    frame = events.reset_index(drop=True)
    step_text = frame[step_col].astype(str).where(frame[step_col].notna())
    relevant = frame[step_text.isin(names).to_numpy()]
    customers = _checked_customers(relevant[customer_col], customer_col, path, row_offset)
    times = _checked_times(relevant[time_col], time_col, path, row_offset)
    code, _ = pd.factorize(customers)
    data = pd.DataFrame(
        {
            "customer": code.astype(np.int64),
            "at": _micros(times),
            "step": step_text[relevant.index].to_numpy(dtype=object),
        }
    )
    limit = None if within is None else within // dt.timedelta(microseconds=1)

    starts = data[data["step"] == names[0]]
    if limit is None:  # the first start leaves the most room
        starts = starts.groupby("customer", as_index=False)["at"].min()
    attempts = pd.DataFrame(
        {"customer": starts["customer"], "start": starts["at"], "previous": starts["at"]}
    )
    counts = [int(attempts["customer"].nunique())]
    for name in names[1:]:
        step_events = (
            data.loc[data["step"] == name, ["customer", "at"]]
            .drop_duplicates()
            .sort_values("at", kind="stable")
        )
        if attempts.empty or step_events.empty:
            counts.append(0)
            attempts = attempts.iloc[0:0]
            continue
        # The earliest step event not before the previous step's event, per customer.
        matched = pd.merge_asof(
            attempts.sort_values("previous", kind="stable"),
            step_events,
            left_on="previous",
            right_on="at",
            by="customer",
            direction="forward",
            allow_exact_matches=True,
        )
        reached = matched["at"].notna()
        if limit is not None:
            reached &= matched["at"] - matched["start"] <= limit
        kept = matched[reached]
        attempts = pd.DataFrame(
            {
                "customer": kept["customer"],
                "start": kept["start"],
                "previous": kept["at"].astype(np.int64),
            }
        )
        counts.append(int(attempts["customer"].nunique()))
    return _funnel_of_counts(names, counts, within, None)


def _interval(within: dt.timedelta) -> ir.IntervalScalar:
    micros = within // dt.timedelta(microseconds=1)
    if micros % 1_000_000 == 0:
        return ibis.interval(seconds=micros // 1_000_000)
    return ibis.interval(microseconds=micros)


def funnel_expression(
    events: ir.Table,
    steps: Sequence[str],
    within: dt.timedelta | None = None,
    *,
    customer_col: str = "customer_key",
    time_col: str = "occurred_at",
    step_col: str = "event_type",
) -> ir.Table:
    """The funnel as one Ibis expression over an events table: rows ``(step, customers)``.

    Each step joins nothing: the attempts still going (marked ``kind 0`` at the time of their
    previous step) and the step's events (``kind 1``) are put in one time order per customer,
    and the earliest step event at or after each attempt is a running minimum over the rows
    that follow it. Steps no customer reached have no row.

    Raises
    ------
    SpecError
        No steps, a step named twice, or a window that is not positive.
    """
    names = _check_steps(steps, within, Path("funnel"))
    relevant = events.filter(events[step_col].isin(names)).select(
        customer=events[customer_col], at=events[time_col], step=events[step_col]
    )
    first = relevant.filter(relevant.step == names[0])
    if within is None:  # the first start leaves the most room
        first = first.group_by("customer").aggregate(at=first.at.min())
    attempts = first.select("customer", start=first.at, previous=first.at)
    stages: list[ir.Table] = [attempts]
    for name in names[1:]:
        step_events = relevant.filter(relevant.step == name)
        markers = attempts.select(
            "customer", "start", at=attempts.previous, kind=ibis.literal(0, type="int8")
        )
        arrivals = step_events.select(
            "customer", start=step_events.at, at=step_events.at, kind=ibis.literal(1, type="int8")
        )
        both = markers.union(arrivals, distinct=False)
        following = ibis.window(
            group_by=both.customer, order_by=[both.at, both.kind], rows=(0, None)
        )
        next_at = ibis.ifelse(both.kind == 1, both.at, ibis.null()).min().over(following)
        scanned = both.mutate(next_at=next_at)
        reached = (scanned.kind == 0) & scanned.next_at.notnull()
        if within is not None:
            reached &= scanned.next_at <= scanned.start + _interval(within)
        kept = scanned.filter(reached)
        attempts = kept.select("customer", "start", previous=kept.next_at)
        stages.append(attempts)
    per_step = [
        stage.select("customer", step=ibis.literal(index, type="int32")).distinct()
        for index, stage in enumerate(stages)
    ]
    reached_steps = ibis.union(*per_step, distinct=False) if len(per_step) > 1 else per_step[0]
    return reached_steps.group_by("step").aggregate(customers=reached_steps.customer.count())


def funnel_from_engine(
    engine: Engine,
    steps: Sequence[str],
    within: dt.timedelta | None = None,
    as_of: dt.date | None = None,
    *,
    include_late_loads: bool = False,
) -> Funnel:
    """The funnel of event types ``steps`` over the warehouse's events of known customers.

    Events are read through ``jingzhun.profile.customer_events`` as they stood on ``as_of``
    (occurred and loaded before its end, UTC; customers as the identity build for that date
    resolves them); ``as_of`` defaults to today (UTC). ``include_late_loads`` counts events
    loaded after ``as_of`` too (to look back at a period on data loaded since). A warehouse
    without events gives zeros.

    Raises
    ------
    SpecError
        No steps, a step named twice, or a window that is not positive.
    """
    names = _check_steps(steps, within, Path("funnel"))
    day = as_of or dt.datetime.now(dt.UTC).date()
    events = customer_events(engine, AsOf(day, include_late_loads), identity_snapshot(engine, day))
    if events is None:
        return _funnel_of_counts(names, [0] * len(names), within, day)
    rows = engine.execute(funnel_expression(events, names, within)).to_pylist()
    by_step = {int(r["step"]): int(r["customers"]) for r in rows}
    return _funnel_of_counts(names, [by_step.get(i, 0) for i in range(len(names))], within, day)
