"""Shared fixtures: engines parametrised over DuckDB and Spark, real data paths."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import REPO, SHARED_DATA, shared_file  # noqa: F401  (conftest's old home of them)
from jingzhun.core import EngineKind, EngineSettings
from jingzhun.engine import Engine, connect

ENGINE_PARAMS = [
    pytest.param(EngineKind.DUCKDB, id="duckdb"),
    pytest.param(EngineKind.SPARK, id="spark", marks=pytest.mark.spark),
]


@pytest.fixture(params=ENGINE_PARAMS)
def engine_kind(request: pytest.FixtureRequest) -> EngineKind:
    """Each engine kind in turn (DuckDB, then Spark)."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def engine(engine_kind: EngineKind, tmp_path: Path) -> Iterator[Engine]:
    """A fresh, empty warehouse on each engine; Spark shares one session per test run."""
    with connect(EngineSettings(kind=engine_kind), tmp_path) as eng:
        yield eng
