"""Logs and billing in the operational store.

- **Billing** (``AdLedger.charge``): one write transaction per valid click. The campaign's
  budget row for the day is updated with ``spent = spent + price WHERE spent < budget``: the
  database's write lock (SQLite ``BEGIN IMMEDIATE``) or row lock (PostgreSQL) serialises
  concurrent clicks, so a click is billed only while the day's spend is still under the
  budget, and the spend can pass the budget by at most the last click's price — across
  threads and processes alike. The click row and its ledger entry are written in the same
  transaction.
- **Impressions and refused clicks** (``LogWriter``): appended to a queue and written in
  batches by one background thread (every ``flush_seconds`` or ``batch_size`` rows), so the
  decision path never waits for the database. A process killed hard loses at most the last
  unflushed batch of impressions; money is never in that queue.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from jingzhun.store import (
    AdBudgetDay,
    AdClick,
    AdConversion,
    AdImpression,
    AdLedgerEntry,
    OperationalStore,
)


@dataclass(frozen=True)
class Charge:
    """What billing a click did: the amount (0 when the day's budget was spent already)."""

    charged: float
    spent_after: float
    over_budget: bool


class AdLedger:
    """The billing ledger and the budget rows of ``ad_budget_days``."""

    def __init__(self, store: OperationalStore) -> None:
        self.store = store

    def charge(
        self,
        click: dict[str, Any],
        *,
        day: dt.date,
        budget: float,
        now: dt.datetime,
    ) -> Charge:
        """Bill one valid click (``click``: the ``ad_clicks`` row, ``price`` included) against
        the campaign's budget for ``day``; writes the click row and, when billed, a charge.
        """
        campaign, price = str(click["campaign"]), float(click["price"])
        for attempt in range(3):
            try:
                with self.store.session(write=True) as session:
                    result = session.execute(
                        update(AdBudgetDay)
                        .where(
                            AdBudgetDay.campaign == campaign,
                            AdBudgetDay.day == day,
                            AdBudgetDay.spent < budget,
                        )
                        .values(
                            spent=AdBudgetDay.spent + price,
                            clicks=AdBudgetDay.clicks + 1,
                            budget=budget,
                        )
                        .returning(AdBudgetDay.spent)
                    ).first()
                    if result is not None:
                        spent_after, billed = float(result[0]), True
                    else:
                        row = session.get(AdBudgetDay, (campaign, day))
                        if row is None:  # the day's first click
                            session.add(
                                AdBudgetDay(
                                    campaign=campaign, day=day, budget=budget, spent=price, clicks=1
                                )
                            )
                            session.flush()
                            spent_after, billed = price, True
                        else:
                            spent_after, billed = float(row.spent), False
                    charged = price if billed else 0.0
                    session.execute(insert(AdClick), [{**click, "charged": charged}])
                    if billed:
                        session.execute(
                            insert(AdLedgerEntry),
                            [
                                {
                                    "click_id": click["click_id"],
                                    "campaign": campaign,
                                    "day": day,
                                    "kind": "charge",
                                    "amount": price,
                                    "reason": None,
                                    "recorded_at": now,
                                }
                            ],
                        )
                return Charge(charged, spent_after, not billed)
            except IntegrityError:
                # PostgreSQL: another process inserted the day's row first; try again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def credit(self, clicks: Sequence[tuple[str, str]], *, now: dt.datetime) -> int:
        """Credit back billed clicks found invalid later (``(click_id, reason)``); a click is
        credited at most once. Returns how many were credited now.
        """
        if not clicks:
            return 0
        reasons = dict(clicks)
        credited = 0
        with self.store.session(write=True) as session:
            charges = session.execute(
                select(AdLedgerEntry).where(
                    AdLedgerEntry.kind == "charge", AdLedgerEntry.click_id.in_(list(reasons))
                )
            ).scalars()
            done = set(
                session.scalars(
                    select(AdLedgerEntry.click_id).where(
                        AdLedgerEntry.kind == "credit", AdLedgerEntry.click_id.in_(list(reasons))
                    )
                )
            )
            for entry in list(charges):
                if entry.click_id in done:
                    continue
                session.add(
                    AdLedgerEntry(
                        click_id=entry.click_id,
                        campaign=entry.campaign,
                        day=entry.day,
                        kind="credit",
                        amount=-entry.amount,
                        reason=reasons[entry.click_id],
                        recorded_at=now,
                    )
                )
                session.execute(
                    update(AdClick)
                    .where(AdClick.click_id == entry.click_id)
                    .values(valid=False, reason=reasons[entry.click_id])
                )
                credited += 1
        return credited

    def spend_on(self, day: dt.date) -> dict[str, float]:
        """Billed spend of every campaign on ``day`` (before later credits)."""
        with self.store.session() as session:
            rows = session.execute(
                select(AdBudgetDay.campaign, AdBudgetDay.spent).where(AdBudgetDay.day == day)
            ).all()
        return {str(c): float(s) for c, s in rows}

    def net_spend(self) -> float:
        """Charges minus credits, everything ever billed."""
        with self.store.session() as session:
            total = session.scalar(select(func.coalesce(func.sum(AdLedgerEntry.amount), 0.0)))
        return float(total or 0.0)


class LogWriter:
    """Writes impressions, refused clicks, render times and conversions in batches from a
    background thread.
    """

    def __init__(
        self,
        store: OperationalStore,
        *,
        flush_seconds: float = 0.2,
        batch_size: int = 2000,
        after_flush: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self.batch_size = batch_size
        self.after_flush = after_flush
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="jingzhun-ads-log", daemon=True)
        self._closed = False
        self.errors: list[str] = []
        self._thread.start()

    def impression(self, row: dict[str, Any]) -> None:
        """Queue one ``ad_impressions`` row."""
        self._queue.put(("impression", row))

    def click(self, row: dict[str, Any]) -> None:
        """Queue one ``ad_clicks`` row that is not billed (refused clicks)."""
        self._queue.put(("click", row))

    def rendered(self, impression_id: str, at: dt.datetime) -> None:
        """Queue the time an impression was rendered (the placement's beacon)."""
        self._queue.put(("rendered", (impression_id, at)))

    def conversion(self, row: dict[str, Any]) -> None:
        """Queue one ``ad_conversions`` row."""
        self._queue.put(("conversion", row))

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything queued so far is written."""
        done = threading.Event()
        self._queue.put(("flush", done))
        if not done.wait(timeout):
            raise TimeoutError("the ads log writer did not flush in time")

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(("stop", None))
        self._thread.join(timeout=60)

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[tuple[str, Any]] = []
            try:
                batch.append(self._queue.get(timeout=self.flush_seconds))
            except queue.Empty:
                continue
            deadline = dt.datetime.now().timestamp() + self.flush_seconds
            while len(batch) < self.batch_size:
                wait = deadline - dt.datetime.now().timestamp()
                if batch[-1][0] in ("flush", "stop") or wait <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=wait))
                except queue.Empty:
                    break
            stop = any(kind == "stop" for kind, _ in batch)
            self._write(batch)

    def _write(self, batch: list[tuple[str, Any]]) -> None:
        impressions = [p for k, p in batch if k == "impression"]
        clicks = [p for k, p in batch if k == "click"]
        conversions = [p for k, p in batch if k == "conversion"]
        rendered = [p for k, p in batch if k == "rendered"]
        try:
            if impressions or clicks or conversions or rendered:
                with self.store.session(write=True) as session:
                    if impressions:
                        session.execute(insert(AdImpression), impressions)
                    if clicks:
                        session.execute(insert(AdClick), clicks)
                    if conversions:
                        known = set(
                            session.scalars(
                                select(AdConversion.conversion_id).where(
                                    AdConversion.conversion_id.in_(
                                        [c["conversion_id"] for c in conversions]
                                    )
                                )
                            )
                        )
                        fresh = {
                            c["conversion_id"]: c
                            for c in conversions
                            if c["conversion_id"] not in known
                        }
                        if fresh:
                            session.execute(insert(AdConversion), list(fresh.values()))
                    for impression_id, at in rendered:
                        session.execute(
                            update(AdImpression)
                            .where(
                                AdImpression.impression_id == impression_id,
                                AdImpression.rendered_at.is_(None),
                            )
                            .values(rendered_at=at)
                        )
            if self.after_flush is not None:
                self.after_flush()
        except Exception as exc:  # the serving thread must not die with the log
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            for kind, payload in batch:
                if kind == "flush":
                    payload.set()


def read_table(
    store: OperationalStore,
    model: Any,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> pd.DataFrame:
    """A log table as a DataFrame (timestamps as UTC), rows in [start, end) of its time."""
    table = model.__table__
    query = select(table)
    time_column = {
        "ad_impressions": "served_at",
        "ad_clicks": "clicked_at",
        "ad_conversions": "converted_at",
        "ad_ledger": "recorded_at",
    }.get(table.name)
    if time_column is not None and start is not None:
        query = query.where(table.c[time_column] >= start)
    if time_column is not None and end is not None:
        query = query.where(table.c[time_column] < end)
    with store.engine.connect() as connection:
        result = connection.execute(query)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for column in table.columns:
        if column.name in frame and column.name.endswith("_at") and len(frame):
            frame[column.name] = pd.to_datetime(frame[column.name], utc=True)
    return frame


@dataclass
class AdLogs:
    """The ads tables read for analysis."""

    impressions: pd.DataFrame
    clicks: pd.DataFrame
    conversions: pd.DataFrame
    ledger: pd.DataFrame


def read_logs(
    store: OperationalStore,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> AdLogs:
    """Impressions, clicks, conversions and ledger entries in [start, end)."""
    return AdLogs(
        read_table(store, AdImpression, start=start, end=end),
        read_table(store, AdClick, start=start, end=end),
        read_table(store, AdConversion, start=start, end=end),
        read_table(store, AdLedgerEntry),
    )
