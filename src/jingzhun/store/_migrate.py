"""Alembic, driven from code: the migration scripts ship inside the package, no alembic.ini.

``env.py`` takes the connection from ``config.attributes["connection"]``, so a migration runs
inside the caller's transaction and under its lock.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, select

from jingzhun.core import EngineError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Key of the PostgreSQL advisory lock that serialises migrations of one database
# (the bytes of "jzstore"); SQLite serialises them with BEGIN IMMEDIATE instead.
_PG_MIGRATION_LOCK = int.from_bytes(b"jzstore", "big")


def alembic_config(connection: Connection | None = None) -> Config:
    """Build an Alembic configuration for the packaged migrations, optionally bound."""
    config = Config()
    # ConfigParser interpolates "%": escape it in case the install path holds one.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def script_directory() -> ScriptDirectory:
    """Read the packaged migration scripts (once per process)."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """Return the newest revision this version of jingzhun knows.

    Migrations written side by side on branches (each revising the same parent) have several
    heads until one merges them; they are named together, joined by ``+`` in sorted order.
    """
    heads = script_directory().get_heads()
    if not heads:  # pragma: no cover - the package always ships migrations
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return "+".join(sorted(heads))


def known_revisions() -> set[str]:
    """Return every revision this version of jingzhun knows."""
    return {script.revision for script in script_directory().walk_revisions()}


def database_revision(connection: Connection) -> str | None:
    """Return the revision a database is at (heads joined by ``+``, as ``head_revision``
    names them), or ``None`` when it was never migrated.
    """
    heads = MigrationContext.configure(connection).get_current_heads()
    return "+".join(sorted(heads)) if heads else None


def check_known(revision: str | None, where: str) -> None:
    """Refuse a database migrated by a newer jingzhun: its schema is one this code cannot read."""
    if revision is None or set(revision.split("+")) <= known_revisions():
        return
    raise EngineError(
        f"the operational store {where} is at schema revision '{revision}', which this "
        f"jingzhun ({_version()}, newest revision '{head_revision()}') does not know: a newer "
        "jingzhun created or migrated it. Upgrade jingzhun to the version that wrote it, or "
        "point stores.operational in jingzhun.yml at another database."
    )


def upgrade_to_head(connection: Connection, where: str) -> None:
    """Run every migration the database lacks, inside the connection's transaction.

    The caller's transaction holds the write lock (SQLite ``BEGIN IMMEDIATE``; here an advisory
    lock on PostgreSQL), so two processes that start at once migrate one after the other and
    the second finds nothing left to do.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
    check_known(database_revision(connection), where)
    command.upgrade(alembic_config(connection), "heads")
    if connection.dialect.name == "sqlite":
        # Migrations run with foreign keys off (SQLite's table rebuilds need that); check after.
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            tables = sorted({str(row[0]) for row in broken})
            raise EngineError(
                f"migrating the operational store {where} would break foreign keys in "
                f"{', '.join(tables)}; nothing was changed"
            )


def _version() -> str:
    try:
        return metadata.version("jingzhun")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown version"
