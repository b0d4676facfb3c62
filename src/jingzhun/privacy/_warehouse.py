"""The person's rows in every warehouse table: found, exported, deleted; the file compacted.

Tables are discovered (``engine.tables()``), never listed here: raw tables, identity, profiles,
tag history, segments, scores, recommendations, send plans, coupons, and whatever a later
stage adds. A table is rewritten without the person's rows (staged copy, then drop, create
and copy inside one transaction), because the engine seam appends and drops but never
deletes; a rebuild cannot bring them back since the raw rows are gone and tombstones stop
them at the next load.

A DuckDB file keeps the bytes of deleted rows in its free blocks until they are reused, so
after an erasure the file is **compacted**: every table copied into a new file through the
engine seam, which then replaces the old one. The engine must be closed first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import ibis.expr.types as ir
import pyarrow as pa

from jingzhun.core import EngineKind, EngineSettings
from jingzhun.engine import PREFIX, Engine, connect, personal_columns
from jingzhun.privacy._match import Matcher

STAGING_PREFIX = "_jz_privacy_"


def _tables(engine: Engine, skip: Iterable[str]) -> list[str]:
    skipped = set(skip)
    return [t for t in engine.tables() if t not in skipped and not t.startswith(STAGING_PREFIX)]


def person_rows(
    engine: Engine, matcher: Matcher, *, skip: Iterable[str] = ()
) -> dict[str, pa.Table]:
    """Every warehouse table's rows of the person (tables without any left out)."""
    found: dict[str, pa.Table] = {}
    for name in _tables(engine, skip):
        table = engine.read(name)
        condition = matcher.predicate(table)
        if condition is None:
            continue
        rows = engine.execute(table.filter(condition))
        if rows.num_rows:
            found[name] = rows
    return found


def rewrite_table(engine: Engine, name: str, keep: ir.Table) -> None:
    """Replace a table's rows by ``keep`` (an expression over it), all or nothing."""
    staging = STAGING_PREFIX + name
    schema = engine.read(name).schema().to_pyarrow()
    engine.drop(staging)
    engine.create(staging, schema)
    engine.write(staging, keep)
    with engine.transaction():
        engine.drop(name)
        engine.create(name, schema)
        engine.write(name, engine.read(staging))
    engine.drop(staging)


def erase_rows(engine: Engine, matcher: Matcher, *, skip: Iterable[str] = ()) -> dict[str, int]:
    """Delete the person's rows from every warehouse table; rows deleted per table."""
    deleted: dict[str, int] = {}
    for name in _tables(engine, skip):
        table = engine.read(name)
        condition = matcher.predicate(table)
        if condition is None:
            continue
        hits = int(engine.scalar(table.filter(condition).count()))
        if not hits:
            continue
        rewrite_table(engine, name, table.filter(~condition))
        deleted[name] = hits
    return deleted


def unsealed_values(engine: Engine) -> dict[str, int]:
    """Personal values stored in clear, per ``table.column`` (read through an engine without
    a cipher, so that values come back as stored).
    """
    found: dict[str, int] = {}
    for name in _tables(engine, ()):
        table = engine.read(name)
        for column in personal_columns(name, table.columns):
            if not table[column].type().is_string():
                continue
            value = table[column]
            count = int(
                engine.scalar(table.filter(value.notnull() & ~value.startswith(PREFIX)).count())
            )
            if count:
                found[f"{name}.{column}"] = count
    return found


def compact_warehouse(settings: EngineSettings, root: Path) -> Path | None:
    """Copy a DuckDB warehouse into a fresh file and put it in place of the old one, so that
    no deleted row survives in free blocks. Returns the file, or None for engines that keep
    no free blocks (Spark rewrites a table's Parquet folder on every change).

    The warehouse must not be open in this or another process.
    """
    if settings.kind is not EngineKind.DUCKDB:
        return None
    path = Path(settings.resolved_path)
    path = path if path.is_absolute() else root / path
    if not path.exists():
        return None
    fresh = path.with_name(path.name + ".compact")
    for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
        leftover.unlink(missing_ok=True)
    copy_settings = settings.model_copy(update={"path": str(fresh)})
    with connect(settings, root) as old, connect(copy_settings, root) as new:
        for name in old.tables():
            table = old.read(name)
            new.create(name, table.schema().to_pyarrow())
            for batch in table.to_pyarrow_batches(chunk_size=200_000):
                new.write(name, pa.Table.from_batches([batch]))
    os.replace(fresh, path)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
    return path


def compact_duckdb_file(path: Path) -> Path | None:
    """Compact another DuckDB file under the project (a server's read snapshot)."""
    settings = EngineSettings(kind=EngineKind.DUCKDB, path=str(path))
    return compact_warehouse(settings, path.parent)
