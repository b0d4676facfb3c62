"""DuckDB and Spark build identical profiles and tag history from the same warehouse."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from profile_fixtures import copy_tables, identity_from_truth

from jingzhun.core import EngineKind, EngineSettings
from jingzhun.datagen import generate, source_specs
from jingzhun.engine import Engine, connect
from jingzhun.profile import ProfileSettings, TagSpec, build_profiles
from jingzhun.workspace import Workspace

START = dt.date(2024, 1, 1)
DATES = (dt.date(2024, 3, 15), dt.date(2024, 4, 29))  # mid-window, then the last day
TAGS = [
    TagSpec("clicker", "boolean", "count_events('email_clicked', 30) >= 1 OR has_push"),
    TagSpec("basket", "number", "ROUND(revenue / GREATEST(orders, 1), 2)"),
    TagSpec(
        "band",
        "string",
        "CASE WHEN m_score >= 4 THEN 'top' WHEN m_score IS NULL THEN 'none' ELSE 'rest' END",
    ),
]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A small generated shop (seeded) loaded into DuckDB, with an identity map from truth."""
    root = tmp_path_factory.mktemp("shop")
    generate(root / "data", customers=400, days=120, seed=11, start=START, region="CN")
    (root / "sources").mkdir()
    for stem, text in source_specs("data").items():
        (root / "sources" / f"gen_{stem}.yml").write_text(text)
    (root / "jingzhun.yml").write_text("name: shop\ncurrency: CNY\nregion: CN\n")
    ws = Workspace.open(root)
    assert ws.ingest.run().ok
    identity_from_truth(ws.engine, pq.read_table(root / "data" / "identity_truth.parquet"))
    yield ws
    ws.close()


Snapshot = dict[str, list[dict[str, Any]]]
SETTINGS = ProfileSettings(source_priority=["gen_customers"], include_late_loads=True)


def _snapshot(engine: Engine) -> Snapshot:
    out = {}
    keys = {"profiles": ("customer_key",), "tag_history": ("customer_key", "tag", "valid_from")}
    for name, key in keys.items():
        rows = engine.execute(engine.read(name)).to_pylist()
        out[name] = sorted(rows, key=lambda r: tuple(r[k] for k in key))
    return out


@pytest.fixture(scope="module")
def duck_builds(generated: Workspace) -> tuple[Snapshot, pa.Table, Snapshot]:
    """DuckDB builds on both dates: the first snapshot, its tag_history, the second."""
    engine = generated.engine
    build_profiles(engine, as_of=DATES[0], settings=SETTINGS, tags=TAGS)
    first, history = _snapshot(engine), engine.execute(engine.read("tag_history"))
    build_profiles(engine, as_of=DATES[1], settings=SETTINGS, tags=TAGS)
    return first, history, _snapshot(engine)


def test_duckdb_profiles_are_rich(duck_builds: tuple[Snapshot, pa.Table, Snapshot]) -> None:
    """The data the engine comparison runs on exercises every part of a profile."""
    first, _, last = duck_builds
    profiles = last["profiles"]
    assert len(profiles) > 300
    for column in ("email", "rfm_segment", "interest_3", "age_band", "lead_score", "clicker"):
        assert any(p[column] not in (None, 0, False) for p in profiles), column
    assert {p["lifecycle_stage"] for p in profiles} >= {"new", "active", "prospect", "at risk"}
    assert len({p["rfm_segment"] for p in profiles}) >= 9
    closed = [r for r in last["tag_history"] if r["valid_to"] == DATES[1]]
    assert closed and len(last["tag_history"]) > len(first["tag_history"])


@pytest.mark.spark
def test_spark_builds_the_same_profiles(
    generated: Workspace, duck_builds: tuple[Snapshot, pa.Table, Snapshot], tmp_path: Path
) -> None:
    """Spark starts from DuckDB's first-date history and builds the second date."""
    _, history, expected = duck_builds
    names = [t for t in generated.engine.tables() if t.startswith("raw_") or t == "identity_map"]
    with connect(EngineSettings(kind=EngineKind.SPARK), tmp_path) as spark:
        copy_tables(generated.engine, spark, names)
        spark.create("tag_history", history.schema)
        spark.write("tag_history", history)
        build_profiles(spark, as_of=DATES[1], settings=SETTINGS, tags=TAGS)
        got = _snapshot(spark)
    assert len(got["profiles"]) == len(expected["profiles"])
    for a, b in zip(expected["profiles"], got["profiles"], strict=True):
        assert a == b, {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    assert got["tag_history"] == expected["tag_history"]
