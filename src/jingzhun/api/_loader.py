"""The loader: collected messages → ``raw_events`` / ``raw_customers`` → profiles and segments.

Incremental and crash-safe: it reads the collection log after its watermark, writes the rows
as a Parquet batch file under ``state/collect/batches/`` and loads that file with ingest's own
``ingest_file`` (conversion, lineage columns ``_source = 'collect'``, ``_file``, ``_batch_id``,
``_loaded_at``, quarantine, the ``ingest_files`` ledger, one transaction). Only then does the
watermark move. A crash in between loads the same messages again next time, and ingest skips
every row whose ``(_source, event_id)`` is stored: nothing is lost, nothing doubled.

After rows were added it rebuilds identity, profiles and segments (``Workspace.build``), so
entries and exits land in ``segment_changes`` (journey triggers), and copies the warehouse
for the server's readers.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

from jingzhun.api._collect import (
    REFRESH_PENDING,
    WATERMARK,
    CollectedRow,
    CollectionLog,
)
from jingzhun.api._events import (
    CUSTOMER_COLUMNS,
    EVENT_COLUMNS,
    customer_row,
    event_row,
    parse_time,
)
from jingzhun.api._warehouse import Warehouse, WarehouseBusy
from jingzhun.core import SourceSpec, SpecError, SpecProblem, Target
from jingzhun.ingest import FileStatus, ensure_tables, ingest_file

log = logging.getLogger("jingzhun.api.loader")

COLLECT_SOURCE = "collect"  # the _source of every collected row
_BATCH_LIMIT = 100_000


def collect_source_spec(target: Target) -> SourceSpec:
    """The source spec collected rows are loaded with (every field from its own column)."""
    columns = EVENT_COLUMNS if target is Target.EVENTS else CUSTOMER_COLUMNS
    return SourceSpec.model_validate(
        {
            "name": COLLECT_SOURCE,
            "description": "events collected by the HTTP API (Segment spec)",
            "path": f"state/collect/batches/{target.value}-*.parquet",
            "format": "parquet",
            "target": target,
            "timezone": "UTC",
            # checked at the door (400): anything odd left is quarantined, never refused whole
            "max_bad_fraction": 1.0,
            "columns": {name: name for name in columns},
        }
    )


@dataclass
class LoadResult:
    """What one loader pass did."""

    messages: int = 0
    events_loaded: int = 0
    customers_loaded: int = 0
    duplicates: int = 0
    quarantined: int = 0
    watermark: int = 0
    refreshed: bool = False
    snapshot: bool = False
    busy: bool = False
    error: str | None = None
    seconds: float = 0.0
    refresh: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` and ``/api/v1/collect/status``."""
        return asdict(self)


_TIMESTAMPS = ("occurred_at", "signup_at")


def _column(name: str, values: list[str | None]) -> pa.Array:
    """Text as ingest reads it from a file; instants as UTC timestamps (microseconds kept)."""
    if name in _TIMESTAMPS:
        return pa.array(
            [parse_time(v) if v else None for v in values], pa.timestamp("us", tz="UTC")
        )
    return pa.array(values, pa.string())


def _write_batch(path: Path, columns: tuple[str, ...], rows: list[dict[str, str | None]]) -> None:
    table = pa.table({c: _column(c, [r[c] for r in rows]) for c in columns})
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    pq.write_table(table, partial)
    os.replace(partial, path)


