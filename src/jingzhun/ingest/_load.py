"""Load source files into the raw tables: incremental, idempotent, atomic per file."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import numpy as np
import pyarrow as pa

from jingzhun.core import (
    CONTRACTS,
    LINEAGE_FIELDS,
    STORED_TABLES,
    IngestError,
    Project,
    SourceSpec,
    Target,
)
from jingzhun.engine import Engine, arrow_schema
from jingzhun.ingest._convert import Problem, convert_column
from jingzhun.ingest._privacy import apply_privacy_rules
from jingzhun.ingest._read import file_sha256, read_file
from jingzhun.ingest._shape import shape

QUARANTINE_TABLE = "quarantine"
FILES_TABLE = "ingest_files"

QUARANTINE_SCHEMA = pa.schema(
    [
        ("_source", pa.string()),
        ("_file", pa.string()),
        ("file_sha256", pa.string()),
        ("_batch_id", pa.string()),
        ("_row", pa.int64()),
        ("column", pa.string()),
        ("value", pa.string()),
        ("reason", pa.string()),
        ("record", pa.string()),  # the whole row as read, JSON: nothing is lost
        ("_loaded_at", pa.timestamp("us", tz="UTC")),
    ]
)

FILES_SCHEMA = pa.schema(
    [
        ("_source", pa.string()),
        ("_file", pa.string()),
        ("file_sha256", pa.string()),
        ("_batch_id", pa.string()),
        ("size_bytes", pa.int64()),
        ("rows_read", pa.int64()),
        ("rows_loaded", pa.int64()),
        ("rows_duplicate", pa.int64()),
        ("rows_quarantined", pa.int64()),
        ("_loaded_at", pa.timestamp("us", tz="UTC")),
    ]
)

# The raw table whose rows a file's report counts (order_lines count their items).
_PRIMARY = {
    Target.CUSTOMERS: "raw_customers",
    Target.EVENTS: "raw_events",
    Target.ORDERS: "raw_orders",
    Target.ORDER_ITEMS: "raw_order_items",
    Target.ORDER_LINES: "raw_order_items",
    Target.PRODUCTS: "raw_products",
}
_SHOWN_PROBLEMS = 5


class FileStatus(StrEnum):
    """What happened to one file."""

    LOADED = "loaded"
    UNCHANGED = "unchanged"  # the same bytes were loaded before; nothing to do
    REJECTED = "rejected"  # an error; nothing from the file was stored


@dataclass
class FileReport:
    """The load report of one file: read / loaded / duplicate / quarantined."""

    source: str
    file: str
    status: FileStatus
    sha256: str = ""
    rows_read: int = 0
    rows_loaded: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0
    rows_suppressed: int = 0  # dropped because the person was erased (privacy tombstones)
    tables: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """Plain values for ``--json``."""
        out = asdict(self)
        out["status"] = self.status.value
        return out


@dataclass
class LoadReport:
    """Every file one ``ingest`` touched."""

    files: list[FileReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no file was rejected."""
        return all(f.status is not FileStatus.REJECTED for f in self.files)

    def total(self, name: str) -> int:
        """Sum of one counter over all files."""
        return sum(int(getattr(f, name)) for f in self.files)

    def to_dict(self) -> dict[str, object]:
        """Plain values for ``--json``."""
        return {
            "ok": self.ok,
            "files": [f.to_dict() for f in self.files],
            "totals": {
                k: self.total(k)
                for k in (
                    "rows_read",
                    "rows_loaded",
                    "rows_duplicate",
                    "rows_quarantined",
                    "rows_suppressed",
                )
            },
        }


def ensure_tables(engine: Engine) -> None:
    """Create the raw, quarantine and ledger tables if they are not there yet."""
    for contract in STORED_TABLES:
        engine.create(contract.raw_table, arrow_schema(contract, LINEAGE_FIELDS))
    engine.create(QUARANTINE_TABLE, QUARANTINE_SCHEMA)
    engine.create(FILES_TABLE, FILES_SCHEMA)


def _already_loaded(engine: Engine, source: str, sha: str) -> bool:
    files = engine.read(FILES_TABLE)
    hit = files.filter((files._source == source) & (files.file_sha256 == sha)).count()
    return bool(engine.scalar(hit))


@dataclass
class _Prepared:
    tables: dict[str, pa.Table]
    quarantine: pa.Table
    bad_rows: int
    problems: list[Problem]


def _describe(problem: Problem, raw: pa.Table, limit: int) -> list[str]:
    values = raw[problem.column].take(pa.array(problem.rows[:limit])).to_pylist()
    return [
        f"row {row + 1}, column '{problem.column}': {value!r} {problem.reason}"
        for row, value in zip(problem.rows[:limit], values, strict=True)
    ]


