"""SQLAlchemy engines for the operational store: URL resolution and SQLite's settings.

SQLite runs in write-ahead-log mode so that readers never wait for a writer, and with a busy
timeout so that a second writer waits its turn instead of failing with "database is locked".
SQLAlchemy emits BEGIN itself (the sqlite3 driver's legacy mode would skip it for SELECT and
DDL), which makes migrations transactional and lets a writer take its lock up front.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import date, datetime
from datetime import time as time_of_day
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from jingzhun.core import EngineError

# How long a writer waits for another writer's lock before giving up. A build holds the lock
# only for its short bookkeeping transactions, so 10 s is generous.
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Execution option naming how a SQLite transaction begins; see ``begin_immediately``.
_BEGIN_OPTION = "jingzhun_sqlite_begin"
_BEGIN_STATEMENTS = {"DEFERRED": "BEGIN", "IMMEDIATE": "BEGIN IMMEDIATE"}
_EXAMPLES = "sqlite:///state/operational.db or postgresql+psycopg://user:password@host/db"


def resolve_url(url: str, root: Path) -> URL:
    """Parse a store URL; a relative SQLite path is placed under ``root`` and its folder made."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise EngineError(
            f"stores.operational '{url}' is not a SQLAlchemy URL; expected one such as {_EXAMPLES}"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed
    if backend != "sqlite":
        raise EngineError(
            f"stores.operational names the '{backend}' database; the operational store runs on "
            f"SQLite or PostgreSQL, for example {_EXAMPLES}"
        )
    database = parsed.database or ""
    if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        raise EngineError(
            f"stores.operational '{url}' is an in-memory SQLite database, which is lost when the "
            "process ends and is not shared between threads; give a file path such as "
            "sqlite:///state/operational.db"
        )
    if parsed.query.get("uri") in ("true", "1"):
        return parsed  # a sqlite3 "file:" URI is passed through untouched
    path = Path(database).expanduser()
    if not path.is_absolute():
        path = root / path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EngineError(
            f"cannot create the folder {path.parent} for the operational store: {exc.strerror}"
        ) from None
    return parsed.set(database=str(path))


def _json_default(value: object) -> Any:
    """Write the few non-JSON values a run summary commonly holds."""
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path | Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} value {value!r} cannot be written as JSON")


def dumps(value: object) -> str:
    """Serialise a JSON column value; dates become ISO 8601 text, non-ASCII text stays as is."""
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def create_store_engine(url: URL, *, foreign_keys: bool = True, pooled: bool = True) -> Engine:
    """Create the engine for a resolved store URL; connections are made lazily, on first use.

    Parameters
    ----------
    foreign_keys
        Enforce foreign keys on SQLite. Migrations turn this off, as SQLite's table rebuilds
        (batch mode) require.
    pooled
        Keep connections in a pool; migrations use a single throwaway connection instead.
    """
    options: dict[str, Any] = {"json_serializer": dumps}
    if not pooled:
        options["poolclass"] = NullPool
    try:
        engine = create_engine(url, **options)
    except (ModuleNotFoundError, NoSuchModuleError) as exc:
        hint = (
            "pip install 'psycopg[binary]' and use a postgresql+psycopg:// URL"
            if url.get_backend_name() == "postgresql"
            else "install the driver that the URL names"
        )
        raise EngineError(
            f"the database driver for {url.render_as_string(hide_password=True)} is not "
            f"installed ({exc}); {hint}"
        ) from None
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, foreign_keys=foreign_keys)
    return engine


def _configure_sqlite(engine: Engine, *, foreign_keys: bool) -> None:
    """Set WAL, the busy timeout and foreign keys on every new connection; emit BEGIN ourselves."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: ConnectionPoolEntry) -> None:
        # Turn off the driver's own BEGIN handling; the "begin" listener below takes over.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first, so that switching to WAL waits for a lock instead of failing.
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS:d}")
            _switch_to_wal(cursor)
            cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(_BEGIN_STATEMENTS[mode])


def _switch_to_wal(cursor: Any) -> None:
    """Put the database file in WAL mode (it stays so), retrying while another opens it.

    Switching a new file from its rollback journal to WAL needs the file to itself, and SQLite
    answers "database is locked" at once, without the busy timeout, when two processes open a
    new store together; once the file is in WAL mode this is a no-op.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def begin_immediately(engine: Engine) -> Engine:
    """Return the same engine with SQLite transactions taking the write lock as they begin.

    A deferred transaction that first reads and then writes fails at once with "database is
    locked" if another writer committed in between (SQLite's busy timeout does not cover that
    case); taking the lock up front makes it wait its turn instead. PostgreSQL ignores this.
    """
    return engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
