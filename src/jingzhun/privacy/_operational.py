"""The person's rows in every operational-store table: found, exported, deleted or anonymised.

Tables are discovered by SQLAlchemy inspection of the live database, so tables other stages
add later (journeys, ads, the API's) are covered without a list here. Every column is read as
text and checked with the person's ``Matcher``. Rows of accountability tables
(``anonymise_tables`` in ``privacy.yml``: the audit log, data-subject requests, runs, the
privacy trail) are kept with the identifiers replaced by ``[erased:<request>]``; every other
row of the person is deleted. Tables protected by triggers against change (the append-only
audit log) have them lifted for this one transaction and put back before it commits.

Afterwards SQLite is vacuumed (and its write-ahead log truncated) so that no deleted page
keeps the values; on PostgreSQL the changed tables get ``VACUUM FULL``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, MetaData, Table, and_, delete, inspect, select, text, update

from jingzhun.privacy._match import Matcher
from jingzhun.store import OperationalStore, StoreCipher
from jingzhun.store._sealed import PREFIX as SEALED_PREFIX

SKIPPED = frozenset({"alembic_version"})


def _reflect(connection: Connection) -> list[Table]:
    metadata = MetaData()
    metadata.reflect(bind=connection)
    return [t for name, t in sorted(metadata.tables.items()) if name not in SKIPPED]


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict | list):
        return value
    return str(value)


def _row_dict(table: Table, row: Any, cipher: StoreCipher | None = None) -> dict[str, Any]:
    """A reflected row as plain values; sealed addresses and subjects opened (with the
    store's cipher) so that the person is found by them.
    """
    values = {c.name: _plain(v) for c, v in zip(table.columns, row, strict=True)}
    if cipher is not None:
        for name, value in values.items():
            if isinstance(value, str) and value.startswith(SEALED_PREFIX):
                values[name] = cipher.open(value)
    return values


def person_rows(store: OperationalStore, matcher: Matcher) -> dict[str, list[dict[str, Any]]]:
    """Every store table's rows of the person, as plain values."""
    found: dict[str, list[dict[str, Any]]] = {}
    with store.engine.connect() as connection:
        for table in _reflect(connection):
            rows = [_row_dict(table, r, store.cipher) for r in connection.execute(select(table))]
            hits = [r for r in rows if matcher.row_hit(r)]
            if hits:
                found[table.name] = hits
    return found


def _key_condition(table: Table, row: dict[str, Any]) -> Any:
    columns = list(table.primary_key.columns) or list(table.columns)
    return and_(*(c == row[c.name] if row[c.name] is not None else c.is_(None) for c in columns))


def _redacted(value: Any, matcher: Matcher, replacement: str) -> Any:
    if isinstance(value, str):
        return matcher.redact(value, replacement)
    if isinstance(value, dict | list):
        return json.loads(matcher.redact(json.dumps(value, ensure_ascii=False), replacement))
    return value


def _triggers(connection: Connection, table: str) -> list[tuple[str, str]]:
    if connection.dialect.name != "sqlite":
        return []
    rows = connection.execute(
        text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
        {"t": table},
    )
    return [(str(name), str(sql)) for name, sql in rows]


def erase_rows(
    store: OperationalStore,
    matcher: Matcher,
    *,
    anonymise: Iterable[str],
    replacement: str,
) -> dict[str, dict[str, int]]:
    """Delete (or anonymise, for ``anonymise`` tables) the person's rows in one transaction.

    Returns ``{table: {"deleted": n} | {"anonymised": n}}``.
    """
    kept = set(anonymise)
    done: dict[str, dict[str, int]] = {}
    changed: list[str] = []
    with store.session(write=True) as session:
        connection = session.connection()
        for table in _reflect(connection):
            rows = [_row_dict(table, r, store.cipher) for r in connection.execute(select(table))]
            hits = [r for r in rows if matcher.row_hit(r)]
            if not hits:
                continue
            triggers = _triggers(connection, table.name)
            for name, _ in triggers:
                connection.execute(text(f'DROP TRIGGER "{name}"'))
            if connection.dialect.name == "postgresql":
                connection.execute(text(f'ALTER TABLE "{table.name}" DISABLE TRIGGER USER'))
            if table.name in kept:
                for row in hits:
                    values = {
                        c.name: _redacted(row[c.name], matcher, replacement)
                        for c in table.columns
                        if c.name not in {k.name for k in table.primary_key.columns}
                    }
                    values = {k: v for k, v in values.items() if v != row[k]}
                    if values:
                        connection.execute(
                            update(table).where(_key_condition(table, row)).values(**values)
                        )
                done[table.name] = {"anonymised": len(hits)}
            else:
                for row in hits:
                    connection.execute(delete(table).where(_key_condition(table, row)))
                done[table.name] = {"deleted": len(hits)}
            if connection.dialect.name == "postgresql":
                connection.execute(text(f'ALTER TABLE "{table.name}" ENABLE TRIGGER USER'))
            for _, sql in triggers:
                connection.execute(text(sql))
            changed.append(table.name)
    if changed:
        vacuum(store, changed)
    return done


def vacuum(store: OperationalStore, tables: Iterable[str] = ()) -> None:
    """Rewrite the database so deleted rows leave no bytes behind (SQLite: VACUUM and a
    truncated write-ahead log; PostgreSQL: VACUUM FULL of the tables).
    """
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if store.engine.dialect.name == "sqlite":
            cursor.execute("PRAGMA secure_delete = ON")
            cursor.execute("VACUUM")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        elif store.engine.dialect.name == "postgresql":
            raw.commit()
            raw.autocommit = True  # type: ignore[attr-defined]
            for name in tables:
                cursor.execute(f'VACUUM FULL "{name}"')
        cursor.close()
    finally:
        raw.close()


def table_names(store: OperationalStore) -> list[str]:
    """Tables of the live store database (migrated by every stage), without Alembic's."""
    with store.engine.connect() as connection:
        return sorted(n for n in inspect(connection).get_table_names() if n not in SKIPPED)
