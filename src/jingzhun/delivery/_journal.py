"""A worker's send journal: a local append-only file of "about to send" and "it ended so".

The delivery log is written once per batch (one transaction per message would cap a run at a
few hundred messages a second on SQLite). If the worker dies in the middle of a batch, the
journal tells its next run, message by message, what happened since the claim:

- no line: never attempted, safe to send;
- ``attempt`` without ``result``: in flight when the process died; the provider may or may
  not have it (asked through a lookup when there is one);
- ``result``: the provider answered; record that answer, do not send again.

Lines are written with one ``write`` each (no buffering in the process), so they survive a
killed process (they are in the operating system's page cache); they are not fsynced, so a
power cut can lose the last ones, which then count as never attempted.

The file is locked (``flock``) while the worker runs: a second worker with the same id on the
same machine is refused instead of recovering the first one's live claims.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

from jingzhun.core import EngineError


@dataclass
class JournalEntry:
    """What the journal knows about one message."""

    attempted_at: float
    status: str | None = None
    provider_id: str | None = None
    detail: str = ""


class SendJournal:
    """The journal of one worker id, locked for the life of the object.

    Parameters
    ----------
    path
        The file, e.g. ``state/delivery/<worker id>.journal``; its folder is made.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise EngineError(
                f"another worker with the same id is running (its journal {path.name} is "
                "locked); give this one another --worker-id"
            ) from None

    def read(self) -> dict[str, JournalEntry]:
        """Every message the journal mentions, by idempotency key (a torn last line is skipped)."""
        entries: dict[str, JournalEntry] = {}
        with open(self._fd, "rb", closefd=False) as handle:
            handle.seek(0)
            for line in handle:
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                key = item.get("k")
                if not isinstance(key, str):
                    continue
                if item.get("e") == "a":
                    entries[key] = JournalEntry(float(item.get("t", 0.0)))
                elif item.get("e") == "r":
                    entry = entries.setdefault(key, JournalEntry(float(item.get("t", 0.0))))
                    entry.status = str(item.get("s"))
                    entry.provider_id = item.get("p")
                    entry.detail = str(item.get("d", ""))
        return entries

    def _append(self, item: dict[str, object]) -> None:
        os.write(self._fd, json.dumps(item, separators=(",", ":")).encode("utf-8") + b"\n")

    def attempt(self, idempotency_key: str, at: float) -> None:
        """Write that a message is about to go to its provider."""
        self._append({"e": "a", "k": idempotency_key, "t": at})

    def result(
        self, idempotency_key: str, at: float, status: str, provider_id: str | None, detail: str
    ) -> None:
        """Write how the provider answered."""
        self._append(
            {"e": "r", "k": idempotency_key, "t": at, "s": status, "p": provider_id, "d": detail}
        )

    def clear(self) -> None:
        """Forget everything: called once the delivery log holds all of it."""
        os.ftruncate(self._fd, 0)

    def close(self) -> None:
        """Release the lock and close the file."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
