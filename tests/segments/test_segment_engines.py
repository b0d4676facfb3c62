"""The same rules on DuckDB and Spark: identical members, and the compiled SQL of each
dialect kept as a snapshot so that a change in the SQL shows up in review.

Set JINGZHUN_UPDATE_SNAPSHOTS=1 to rewrite the snapshots after an intended change.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from pathlib import Path

import pytest

from helpers import REPO
from jingzhun.workspace import Workspace

AS_OF = dt.date(2024, 6, 30)
SNAPSHOTS = Path(__file__).parent / "snapshots"
SEGMENTS = ("credit_card_offer", "big_spenders", "birthday_week", "offer_test_cell")


def bank_project(root: Path, engine: str) -> Path:
    shutil.copytree(REPO / "examples" / "bank", root)
    config = root / "jingzhun.yml"
    config.write_text(config.read_text().replace("kind: duckdb", f"kind: {engine}"))
    return root


def normalised(sql: str) -> str:
    """Names made up per process (in-memory tables, Spark views) are replaced by fixed ones."""
    sql = re.sub(r"ibis_pandas_memtable_\w+", "memtable", sql)
    # the Spark engine names its views per process and connection: jz<pid>_<n>_<table>
    sql = re.sub(r"\bjz\d+_\d+_", "", sql)
    return re.sub(r"ibis_pyarrow_memtable_\w+", "memtable", sql).strip() + "\n"


def check_snapshot(name: str, dialect: str, sql: str) -> None:
    path = SNAPSHOTS / name / dialect / "out.sql"
    if os.environ.get("JINGZHUN_UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql)
        if os.environ.get("JINGZHUN_UPDATE_SNAPSHOTS") != "1":
            pytest.fail(f"snapshot {path} was missing and has been written; commit it")
    assert sql == path.read_text(), f"compiled SQL changed; see {path}"


def members(engine_kind: str, root: Path) -> tuple[dict[str, set[str]], dict[str, str]]:
    with Workspace.open(bank_project(root, engine_kind)) as ws:
        assert ws.ingest.run().ok
        ws.build(AS_OF, probabilistic=False)
        sets = {
            name: set(ws.engine.execute(ws.segments.compile(name).members).column(0).to_pylist())
            for name in SEGMENTS
        }
        sql = {name: normalised(ws.segments.sql(name)) for name in SEGMENTS}
    return sets, sql


def test_duckdb_sql_snapshot(tmp_path: Path) -> None:
    sets, sql = members("duckdb", tmp_path / "bank")
    assert sets["credit_card_offer"]
    for name in SEGMENTS:
        check_snapshot(name, "duckdb", sql[name])


@pytest.mark.spark
def test_spark_gives_the_same_members(tmp_path: Path) -> None:
    duck, _ = members("duckdb", tmp_path / "duck")
    spark, sql = members("spark", tmp_path / "spark")
    assert spark == duck
    for name in SEGMENTS:
        check_snapshot(name, "spark", sql[name])
