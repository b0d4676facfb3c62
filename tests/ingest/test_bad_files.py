"""Every way a file can be broken gives a clear error and leaves stored data as it was."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from helpers import HEADER, LINES, make_project, warehouse_fingerprint, write_csv
from jingzhun.core import NotFoundError
from jingzhun.ingest import FileStatus
from jingzhun.workspace import Workspace


@pytest.fixture
def loaded(tmp_path: Path) -> Workspace:
    """A project that already holds one good file."""
    make_project(tmp_path)
    write_csv(tmp_path, "a_good.csv", LINES)
    ws = Workspace.open(tmp_path)
    report = ws.ingest.run()
    assert report.ok, report.to_dict()
    yield ws
    ws.close()


def _load_bad(ws: Workspace, name: str) -> tuple[str, dict[str, str], dict[str, str]]:
    before = warehouse_fingerprint(ws.engine)
    report = ws.ingest.run()
    after = warehouse_fingerprint(ws.engine)
    (bad,) = [f for f in report.files if f.file.endswith(name)]
    assert bad.status is FileStatus.REJECTED
    assert not report.ok
    assert bad.rows_loaded == 0
    return bad.error or "", before, after


def test_missing_column(loaded: Workspace) -> None:
    header = HEADER.replace(",UnitPrice", "")
    rows = [",".join(p for i, p in enumerate(line.split(",")) if i != 5) for line in LINES]
    write_csv(loaded.project.root, "b_missing.csv", rows, header=header)
    error, before, after = _load_bad(loaded, "b_missing.csv")
    assert "b_missing.csv" in error
    assert "missing column(s) 'UnitPrice'" in error
    assert "the file has: InvoiceNo, StockCode" in error
    assert before == after


def test_wrong_types(loaded: Workspace) -> None:
    rows = [line.replace(",6,", ",six,") for line in LINES]
    write_csv(loaded.project.root, "b_types.csv", rows)
    error, before, after = _load_bad(loaded, "b_types.csv")
    assert "break the contract" in error
    assert "column 'Quantity': 'six' is not an integer" in error
    assert "row 1," in error
    assert before == after


def test_truncated_gzip(loaded: Workspace) -> None:
    body = (HEADER + "".join(line + "\n" for line in LINES * 200)).encode()
    packed = gzip.compress(body)
    (loaded.project.root / "data" / "b_cut.csv.gz").write_bytes(packed[: len(packed) // 2])
    error, before, after = _load_bad(loaded, "b_cut.csv.gz")
    assert "truncated or corrupt" in error
    assert before == after


def test_not_utf8(loaded: Workspace) -> None:
    path = loaded.project.root / "data" / "b_latin1.csv"
    text = HEADER + "".join(line + "\n" for line in LINES)
    text = text.replace("WHITE METAL LANTERN", "CAFÉ LANTERN")
    path.write_bytes(text.encode("latin-1"))
    error, before, after = _load_bad(loaded, "b_latin1.csv")
    assert "line 3 is not valid utf-8" in error
    assert "0xc9" in error
    assert "csv.encoding" in error
    assert before == after


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "the file is empty (0 bytes)"), (HEADER.encode(), "the file has no data rows")],
    ids=["zero-bytes", "header-only"],
)
def test_empty_file(loaded: Workspace, content: bytes, message: str) -> None:
    (loaded.project.root / "data" / "b_empty.csv").write_bytes(content)
    error, before, after = _load_bad(loaded, "b_empty.csv")
    assert message in error
    assert before == after


def test_unknown_source_name(loaded: Workspace) -> None:
    before = warehouse_fingerprint(loaded.engine)
    with pytest.raises(NotFoundError, match="unknown source 'crm'; sources in this project: shop"):
        loaded.ingest.run(["crm"])
    assert warehouse_fingerprint(loaded.engine) == before


def test_wrong_row_width(loaded: Workspace) -> None:
    write_csv(loaded.project.root, "b_width.csv", [*LINES[:2], "536999,1,2"])
    error, before, after = _load_bad(loaded, "b_width.csv")
    assert "wrong number of columns" in error
    assert before == after


def test_a_good_file_next_to_a_bad_one_still_loads(loaded: Workspace) -> None:
    root = loaded.project.root
    (root / "data" / "b_empty.csv").write_bytes(b"")
    write_csv(
        root, "c_more.csv", ["536999,22728,ALARM CLOCK,2,2010-12-02 10:00:00,3.75,12583,France"]
    )
    report = loaded.ingest.run()
    status = {Path(f.file).name: f.status for f in report.files}
    assert status == {
        "a_good.csv": FileStatus.UNCHANGED,
        "b_empty.csv": FileStatus.REJECTED,
        "c_more.csv": FileStatus.LOADED,
    }
