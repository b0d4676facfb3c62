"""Shared fixtures: engines parametrised over DuckDB and Spark, real data paths."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jingzhun.core import EngineKind, EngineSettings
from jingzhun.engine import Engine, connect

REPO = Path(__file__).resolve().parents[1]
# Real public data sets live next to the checkout (../shared/data), never inside it.
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    """A file under ../shared/data; fails loudly when the data folder is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.fail(f"real data file {path} is missing: the repo expects ../shared/data beside it")
    return path


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
