"""Loads are idempotent, incremental and keep every row accounted for, on both engines."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from helpers import LINES, make_project, write_csv
from jingzhun.core import EngineKind
from jingzhun.ingest import FileStatus
from jingzhun.workspace import Workspace


def test_quarantine_and_shapes(tmp_path: Path, engine_kind: EngineKind) -> None:
    make_project(tmp_path, engine=engine_kind.value)
    write_csv(tmp_path, "a.csv", LINES)
    with Workspace.open(tmp_path) as ws:
        report = ws.ingest.run()
        (file,) = report.files
        assert (file.rows_read, file.rows_loaded, file.rows_quarantined) == (8, 7, 1)
        assert file.tables["raw_orders"] == 6
        # customers: 17850, 13047, 14527, 12583 (guest lines carry no customer)
        assert file.tables["raw_customers"] == 4
        q = ws.ingest.quarantine().to_pylist()
        assert q == [
            {
                "_source": "shop",
                "_file": "data/a.csv",
                "_row": 6,
                "column": "UnitPrice",
                "value": "0",
                "reason": "must be greater than 0",
            }
        ]
        record = ws.engine.execute(ws.engine.read("quarantine").select("record")).to_pylist()
        assert json.loads(record[0]["record"])["StockCode"] == "22139"

        orders = ws.engine.read("raw_orders")
        rows = ws.engine.execute(orders.order_by("order_id")).to_pylist()
        by_id = {r["order_id"]: r for r in rows}
        assert by_id["C536379"]["is_return"] is True
        assert by_id["536365"]["is_return"] is False
        assert by_id["536544"]["customer_id"] is None  # anonymous order kept
        # 6 x 2.55 + 6 x 3.39, exact decimals
        assert by_id["536365"]["total_amount"] == Decimal("35.6400")
        # London winter time is UTC
        assert by_id["536365"]["ordered_at"] == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
        items = ws.engine.read("raw_order_items")
        lines = ws.engine.execute(
            items.filter(items.order_id == "536365").order_by("line_number")
        ).to_pylist()
        assert [(r["line_number"], r["sku"]) for r in lines] == [(1, "85123A"), (2, "71053")]


def test_same_file_twice_adds_nothing(tmp_path: Path, engine_kind: EngineKind) -> None:
    make_project(tmp_path, engine=engine_kind.value)
    write_csv(tmp_path, "a.csv", LINES)
    with Workspace.open(tmp_path) as ws:
        ws.ingest.run()
        before = ws.tables()
        again = ws.ingest.run()
        assert [f.status for f in again.files] == [FileStatus.UNCHANGED]
        assert ws.tables() == before


def test_overlapping_file_counts_duplicates(tmp_path: Path, engine_kind: EngineKind) -> None:
    make_project(tmp_path, engine=engine_kind.value)
    write_csv(tmp_path, "a.csv", LINES[:4])
    with Workspace.open(tmp_path) as ws:
        ws.ingest.run()
        # A re-export that repeats the first four lines and adds two new ones.
        write_csv(tmp_path, "b.csv", LINES[:4] + LINES[6:8])
        report = ws.ingest.run()
        b = next(f for f in report.files if f.file.endswith("b.csv"))
        assert (b.rows_read, b.rows_loaded, b.rows_duplicate) == (6, 2, 4)
        assert ws.engine.count("raw_order_items") == 6
        assert ws.engine.count("raw_orders") == 5


def test_customer_versions_are_kept(tmp_path: Path, engine_kind: EngineKind) -> None:
    make_project(tmp_path, engine=engine_kind.value)
    write_csv(tmp_path, "a.csv", [LINES[3]])
    with Workspace.open(tmp_path) as ws:
        ws.ingest.run()
        moved = LINES[3].replace("536367", "536400").replace("United Kingdom", "EIRE")
        write_csv(tmp_path, "b.csv", [moved])
        ws.ingest.run()
        customers = ws.engine.read("raw_customers")
        rows = ws.engine.execute(customers.order_by("_loaded_at")).to_pylist()
        assert [(r["customer_id"], r["country"]) for r in rows] == [
            ("13047", "United Kingdom"),
            ("13047", "EIRE"),
        ]


def test_failed_load_rolls_back_everything(tmp_path: Path, engine_kind: EngineKind) -> None:
    """A crash after some tables were written leaves none of the file's rows behind."""
    make_project(tmp_path, engine=engine_kind.value)
    write_csv(tmp_path, "a.csv", LINES)
    with Workspace.open(tmp_path) as ws:
        engine = ws.engine
        original_write = engine.write
        calls = {"n": 0}

        def failing_write(name: str, data: object) -> int:
            calls["n"] += 1
            if name == "quarantine":
                raise OSError("disk full")
            return original_write(name, data)  # type: ignore[arg-type]

        engine.write = failing_write  # type: ignore[method-assign]
        with contextlib.suppress(OSError):
            ws.ingest.run()
        engine.write = original_write  # type: ignore[method-assign]
        assert calls["n"] >= 4  # raw tables were written before the failure
        assert sum(ws.tables().values()) == 0
        report = ws.ingest.run()
        assert report.files[0].status is FileStatus.LOADED
        assert ws.engine.count("raw_order_items") == 7