class Loader:
    """Moves collected messages into the warehouse and refreshes what depends on them."""

    def __init__(
        self,
        log_: CollectionLog,
        warehouse: Warehouse,
        batch_dir: Path,
        *,
        refresh_as_of: date | None = None,
        refresh_probabilistic: bool = True,
    ) -> None:
        self.log = log_
        self.warehouse = warehouse
        self.batch_dir = batch_dir
        self.refresh_as_of = refresh_as_of
        self.refresh_probabilistic = refresh_probabilistic
        self._lock_path = batch_dir.parent / "loader.lock"
        self.last_result: LoadResult | None = None
        project = warehouse.project
        if COLLECT_SOURCE in project.sources:
            raise SpecError(
                [
                    SpecProblem(
                        project.source_files[COLLECT_SOURCE],
                        None,
                        "name",
                        f"the source name '{COLLECT_SOURCE}' is kept for events collected by "
                        "the HTTP API; rename this source",
                    )
                ]
            )

    def _as_of(self) -> date:
        if self.refresh_as_of is not None:
            return self.refresh_as_of
        zone = ZoneInfo(self.warehouse.project.settings.timezone)
        return datetime.now(zone).date()

    def run_once(self, *, refresh: bool = True, wait_seconds: float = 2.0) -> LoadResult:
        """One pass; a pass already running in another process makes this one return at once."""
        started = time.perf_counter()
        result = LoadResult(watermark=self.log.state(WATERMARK))
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                result.busy = True
                return result
            rows = self.log.after(result.watermark, _BATCH_LIMIT)
            pending = refresh and self.log.state(REFRESH_PENDING) > 0
            if not rows and not pending:
                result.snapshot = self.warehouse.refresh_snapshot()
                return result
            try:
                with self.warehouse.live(wait_seconds=wait_seconds) as ws:
                    if rows:
                        self._load(ws, rows, result)
                    if refresh and self.log.state(REFRESH_PENDING) > 0:
                        report = ws.build(self._as_of(), probabilistic=self.refresh_probabilistic)
                        self.log.set_state(REFRESH_PENDING, 0)
                        result.refreshed = True
                        result.refresh = {
                            "as_of": report.profiles.as_of.isoformat(),
                            "customers": report.profiles.customers,
                            "segments": report.segments.to_dict()
                            if report.segments is not None
                            else None,
                        }
                result.snapshot = True
            except WarehouseBusy as exc:
                result.busy = True
                result.error = str(exc)
            except Exception as exc:  # reported, retried next pass; the log keeps every event
                log.exception("collect loader pass failed")
                result.error = f"{type(exc).__name__}: {exc}"
        finally:
            os.close(fd)
            result.seconds = round(time.perf_counter() - started, 3)
        return result

    def _load(self, ws: Any, rows: list[CollectedRow], result: LoadResult) -> None:
        first, last = rows[0].seq, rows[-1].seq
        events: list[dict[str, str | None]] = []
        customers: list[dict[str, str | None]] = []
        for row in rows:
            message = json.loads(row.body)
            events.append(event_row(message))
            customer = customer_row(message)
            if customer is not None:
                customers.append(customer)
        result.messages = len(rows)
        batches: list[tuple[Target, tuple[str, ...], list[dict[str, str | None]]]] = [
            (Target.EVENTS, EVENT_COLUMNS, events)
        ]
        if customers:
            batches.append((Target.CUSTOMERS, CUSTOMER_COLUMNS, customers))
        ensure_tables(ws.engine)
        written: list[Path] = []
        for target, columns, batch in batches:
            path = self.batch_dir / f"{target.value}-{first:012d}-{last:012d}.parquet"
            _write_batch(path, columns, batch)
            written.append(path)
            report = ingest_file(ws.engine, ws.project, collect_source_spec(target), path)
            if report.status is FileStatus.REJECTED:
                # kept on disk with the log untouched: the next pass tries again
                raise RuntimeError(f"loading {path} failed: {report.error}")
            loaded = report.rows_loaded if report.status is FileStatus.LOADED else 0
            if target is Target.EVENTS:
                result.events_loaded = loaded
                result.duplicates = report.rows_duplicate
            else:
                result.customers_loaded = loaded
            result.quarantined += report.rows_quarantined
        # Watermark and refresh flag move together, after the warehouse has committed the rows.
        self.log.set_state(WATERMARK, last, also={REFRESH_PENDING: 1})
        result.watermark = last
        for path in written:
            path.unlink(missing_ok=True)
