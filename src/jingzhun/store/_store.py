"""``OperationalStore``: the small transactional database beside the warehouse."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from sqlalchemy import URL, CursorResult, Engine, select, update
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from jingzhun.core import EngineError, NotFoundError
from jingzhun.store import _migrate
from jingzhun.store._engine import (
    SQLITE_BUSY_TIMEOUT_MS,
    begin_immediately,
    create_store_engine,
    dumps,
    resolve_url,
)
from jingzhun.store._models import Base, Run, RunStatus
from jingzhun.store._sealed import (
    DIALECT_ATTRIBUTE,
    SealedString,
    StoreCipher,
    store_cipher_of,
)
from jingzhun.store._sealed import PREFIX as SEALED_PREFIX


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One command run as read from the store; timestamps are aware UTC datetimes."""

    run_id: str
    command: str
    project: str
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    summary: dict[str, Any]
    error: str | None

    @classmethod
    def _from_row(cls, run: Run) -> RunRecord:
        return cls(
            run_id=run.run_id,
            command=run.command,
            project=run.project,
            status=RunStatus(run.status),
            started_at=run.started_at,
            finished_at=run.finished_at,
            summary=dict(run.summary or {}),
            error=run.error,
        )


class OperationalStore:
    """Consent ledger, journey state, delivery log, run log: SQLite (WAL) or PostgreSQL.

    Open it with ``OperationalStore.open(url, root)`` and bring its schema up to date with
    ``migrate()`` before use; neither the constructor nor ``open`` connects to the database.
    """

    def __init__(self, url: URL, engine: Engine) -> None:
        self.url = url
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(begin_immediately(engine), expire_on_commit=False)
        self._closed = False

    @classmethod
    def open(cls, url: str, root: Path) -> OperationalStore:
        """Open the store a settings URL names; a relative SQLite path is under ``root``.

        Parameters
        ----------
        url
            A SQLAlchemy URL, ``StoreSettings.operational``: ``sqlite:///state/operational.db``
            (made inside ``root``, folder included) or ``postgresql+psycopg://user@host/db``.
        root
            The project folder.
        """
        resolved = resolve_url(url, root)
        return cls(resolved, create_store_engine(resolved))

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for code that needs more than ``session()``."""
        return self._engine

    def seal_with(self, cipher: StoreCipher | None) -> None:
        """Seal addresses and consent subjects with ``cipher`` from now on (``_sealed.py``);
        None writes them in clear again.
        """
        setattr(self._engine.dialect, DIALECT_ATTRIBUTE, cipher)

    @property
    def cipher(self) -> StoreCipher | None:
        """The cipher ``seal_with`` gave, if any."""
        return store_cipher_of(self._engine.dialect)

    def clear_values(self, *, seal: bool = False) -> dict[str, int]:
        """Values of sealed columns still stored in clear, per ``table.column`` (written
        before sealing was on); with ``seal`` they are sealed now, in one transaction.
        """
        cipher = self.cipher
        if seal and cipher is None:
            raise EngineError("the store has no cipher to seal with (seal_with first)")
        found: dict[str, int] = {}
        with self.session(write=seal) as session:
            for table in Base.metadata.sorted_tables:
                for column in table.columns:
                    if not isinstance(column.type, SealedString):
                        continue
                    stored = sa_table(table.name, sa_column("id"), sa_column(column.name))
                    value = stored.c[column.name]
                    rows = session.execute(
                        select(stored.c.id, value).where(
                            value.is_not(None), value.not_like(f"{SEALED_PREFIX}%")
                        )
                    ).all()
                    if not rows:
                        continue
                    found[f"{table.name}.{column.name}"] = len(rows)
                    if seal and cipher is not None:
                        for row_id, clear in rows:
                            session.execute(
                                update(stored)
                                .where(stored.c.id == row_id)
                                .values({column.name: cipher.seal(clear)})
                            )
        return found

    @property
    def where(self) -> str:
        """The store's URL with any password hidden, for messages."""
        return self.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"OperationalStore({self.where!r})"

    # -- schema ------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest revision; does nothing when it is already there.

        Raises ``EngineError`` when the database was migrated by a newer jingzhun.
        """
        self._check_open()
        # A separate, unpooled connection: SQLite needs foreign keys off while tables are
        # rebuilt, and that connection must not return to the pool in that state.
        engine = create_store_engine(self.url, foreign_keys=False, pooled=False)
        try:
            with begin_immediately(engine).begin() as connection:
                _migrate.upgrade_to_head(connection, self.where)
        except SQLAlchemyError as exc:
            raise self._failure("could not be migrated", exc) from exc
        finally:
            engine.dispose()

    def current_revision(self) -> str | None:
        """Return the database's schema revision; ``None`` before the first ``migrate()``."""
        self._check_open()
        try:
            with self._engine.connect() as connection:
                return _migrate.database_revision(connection)
        except SQLAlchemyError as exc:
            raise self._failure("could not be read", exc) from exc

    def head_revision(self) -> str:
        """Return the newest schema revision this version of jingzhun knows."""
        return _migrate.head_revision()

    def check_revision(self) -> None:
        """Raise ``EngineError`` unless the database is at the newest revision."""
        current = self.current_revision()
        _migrate.check_known(current, self.where)
        if current != self.head_revision():
            raise EngineError(
                f"the operational store {self.where} is at schema revision {current!r}, "
                f"not {self.head_revision()!r}; run migrate() (jingzhun does so when it opens "
                "a project)"
            )

    # -- sessions ----------------------------------------------------------------------------

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """Open a session that commits when the block ends and rolls back if it raises.

        Parameters
        ----------
        write
            Take SQLite's write lock when the transaction begins. Use it for a block that
            reads and then writes: otherwise a writer that committed in between makes the
            write fail at once. Readers never need it; in WAL mode they never wait.
        """
        self._check_open()
        factory = self._write_sessions if write else self._sessions
        with factory() as session:
            try:
                yield session
                session.commit()
            except SQLAlchemyError as exc:
                session.rollback()
                raise self._failure("failed", exc) from exc
            except BaseException:
                session.rollback()
                raise

    # -- runs --------------------------------------------------------------------------------

    def start_run(self, command: str, project: str) -> str:
        """Record that a command started on a project; returns the new run's id."""
        run_id = uuid.uuid4().hex
        with self.session(write=True) as session:
            session.add(
                Run(
                    run_id=run_id,
                    command=command,
                    project=project,
                    started_at=datetime.now(UTC),
                    status=RunStatus.RUNNING.value,
                )
            )
        return run_id

    def finish_run(
        self,
        run_id: str,
        status: RunStatus | str,
        summary: Mapping[str, Any],
        error: str | None = None,
    ) -> None:
        """Record how a run ended: ``"ok"`` or ``"failed"``, a JSON summary, the error text.

        Raises ``NotFoundError`` for an unknown run and ``EngineError`` for one that has
        already finished.
        """
        try:
            final = RunStatus(status)
        except ValueError:
            raise ValueError(f"run status must be 'ok' or 'failed', not {status!r}") from None
        if final is RunStatus.RUNNING:
            raise ValueError("finish_run needs the status the run ended with: 'ok' or 'failed'")
        try:
            dumps(dict(summary))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"summary of run {run_id} cannot be stored as JSON: {exc}") from None
        with self.session(write=True) as session:
            # One conditional UPDATE: a run finishes once, even if two callers race.
            finished = cast(
                "CursorResult[Any]",
                session.execute(
                    update(Run)
                    .where(Run.run_id == run_id, Run.status == RunStatus.RUNNING.value)
                    .values(
                        status=final.value,
                        summary=dict(summary),
                        error=error,
                        finished_at=datetime.now(UTC),
                    )
                    .execution_options(synchronize_session=False)
                ),
            )
            if finished.rowcount == 1:
                return
            ended = session.scalar(select(Run.status).where(Run.run_id == run_id))
        if ended is None:
            raise NotFoundError(f"no run with id '{run_id}' in the operational store {self.where}")
        raise EngineError(f"run '{run_id}' has already finished with status '{ended}'")

    def recent_runs(self, limit: int = 20) -> list[RunRecord]:
        """Return the latest runs, newest first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        with self.session() as session:
            runs = session.scalars(select(Run).order_by(Run.id.desc()).limit(limit)).all()
            return [RunRecord._from_row(run) for run in runs]

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close every pooled connection; the store cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise EngineError(f"the operational store {self.where} is closed")

    def _failure(self, what: str, exc: SQLAlchemyError) -> EngineError:
        """Turn a database error into one that says which store and what happened."""
        reason = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc).splitlines()[0]
        message = f"the operational store {self.where} {what}: {reason}"
        if "database is locked" in reason:
            message += (
                f" (another process held the write lock for over "
                f"{SQLITE_BUSY_TIMEOUT_MS // 1000} s; for many writers use PostgreSQL)"
            )
        return EngineError(message)