def prepare(
    raw: pa.Table,
    spec: SourceSpec,
    project: Project,
    *,
    file: Path,
    file_label: str,
    sha: str,
    batch_id: str,
    loaded_at: datetime,
) -> _Prepared:
    """Check, convert and shape one file's rows; bad rows become quarantine rows."""
    contract = CONTRACTS[spec.target]
    missing = sorted({c.source for c in spec.columns.values()} - set(raw.column_names))
    if missing:
        raise IngestError(
            file,
            f"missing column(s) {', '.join(repr(m) for m in missing)} named in the source spec",
            hint=f"the file has: {', '.join(raw.column_names)}; fix the file or the 'from' "
            f"names in {project.source_files[spec.name].name}",
        )
    timezone = spec.timezone or project.settings.timezone
    converted: dict[str, pa.Array] = {}
    problems: list[Problem] = []
    for name, column_spec in spec.columns.items():
        result = convert_column(
            raw[column_spec.source], contract.field(name), column_spec, timezone
        )
        converted[name] = result.values
        problems.extend(result.problems)

    bad = np.zeros(raw.num_rows, dtype=bool)
    for problem in problems:
        bad[problem.rows] = True
    rows = pa.array(np.arange(1, raw.num_rows + 1, dtype=np.int64))
    table = pa.table({**converted, "_row": rows})
    good = table.filter(pa.array(~bad))

    defaults: dict[str, object] = {"currency": spec.currency or project.settings.currency}
    lineage: dict[str, object] = {
        "source": spec.name,
        "file": file_label,
        "batch_id": batch_id,
        "loaded_at": loaded_at,
    }
    tables = shape(good, spec.target, defaults, lineage)
    return _Prepared(
        tables, _quarantine_rows(raw, problems, lineage, sha), int(bad.sum()), problems
    )


def _quarantine_rows(
    raw: pa.Table, problems: list[Problem], lineage: dict[str, object], sha: str
) -> pa.Table:
    if not problems:
        return QUARANTINE_SCHEMA.empty_table()
    row_index = np.concatenate([p.rows for p in problems])
    columns = np.concatenate([[p.column] * len(p.rows) for p in problems])
    reasons = np.concatenate([[p.reason] * len(p.rows) for p in problems])
    values = pa.concat_arrays(
        [raw[p.column].combine_chunks().take(pa.array(p.rows)).cast(pa.string()) for p in problems]
    )
    unique_rows = np.unique(row_index)
    records = {
        int(i): json.dumps(rec, default=str, ensure_ascii=False)
        for i, rec in zip(unique_rows, raw.take(pa.array(unique_rows)).to_pylist(), strict=True)
    }
    n = len(row_index)
    return pa.table(
        {
            "_source": [lineage["source"]] * n,
            "_file": [lineage["file"]] * n,
            "file_sha256": [sha] * n,
            "_batch_id": [lineage["batch_id"]] * n,
            "_row": row_index + 1,
            "column": columns.astype(str),
            "value": values,
            "reason": reasons.astype(str),
            "record": [records[int(i)] for i in row_index],
            "_loaded_at": pa.array([lineage["loaded_at"]] * n, pa.timestamp("us", tz="UTC")),
        },
        schema=QUARANTINE_SCHEMA,
    )


def _key_columns(raw_table: str) -> list[str]:
    contract = next(c for c in STORED_TABLES if c.raw_table == raw_table)
    keys = ["_source", *contract.key]
    return [*keys, "_row_hash"] if contract.versioned else keys


def _store_new_rows(engine: Engine, raw_table: str, rows: pa.Table) -> int:
    """Append the rows whose natural key (per source) is not stored yet; returns rows added."""
    if rows.num_rows == 0:
        return 0
    keys = _key_columns(raw_table)
    batch_name = f"_jz_batch_{raw_table}"
    batch = engine.register(batch_name, rows)
    try:
        stored = engine.read(raw_table).select(*keys)
        fresh = batch.anti_join(stored, keys)
        return engine.write(raw_table, fresh)
    finally:
        engine.unregister(batch_name)


def _label(project: Project, path: Path) -> str:
    try:
        return os.path.relpath(path, project.root)
    except ValueError:  # another drive on Windows
        return str(path)


