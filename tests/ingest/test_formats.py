"""JSON Lines, Parquet and gzip sources, and the conversions each column goes through."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from jingzhun.ingest import FileStatus
from jingzhun.workspace import Workspace

PROJECT = "name: app\ntimezone: Asia/Shanghai\ncurrency: CNY\nregion: CN\n"

EVENTS_SPEC = """\
name: app_events
path: data/events-*.jsonl.gz
target: events
max_bad_fraction: 0.5
columns:
  event_type: {from: type, one_of: [track, identify, page, alias]}
  occurred_at: ts
  anonymous_id: anonymousId
  customer_id: userId
  properties: properties
"""

CUSTOMERS_SPEC = """\
name: crm
path: data/crm.parquet
target: customers
columns:
  customer_id: id
  email: email
  birth_date: {from: birthday, format: "%d/%m/%Y"}
  signup_at: signup
  email_consent: {from: opt_in, true_values: ["Y"], false_values: ["N"]}
  attributes: extra
"""


def _project(root: Path) -> Path:
    (root / "sources").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "jingzhun.yml").write_text(PROJECT)
    (root / "sources" / "events.yml").write_text(EVENTS_SPEC)
    (root / "sources" / "crm.yml").write_text(CUSTOMERS_SPEC)
    return root


def test_jsonl_events_with_offsets_and_nested_properties(tmp_path: Path) -> None:
    root = _project(tmp_path)
    page = {"path": "/"}
    cart = {"sku": "A1", "qty": 2}
    events = [
        {
            "type": "page",
            "ts": "2024-11-11T00:00:05+08:00",
            "anonymousId": "c1",
            "properties": page,
        },
        {"type": "identify", "ts": "2024-11-11 00:01:00", "anonymousId": "c1", "userId": "u9"},
        {"type": "track", "ts": "2024-11-11T00:02:00Z", "userId": "u9", "properties": cart},
        {"type": "click", "ts": "2024-11-11T00:03:00Z", "userId": "u9"},
    ]
    with gzip.open(root / "data" / "events-1.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(e) + "\n" for e in events)
    (root / "sources" / "crm.yml").unlink()
    with Workspace.open(root) as ws:
        report = ws.ingest.run()
        (file,) = report.files
        assert (file.rows_read, file.rows_loaded, file.rows_quarantined) == (4, 3, 1), file.error
        assert "'click' must be one of track, identify, page, alias" in file.problems[0]
        stored = ws.engine.execute(ws.engine.read("raw_events").order_by("_row")).to_pylist()
        # +08:00 offsets and naive Shanghai times both land on 2024-11-10 16:xx UTC
        assert [e["occurred_at"] for e in stored] == [
            datetime(2024, 11, 10, 16, 0, 5, tzinfo=UTC),
            datetime(2024, 11, 10, 16, 1, tzinfo=UTC),
            datetime(2024, 11, 11, 0, 2, tzinfo=UTC),
        ]
        assert json.loads(stored[2]["properties"]) == {"sku": "A1", "qty": 2}
        assert all(e["event_id"].startswith("h") for e in stored)
        assert len({e["event_id"] for e in stored}) == 3
        # the same events in a second file are recognised by their content ids
        with gzip.open(root / "data" / "events-2.jsonl.gz", "wt") as handle:
            handle.writelines(json.dumps(e) + "\n" for e in events[:3])
        again = ws.ingest.run()
        second = next(f for f in again.files if f.file.endswith("events-2.jsonl.gz"))
        assert (second.rows_loaded, second.rows_duplicate) == (0, 3)


def test_parquet_customers(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "sources" / "events.yml").unlink()
    pq.write_table(
        pa.table(
            {
                "id": pa.array([101, 102, 103], pa.int32()),
                "email": [" Li.Wei@Example.com ", None, "x@y.cn"],
                "birthday": ["29/02/1988", "31/02/1990", None],
                "signup": pa.array(
                    [datetime(2024, 1, 1, 8), datetime(2024, 1, 2, 9), None], pa.timestamp("ms")
                ),
                "opt_in": ["Y", "N", "maybe"],
                "extra": ['{"tier": "gold"}', "{}", "not json"],
            }
        ),
        root / "data" / "crm.parquet",
    )
    (root / "sources" / "crm.yml").write_text(
        CUSTOMERS_SPEC.replace("name: crm", "name: crm\nmax_bad_fraction: 0.7")
    )
    with Workspace.open(root) as ws:
        (file,) = ws.ingest.run().files
        assert file.status is FileStatus.LOADED
        assert (file.rows_loaded, file.rows_quarantined) == (1, 2)
        reasons = {
            (r["_row"], r["column"]): r["reason"] for r in ws.ingest.quarantine().to_pylist()
        }
        assert reasons == {
            (2, "birthday"): "is not a date in the format %d/%m/%Y",
            (3, "opt_in"): "is not a yes/no value (Y/N)",
            (3, "extra"): "is not valid JSON",
        }
        (row,) = ws.engine.execute(ws.engine.read("raw_customers")).to_pylist()
        assert row["customer_id"] == "101"
        assert row["email"] == "Li.Wei@Example.com"  # trimmed; normalising is identity's job
        assert row["birth_date"] == date(1988, 2, 29)
        assert row["signup_at"] == datetime(2024, 1, 1, 0, tzinfo=UTC)  # 08:00 in Shanghai
        assert row["email_consent"] is True
        assert row["_row_hash"]


def test_decimal_rounding_is_exact(tmp_path: Path) -> None:
    root = tmp_path
    (root / "sources").mkdir()
    (root / "data").mkdir()
    (root / "jingzhun.yml").write_text("name: shop\ncurrency: EUR\n")
    (root / "sources" / "p.yml").write_text(
        "name: p\npath: data/p.csv\ntarget: products\n"
        "columns:\n  sku: sku\n  price: {from: price, at_least: 0}\n"
    )
    (root / "data" / "p.csv").write_text("sku,price\na,0.00005\nb,0.00015\nc,12345678901234.5678\n")
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
        rows = ws.engine.execute(ws.engine.read("raw_products").order_by("sku")).to_pylist()
        # half-to-even at 4 places, no float on the way
        assert [r["price"] for r in rows] == [
            Decimal("0.0000"),
            Decimal("0.0002"),
            Decimal("12345678901234.5678"),
        ]
        assert {r["currency"] for r in rows} == {"EUR"}


def test_declared_encoding_and_delimiter(tmp_path: Path) -> None:
    """A latin-1, semicolon-separated export with a byte-order mark-free header loads when the
    spec says so; the same file without the encoding is refused with the line named."""
    root = tmp_path
    (root / "sources").mkdir()
    (root / "data").mkdir()
    (root / "jingzhun.yml").write_text("name: shop\ncurrency: EUR\ntimezone: Europe/Paris\n")
    spec = (
        "name: pos\npath: data/pos.csv\ntarget: products\n{csv}"
        "columns:\n  sku: Ref\n  name: Libellé\n  price: {{from: Prix, at_least: 0}}\n"
    )
    (root / "data" / "pos.csv").write_bytes(
        "Ref;Libellé;Prix\nA1;Crème brûlée;4.5\nB2;Café;1.2\n".encode("latin-1")
    )
    (root / "sources" / "pos.yml").write_text(spec.format(csv="csv: {delimiter: ';'}\n"))
    with Workspace.open(root) as ws:
        (file,) = ws.ingest.run().files
        assert file.status is FileStatus.REJECTED
        assert "line 1 is not valid utf-8" in (file.error or "")
    (root / "sources" / "pos.yml").write_text(
        spec.format(csv="csv: {delimiter: ';', encoding: latin-1}\n")
    )
    with Workspace.open(root) as ws:
        (file,) = ws.ingest.run().files
        assert file.status is FileStatus.LOADED, file.error
        names = ws.engine.execute(ws.engine.read("raw_products").order_by("sku")).to_pylist()
        assert [n["name"] for n in names] == ["Crème brûlée", "Café"]
