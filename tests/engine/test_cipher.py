"""Personal columns encrypted at rest at the engine seam (issue 11, item 2): sealed on write,
opened on read, invisible in the DuckDB file, and honest about a wrong key.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pyarrow as pa
import pytest

from jingzhun.core import EngineError
from jingzhun.engine import PREFIX, ColumnCipher, DuckDBEngine, personal_columns

EMAILS = [f"person{i}@shop.test" for i in range(50)]


def _customers() -> pa.Table:
    return pa.table(
        {
            "customer_id": [f"C-{i}" for i in range(50)],
            "email": [e if i % 5 else None for i, e in enumerate(EMAILS)],
            "first_name": ["Ann"] * 50,
            "city": ["Leeds"] * 50,
        }
    )


def test_personal_columns_by_name_and_by_table() -> None:
    assert personal_columns("raw_customers", ["customer_id", "email", "city"]) == ["email"]
    assert personal_columns("identifiers", ["kind", "value"]) == ["value"]
    assert personal_columns("_jz_privacy_identifiers", ["value"]) == ["value"]
    assert personal_columns("tag_history", ["tag", "value"]) == []


def test_values_are_sealed_on_disk_and_open_on_read(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    cipher = ColumnCipher(secrets.token_bytes(32))
    with DuckDBEngine(path, cipher=cipher) as engine:
        data = _customers()
        engine.create("raw_customers", data.schema)
        engine.write("raw_customers", data)
        # an expression write (profiles built from raw rows) is sealed too
        engine.create("profiles", pa.schema([("customer_id", pa.string()), ("email", pa.string())]))
        raw = engine.read("raw_customers")
        engine.write("profiles", raw.select("customer_id", "email"))
        back = engine.execute(engine.read("profiles").order_by("customer_id"))
        stored = engine.ibis.raw_sql("SELECT email, first_name, city FROM raw_customers").fetchall()
        grouped = engine.execute(raw.group_by("first_name").agg(n=raw.email.nunique()))
    assert sorted(v for v in back.column("email").to_pylist() if v) == sorted(
        e for i, e in enumerate(EMAILS) if i % 5
    )
    assert grouped.to_pylist() == [{"first_name": "Ann", "n": 40}]
    emails = [e for e, _, _ in stored if e is not None]
    assert len(emails) == 40 and all(e.startswith(PREFIX) for e in emails)
    assert len(set(emails)) == 40  # a fresh nonce per value
    assert all(f.startswith(PREFIX) and c == "Leeds" for _, f, c in stored)
    assert sum(e is None for e, _, _ in stored) == 10  # nulls stay null
    on_disk = path.read_bytes()
    assert not any(e.encode() in on_disk for e in EMAILS)


def test_clear_values_written_before_encryption_are_read_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with DuckDBEngine(path) as engine:
        engine.create("raw_customers", _customers().schema)
        engine.write("raw_customers", _customers())
    with DuckDBEngine(path, cipher=ColumnCipher(secrets.token_bytes(32))) as engine:
        engine.write("raw_customers", _customers())
        emails = engine.execute(engine.read("raw_customers")).column("email").to_pylist()
    assert sorted(e for e in emails if e) == sorted(2 * [e for i, e in enumerate(EMAILS) if i % 5])


def test_a_wrong_key_is_an_error_not_garbage(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with DuckDBEngine(path, cipher=ColumnCipher(secrets.token_bytes(32))) as engine:
        engine.create("raw_customers", _customers().schema)
        engine.write("raw_customers", _customers())
    with (
        DuckDBEngine(path, cipher=ColumnCipher(secrets.token_bytes(32))) as engine,
        pytest.raises(Exception, match="does not open with the warehouse key"),
    ):
        engine.execute(engine.read("raw_customers"))
    with pytest.raises(EngineError, match="32 bytes"):
        ColumnCipher(b"short")