def ingest_file(engine: Engine, project: Project, spec: SourceSpec, path: Path) -> FileReport:
    """Load one file atomically: all its rows (and its quarantine and ledger rows) or nothing."""
    started = time.perf_counter()
    label = _label(project, path)
    report = FileReport(spec.name, label, FileStatus.LOADED)
    try:
        if not path.is_file():
            raise IngestError(path, "the file does not exist (anymore)")
        report.sha256 = file_sha256(path)
        if _already_loaded(engine, spec.name, report.sha256):
            report.status = FileStatus.UNCHANGED
            return report
        raw = read_file(path, spec)
        report.rows_read = raw.num_rows
        batch_id = uuid.uuid4().hex
        loaded_at = datetime.now(UTC)
        prepared = prepare(
            raw,
            spec,
            project,
            file=path,
            file_label=label,
            sha=report.sha256,
            batch_id=batch_id,
            loaded_at=loaded_at,
        )
        shown = [line for p in prepared.problems for line in _describe(p, raw, _SHOWN_PROBLEMS)]
        report.problems = shown[:_SHOWN_PROBLEMS]
        fraction = prepared.bad_rows / raw.num_rows
        if fraction > spec.max_bad_fraction:
            raise IngestError(
                path,
                f"{prepared.bad_rows:,} of {raw.num_rows:,} rows ({fraction:.1%}) break the "
                f"contract, more than the {spec.max_bad_fraction:.1%} the source '{spec.name}' "
                "allows; nothing from this file was stored",
                details=report.problems,
                hint="fix the file or the source spec (column types, formats, checks), or raise "
                "max_bad_fraction if such rows are expected",
            )
        primary = _PRIMARY[spec.target]
        shaped, privacy = apply_privacy_rules(
            engine, project, prepared.tables, quarantine=prepared.quarantine, spec=spec
        )
        # a bad row of an erased person is suppressed, not quarantined
        report.rows_suppressed = (
            privacy.suppressed.get(primary, 0) + privacy.quarantine_rows_suppressed
        )
        quarantine = privacy.quarantine if privacy.quarantine is not None else prepared.quarantine
        with engine.transaction():
            for raw_table, rows in shaped.items():
                report.tables[raw_table] = _store_new_rows(engine, raw_table, rows)
            engine.write(QUARANTINE_TABLE, quarantine)
            report.rows_quarantined = prepared.bad_rows - privacy.quarantine_rows_suppressed
            report.rows_loaded = report.tables.get(primary, 0)
            report.rows_duplicate = (
                raw.num_rows - report.rows_quarantined - report.rows_loaded - report.rows_suppressed
            )
            engine.write(
                FILES_TABLE,
                pa.table(
                    {
                        "_source": [spec.name],
                        "_file": [label],
                        "file_sha256": [report.sha256],
                        "_batch_id": [batch_id],
                        "size_bytes": [path.stat().st_size],
                        "rows_read": [report.rows_read],
                        "rows_loaded": [report.rows_loaded],
                        "rows_duplicate": [report.rows_duplicate],
                        "rows_quarantined": [report.rows_quarantined],
                        "_loaded_at": pa.array([loaded_at], pa.timestamp("us", tz="UTC")),
                    },
                    schema=FILES_SCHEMA,
                ),
            )
    except IngestError as exc:
        report.status = FileStatus.REJECTED
        report.error = str(exc)
        report.rows_loaded = report.rows_duplicate = report.rows_quarantined = 0
        report.rows_suppressed = 0
        report.tables = {}
    finally:
        report.seconds = round(time.perf_counter() - started, 3)
    return report


def ingest(
    engine: Engine,
    project: Project,
    sources: Iterable[str] | None = None,
    *,
    on_file: Callable[[FileReport], None] | None = None,
) -> LoadReport:
    """Load every file of the named sources (all sources when None), one transaction per file."""
    names = list(sources) if sources is not None else sorted(project.sources)
    specs = [project.source(name) for name in names]  # unknown names fail before any work
    ensure_tables(engine)
    report = LoadReport()
    for spec in specs:
        paths = project.source_paths(spec.name)
        if not paths:
            missing = FileReport(spec.name, spec.path, FileStatus.REJECTED)
            missing.error = str(
                IngestError(
                    project.resolve(spec.path),
                    f"no file matches the path of source '{spec.name}'",
                    hint=f"check 'path' in {project.source_files[spec.name]}",
                )
            )
            report.files.append(missing)
            if on_file:
                on_file(missing)
            continue
        for path in paths:
            file_report = ingest_file(engine, project, spec, path)
            report.files.append(file_report)
            if on_file:
                on_file(file_report)
    return report


def quarantine_summary(engine: Engine, source: str | None = None, limit: int = 20) -> pa.Table:
    """The most recent quarantined values, newest first, for ``jingzhun quarantine``."""
    if not engine.exists(QUARANTINE_TABLE):
        return QUARANTINE_SCHEMA.empty_table()
    q = engine.read(QUARANTINE_TABLE)
    if source:
        q = q.filter(q._source == source)
    q = q.order_by([q._loaded_at.desc(), q._file, q._row, q.column]).limit(limit)
    return engine.execute(q.select("_source", "_file", "_row", "column", "value", "reason"))


def quarantine_counts(engine: Engine) -> pa.Table:
    """Quarantined values per source, column and reason."""
    if not engine.exists(QUARANTINE_TABLE):
        return pa.table({"_source": [], "column": [], "reason": [], "rows": []})
    q = engine.read(QUARANTINE_TABLE)
    grouped = q.group_by(["_source", "column", "reason"]).agg(rows=q.count())
    return engine.execute(grouped.order_by([grouped.rows.desc(), "_source", "column", "reason"]))
