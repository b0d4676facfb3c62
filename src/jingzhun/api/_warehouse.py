"""How the API reaches the warehouse without ever locking out a build, or being locked out.

A plain DuckDB file lets one process open it and no other beside it (ARCHITECTURE.md,
"plain DuckDB file now, DuckLake when the API server lands"). So the server never reads the
live file: reads go to a **snapshot**, a copy taken while this server holds the warehouse
(after each load of collected events, each campaign plan, and whenever the file changed
since the last copy and is free). Any number of server processes attach the snapshot
read-only, side by side. A build in another process runs undisturbed; reads keep answering
from the last snapshot, a little stale, never "database is locked".

Writes that must reach the warehouse itself (the loader, campaign plans and launches) open
it for the moment they need it (``live()``), one at a time across server processes (a file
lock), and get ``WarehouseBusy`` (HTTP 503 with Retry-After) while another process — a
``jingzhun build`` — holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
import time
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from jingzhun.core import EngineError, EngineKind, NotFoundError, Project, load_project
from jingzhun.engine import ColumnCipher, DuckDBEngine, Engine
from jingzhun.privacy import warehouse_cipher
from jingzhun.store import OperationalStore
from jingzhun.workspace import Workspace

SNAPSHOT_NAME = "warehouse.snapshot.duckdb"
_ATTACHED = "jz_snapshot"


class WarehouseBusy(EngineError):
    """Another process holds the warehouse (a build or an ingest); try again later."""


class NoSnapshot(NotFoundError):
    """The warehouse has not been copied for reading yet (nothing built, or it was busy)."""


class StoreWorkspace(Workspace):
    """A ``Workspace`` over a given engine and the server's shared operational store."""

    def __init__(self, project: Project, engine: Engine | None, store: OperationalStore) -> None:
        super().__init__(project)
        self._given_engine = engine
        self._shared_store = store

    @property
    def engine(self) -> Engine:
        """The engine this workspace was given (a snapshot reader or the live warehouse)."""
        if self._given_engine is None:
            raise NoSnapshot(
                "the warehouse has no snapshot to read yet: ingest and build first "
                "('jingzhun ingest', 'jingzhun build'); the server copies it when it is free"
            )
        return self._given_engine

    @property
    def store(self) -> OperationalStore:
        """The server's operational store (opened and migrated once)."""
        return self._shared_store

    def close(self) -> None:
        """Nothing to close: the engine and store belong to the caller."""


