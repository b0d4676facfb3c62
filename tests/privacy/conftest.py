"""One small demo run (300 customers) for the privacy tests, with every log line it wrote.

The demo runs the whole loop: ingest, identity, profiles, models, segments, recommendations, a
campaign planned, launched and delivered to a local aiosmtpd server. Tests copy the folder
before changing it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jingzhun.demo import run_demo


@dataclass
class DemoRun:
    """The demo project and everything it printed or logged."""

    root: Path
    said: list[str]
    records: list[tuple[str, str]]  # (logger name, formatted record) of every log record
    stdout: str
    stderr: str


class _Keep(logging.Handler):
    """Keeps every record, formatted with its arguments and any traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[str, str]] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, self.format(record)))


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    root = tmp_path_factory.mktemp("privacy_demo") / "demo"
    said: list[str] = []
    handler = _Keep()
    handler.setLevel(logging.DEBUG)
    logger = logging.getLogger()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            result = run_demo(root, customers=300, seed=7, say=said.append)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert result.ok, result.to_dict()
    yield DemoRun(root, said, handler.records, out.getvalue(), err.getvalue())


@pytest.fixture
def demo_copy(demo_run: DemoRun, tmp_path: Path) -> Path:
    """A private copy of the demo project (tests erase from it)."""
    target = tmp_path / "demo"
    shutil.copytree(demo_run.root, target)
    return target
