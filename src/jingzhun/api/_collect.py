"""The collection log: where an event is durably stored before its request is acknowledged.

A SQLite file of its own (``state/collect/events.db``), apart from the operational store and
the warehouse, so collection never waits for a build. Write-ahead log with
``synchronous=FULL``: a commit returns only after the log is on disk (fsync), so an
acknowledged event survives a killed process and a power cut. ``message_id`` is unique: a
repeated ``messageId`` is dropped by ``INSERT OR IGNORE``.

One fsync costs about 4 ms on this machine, so committing each request alone would cap a
process at ~250 requests/s. ``GroupCommitter`` does what databases call group commit: one
writer thread takes every request waiting, writes them all in one transaction, commits once
and then answers each of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from jingzhun.api._events import Accepted
from jingzhun.core import EngineError
from jingzhun.engine import PREFIX as SEALED
from jingzhun.engine import ColumnCipher

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS collected ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " message_id TEXT NOT NULL UNIQUE,"
    " type TEXT NOT NULL,"
    " body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS loader_state (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
WATERMARK = "loaded_seq"
REFRESH_PENDING = "refresh_pending"
_INSERT = "INSERT OR IGNORE INTO collected (message_id, type, body) VALUES (?, ?, ?)"
_BUSY_MS = 10_000


@dataclass(frozen=True)
class CollectedRow:
    """One stored message: its place in the log, id, type and JSON body."""

    seq: int
    message_id: str
    type: str
    body: str


class CollectionLog:
    """The append-only log of collected messages and the loader's watermark.

    With a ``cipher`` (the warehouse's, ``jingzhun.privacy.warehouse_cipher``) each body is
    stored encrypted (AES-GCM, as the warehouse's personal columns): an ``identify`` carries
    e-mails and names in its traits. Ids and types stay in clear for de-duplication.
    """

    def __init__(self, path: Path, *, cipher: ColumnCipher | None = None) -> None:
        self.path = path
        self.cipher = cipher
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as connection:
            for statement in _SCHEMA:
                connection.execute(statement)

    def connect(self) -> sqlite3.Connection:
        """A connection in WAL mode with full sync; autocommit (transactions are explicit)."""
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=_BUSY_MS / 1000
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
        return connection

    def append(self, messages: Sequence[Accepted]) -> int:
        """Store messages in one durable transaction; returns how many were new."""
        connection = self.connect()
        try:
            return _write(connection, [messages], seal=self.seal)[0]
        finally:
            connection.close()

    def after(self, seq: int, limit: int) -> list[CollectedRow]:
        """Messages stored after position ``seq``, oldest first."""
        connection = self.connect()
        try:
            rows = connection.execute(
                "SELECT seq, message_id, type, body FROM collected WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        finally:
            connection.close()
        return [CollectedRow(seq, mid, kind, self.unseal(body)) for seq, mid, kind, body in rows]

    def seal(self, body: str) -> str:
        """A body as stored (encrypted when the log has a cipher)."""
        return body if self.cipher is None else str(self.cipher.encrypt(body))

    def unseal(self, body: str) -> str:
        """A stored body in clear (bodies stored before encryption are read as they are)."""
        if self.cipher is None:
            if body.startswith(SEALED):
                raise EngineError(
                    f"the collection log {self.path} holds encrypted messages and this server "
                    "has no key: start it in the project (jingzhun serve) so it reads the key"
                )
            return body
        return str(self.cipher.decrypt(body))

    def state(self, name: str) -> int:
        """A loader counter (``loaded_seq``: the last position in the warehouse; 0 when unset)."""
        connection = self.connect()
        try:
            row = connection.execute(
                "SELECT value FROM loader_state WHERE name = ?", (name,)
            ).fetchone()
        finally:
            connection.close()
        return int(row[0]) if row else 0

    def set_state(self, name: str, value: int, *, also: dict[str, int] | None = None) -> None:
        """Set loader counters, durably and together."""
        values = {name: value, **(also or {})}
        connection = self.connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                "INSERT INTO loader_state (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )
            connection.execute("COMMIT")
        finally:
            connection.close()

    def stats(self) -> dict[str, int]:
        """Messages stored, the last position, and how many wait for the loader."""
        loaded = self.state(WATERMARK)
        connection = self.connect()
        try:
            total, last = connection.execute(
                "SELECT count(*), coalesce(max(seq), 0) FROM collected"
            ).fetchone()
            waiting = connection.execute(
                "SELECT count(*) FROM collected WHERE seq > ?", (loaded,)
            ).fetchone()[0]
        finally:
            connection.close()
        return {
            "stored": int(total),
            "last_seq": int(last),
            "loaded_seq": loaded,
            "waiting": int(waiting),
        }

    def has(self, message_id: str) -> bool:
        """Whether a message id is stored."""
        connection = self.connect()
        try:
            row = connection.execute(
                "SELECT 1 FROM collected WHERE message_id = ?", (message_id,)
            ).fetchone()
        finally:
            connection.close()
        return row is not None


def _write(
    connection: sqlite3.Connection,
    groups: Sequence[Sequence[Accepted]],
    lock: int | None = None,
    *,
    seal: Callable[[str], str] | None = None,
) -> list[int]:
    """Write groups of messages in one transaction; how many of each group were new.

    ``lock`` is a file descriptor to ``flock`` first. Server processes take turns through it:
    SQLite's own busy handler sleeps and retries (up to 100 ms a time), which under load
    turns lock waits between processes into long pauses; a blocked ``flock`` wakes at once.
    """
    counts = []
    if lock is not None:
        fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            for messages in groups:
                before = connection.total_changes
                rows = [(m.message_id, m.type, seal(m.body) if seal else m.body) for m in messages]
                connection.executemany(_INSERT, rows)
                counts.append(connection.total_changes - before)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    finally:
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return counts


_Request = tuple[Sequence[Accepted], "asyncio.Future[int]", asyncio.AbstractEventLoop]


def _settle(future: asyncio.Future[int], count: int | None, error: BaseException | None) -> None:
    if future.done():  # the request was cancelled (client gone): nothing to tell
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(count or 0)


def _tell(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[int],
    count: int | None,
    error: BaseException | None,
) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
        loop.call_soon_threadsafe(_settle, future, count, error)


class GroupCommitter:
    """One writer thread that commits every waiting request together (group commit).

    ``await committer.write(messages)`` returns once the messages are on disk, with how
    many of them were new. Start with ``start()``, stop with ``stop()`` (waits for the
    requests already handed over).
    """

    def __init__(self, log: CollectionLog, *, max_group: int = 2000) -> None:
        self.log = log
        self.max_group = max_group
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0

    def start(self) -> None:
        """Start the writer thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="jingzhun-collect-writer", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Write what was handed over, then end the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    async def write(self, messages: Sequence[Accepted]) -> int:
        """Store messages durably; returns how many were new (others had a known messageId)."""
        if not messages:
            return 0
        self.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._queue.put((messages, future, loop))
        # shielded: a client that goes away does not cancel a write already handed over
        return await asyncio.shield(future)

    def _run(self) -> None:
        connection = self.log.connect()
        lock = os.open(
            self.log.path.with_name(self.log.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600
        )
        stopping = False
        try:
            while not stopping:
                first = self._queue.get()
                if first is None:
                    break
                group: list[_Request] = [first]
                size = len(first[0])
                while size < self.max_group:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stopping = True
                        break
                    group.append(more)
                    size += len(more[0])
                self._commit(connection, lock, group)
        finally:
            connection.close()
            os.close(lock)

    def _commit(self, connection: sqlite3.Connection, lock: int, group: list[_Request]) -> None:
        try:
            counts = _write(
                connection, [messages for messages, _, _ in group], lock, seal=self.log.seal
            )
        except BaseException as exc:  # every waiting request hears about it
            for _, future, loop in group:
                _tell(loop, future, None, exc)
            return
        self.commits += 1
        for (_, future, loop), count in zip(group, counts, strict=True):
            _tell(loop, future, count, None)