def _lock_file(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


class Warehouse:
    """The server's access to the warehouse: snapshot readers per thread, live sessions."""

    def __init__(self, root: Path, state_dir: Path, store: OperationalStore) -> None:
        self.root = root
        self.state_dir = state_dir
        self.store = store
        self.project = load_project(root)
        self.snapshot_path = state_dir / SNAPSHOT_NAME
        self._lock_path = state_dir / "warehouse.lock"
        self._process_lock = threading.Lock()
        self._readers = threading.local()
        # every thread's reader, so that shutdown closes them all (a DuckDB database left to
        # the interpreter's exit can abort the process while its threads are torn down)
        self._opened: list[Engine] = []
        self._opened_lock = threading.Lock()
        settings = self.project.settings.engine
        path = Path(settings.resolved_path)
        self.live_path = path if path.is_absolute() else root / path
        self.is_duckdb = settings.kind is EngineKind.DUCKDB
        self._copied: tuple[int, int] | None = None

    @cached_property
    def cipher(self) -> ColumnCipher | None:
        """The warehouse's column cipher, made once (None when encryption at rest is off)."""
        return warehouse_cipher(self.project, self.store)

    # -- reading -------------------------------------------------------------------------

    def _generation(self) -> tuple[int, int] | None:
        try:
            stat = self.snapshot_path.stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns

    def reader(self) -> Engine | None:
        """An engine for this thread over the newest snapshot (None when there is none yet).

        On Spark the warehouse is Parquet folders that any process may read: the live
        warehouse is used directly.
        """
        if not self.is_duckdb:
            engine = getattr(self._readers, "engine", None)
            if engine is None:
                from jingzhun.engine import connect

                engine = connect(self.project.settings.engine, self.root)
                self._readers.engine = engine
                self._remember(engine)
            return engine
        generation = self._generation()
        if generation is None:
            return None
        current = getattr(self._readers, "generation", None)
        engine = getattr(self._readers, "engine", None)
        if engine is not None and current == generation:
            return engine
        if engine is not None:
            self._forget(engine)
        engine = DuckDBEngine(None, cipher=self.cipher)
        quoted = str(self.snapshot_path).replace("'", "''")
        # Attach read-only: many processes may attach the same copy at once.
        engine.ibis.raw_sql(f"ATTACH '{quoted}' AS {_ATTACHED} (READ_ONLY)")
        engine.ibis.raw_sql(f"USE {_ATTACHED}")
        self._readers.engine = engine
        self._readers.generation = generation
        self._remember(engine)
        return engine

    def _remember(self, engine: Engine) -> None:
        with self._opened_lock:
            self._opened.append(engine)

    def _forget(self, engine: Engine) -> None:
        with self._opened_lock:
            if engine in self._opened:
                self._opened.remove(engine)
        engine.close()

    def close(self) -> None:
        """Close every thread's snapshot reader (at shutdown)."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for engine in opened:
            with contextlib.suppress(Exception):
                engine.close()

    def workspace(self) -> StoreWorkspace:
        """A workspace that reads the snapshot (for the read-only resources); the first read
        of a server that has no snapshot yet takes one when the warehouse is free.
        """
        engine = self.reader()
        if engine is None and self.refresh_snapshot():
            engine = self.reader()
        return StoreWorkspace(self.project, engine, self.store)

    # -- writing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def live(self, *, wait_seconds: float = 5.0, snapshot: bool = True) -> Iterator[Workspace]:
        """The live warehouse for a moment, one user at a time across server processes.

        Raises ``WarehouseBusy`` when another process keeps it for longer than
        ``wait_seconds``. With ``snapshot`` a fresh read copy is taken before it is let go.
        """
        deadline = time.monotonic() + wait_seconds
        if not self._process_lock.acquire(timeout=wait_seconds):
            raise WarehouseBusy("the warehouse is busy with another request of this server")
        fd = _lock_file(self._lock_path)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise WarehouseBusy(
                            "the warehouse is busy with another server process"
                        ) from None
                    time.sleep(0.05)
            ws = self._open_live(deadline)
            try:
                yield ws
                if snapshot:
                    self._copy(ws.engine)
            finally:
                ws.engine.close()
        finally:
            os.close(fd)  # releases the flock
            self._process_lock.release()

    def _open_live(self, deadline: float) -> StoreWorkspace:
        from jingzhun.engine import connect

        while True:
            try:
                engine = connect(self.project.settings.engine, self.root, cipher=self.cipher)
                return StoreWorkspace(self.project, engine, self.store)
            except EngineError as exc:
                if time.monotonic() > deadline:
                    raise WarehouseBusy(
                        f"the warehouse {self.live_path} is in use by another jingzhun process "
                        "(a build or an ingest); try again when it has finished"
                    ) from exc
                time.sleep(0.2)

    def changed_since_copy(self) -> bool:
        """Whether the live file differs from what was last copied (or nothing was copied)."""
        if not self.is_duckdb or not self.live_path.exists():
            return False
        if self._generation() is None:
            return True
        return self._live_stamp() != self._copied

    def _live_stamp(self) -> tuple[int, int]:
        stat = self.live_path.stat()
        wal = self.live_path.with_name(self.live_path.name + ".wal")
        wal_mtime = wal.stat().st_mtime_ns if wal.exists() else 0
        return stat.st_mtime_ns, max(stat.st_size, 0) + wal_mtime

    def _copy(self, engine: Engine) -> None:
        """Copy the live DuckDB file while this process holds it (nobody else can write)."""
        if not self.is_duckdb or not isinstance(engine, DuckDBEngine):
            return
        engine.ibis.raw_sql("CHECKPOINT")  # everything in the main file, the WAL empty
        self.state_dir.mkdir(parents=True, exist_ok=True)
        partial = self.snapshot_path.with_name(f".{SNAPSHOT_NAME}.{os.getpid()}.partial")
        shutil.copyfile(self.live_path, partial)
        os.replace(partial, self.snapshot_path)  # readers holding the old copy keep it
        self._copied = self._live_stamp()

    def refresh_snapshot(self, *, wait_seconds: float = 0.5) -> bool:
        """Copy the live warehouse for readers when it changed and is free; True when copied."""
        if not self.changed_since_copy():
            return False
        try:
            with self.live(wait_seconds=wait_seconds):
                pass
        except WarehouseBusy:
            return False
        return True

    def describe(self) -> dict[str, Any]:
        """Where reads come from, for ``/api/v1/status``."""
        generation = self._generation()
        return {
            "engine": self.project.settings.engine.kind.value,
            "snapshot": generation is not None,
            "snapshot_taken_at": (
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.snapshot_path.stat().st_mtime))
                if generation is not None
                else None
            ),
        }
