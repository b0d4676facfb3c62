"""The engine contract every warehouse passes (``check_engine``), run on DuckDB and Spark."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import ibis
import pyarrow as pa
import pytest

from jingzhun.core import EngineKind, EngineSettings
from jingzhun.engine import Engine, connect

SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("amount", pa.decimal128(18, 4)),
        ("ordered_at", pa.timestamp("us", tz="UTC")),
        ("birth_date", pa.date32()),
        ("is_return", pa.bool_()),
        ("quantity", pa.int64()),
        ("score", pa.float64()),
    ]
)


def _rows() -> pa.Table:
    return pa.table(
        {
            "customer_id": ["a", "b", "b", "c", None],
            "amount": pa.array(["10.5", "2.25", "2.25", "0.0001", "7"]).cast(pa.decimal128(18, 4)),
            "ordered_at": pa.array(
                [
                    datetime(2011, 1, 31, 23, 59, tzinfo=UTC),
                    datetime(2011, 2, 1, 0, 0, tzinfo=UTC),
                    datetime(2011, 2, 1, 0, 0, tzinfo=UTC),
                    datetime(2011, 3, 27, 1, 30, tzinfo=UTC),
                    datetime(2011, 12, 9, 12, 50, tzinfo=UTC),
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "birth_date": pa.array([date(1980, 2, 29), None, None, date(2000, 1, 1), None]),
            "is_return": [False, False, True, False, False],
            "quantity": [1, 2, 2, 3, 4],
            "score": [0.5, 0.25, 0.25, 0.75, 0.1],
        },
        schema=SCHEMA,
    )


def check_engine(engine: Engine) -> dict[str, object]:
    """Run the contract; returns the results so two engines can be compared."""
    assert engine.tables() == []
    assert not engine.exists("orders")
    engine.create("orders", SCHEMA)
    engine.create("orders", SCHEMA)  # creating twice is harmless
    assert engine.exists("orders")
    assert engine.count("orders") == 0
    assert engine.write("orders", _rows()) == 5
    assert engine.write("orders", SCHEMA.empty_table()) == 0

    # A failed transaction leaves nothing behind.
    with pytest.raises(RuntimeError), engine.transaction():
        engine.write("orders", _rows())
        raise RuntimeError("stop")
    assert engine.count("orders") == 5

    # Registered Arrow data joins stored tables; anti-join is how loads stay idempotent.
    batch = engine.register("batch", pa.table({"customer_id": ["a", "z"]}))
    fresh = engine.execute(batch.anti_join(engine.read("orders"), "customer_id"))
    assert fresh.to_pylist() == [{"customer_id": "z"}]
    engine.unregister("batch")
    assert engine.tables() == ["orders"]

    # Writing the result of an expression.
    orders = engine.read("orders")
    engine.create("returns", SCHEMA)
    assert engine.write("returns", orders.filter(orders.is_return)) == 1

    # Types round-trip exactly.
    first = engine.execute(orders.filter(orders.customer_id == "a")).to_pylist()[0]
    assert first["amount"] == Decimal("10.5000")
    assert first["ordered_at"] == datetime(2011, 1, 31, 23, 59, tzinfo=UTC)
    assert first["birth_date"] == date(1980, 2, 29)

    # Aggregates, month buckets in UTC, and a rank with a unique tie-breaker.
    month = orders.ordered_at.truncate("M")
    by_month = orders.group_by(month=month).agg(
        orders=orders.count(), revenue=orders.amount.sum(), buyers=orders.customer_id.nunique()
    )
    ranked = orders.mutate(
        rank=ibis.row_number().over(
            ibis.window(order_by=[orders.amount.desc(), orders.customer_id, orders.quantity])
        ),
        tile=ibis.ntile(2).over(ibis.window(order_by=[orders.score, orders.customer_id])),
    )
    return {
        "by_month": engine.execute(by_month.order_by("month")).to_pylist(),
        "ranked": engine.execute(
            ranked.select("customer_id", "rank", "tile").order_by("rank")
        ).to_pylist(),
        "total": engine.scalar(orders.amount.sum()),
        "latest": engine.scalar(orders.ordered_at.max()),
        "tables": engine.tables(),
    }


def test_check_engine(engine: Engine) -> None:
    result = check_engine(engine)
    assert result["total"] == Decimal("22.0001")
    assert result["latest"] == datetime(2011, 12, 9, 12, 50, tzinfo=UTC)
    months = {r["month"].date(): (r["orders"], r["buyers"]) for r in result["by_month"]}
    assert months[date(2011, 1, 1)] == (1, 1)
    assert months[date(2011, 2, 1)] == (2, 1)  # 00:00 UTC on the 1st is February


@pytest.mark.spark
def test_duckdb_and_spark_agree(tmp_path: Path) -> None:
    results = []
    for kind in (EngineKind.DUCKDB, EngineKind.SPARK):
        with connect(EngineSettings(kind=kind), tmp_path / kind.value) as engine:
            results.append(check_engine(engine))
    assert results[0] == results[1]


def test_duckdb_file_persists(tmp_path: Path) -> None:
    settings = EngineSettings(kind=EngineKind.DUCKDB)
    with connect(settings, tmp_path) as engine:
        engine.create("orders", SCHEMA)
        engine.write("orders", _rows())
    assert (tmp_path / "warehouse" / "warehouse.duckdb").exists()
    with connect(settings, tmp_path) as engine:
        assert engine.count("orders") == 5


@pytest.mark.spark
def test_spark_tables_persist_across_engines(tmp_path: Path) -> None:
    settings = EngineSettings(kind=EngineKind.SPARK)
    with connect(settings, tmp_path) as engine:
        engine.create("orders", SCHEMA)
        engine.write("orders", _rows())
    with connect(settings, tmp_path) as engine:
        assert engine.tables() == ["orders"]
        assert engine.count("orders") == 5
        assert not list((tmp_path / "warehouse" / "spark").glob("_staging/*"))


def test_drop(engine: Engine) -> None:
    engine.create("scratch", SCHEMA)
    engine.write("scratch", _rows())
    engine.drop("scratch")
    assert not engine.exists("scratch")
    engine.drop("scratch")  # dropping what is not there is harmless
    engine.create("scratch", SCHEMA)
    assert engine.count("scratch") == 0


def test_duckdb_file_in_use_by_another_process(tmp_path: Path) -> None:
    """A second writer gets a clear error naming the file, not a traceback."""
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "warehouse" / "warehouse.duckdb"
    with connect(EngineSettings(kind=EngineKind.DUCKDB), tmp_path) as engine:
        engine.create("orders", SCHEMA)
        script = textwrap.dedent(
            f"""
            from pathlib import Path
            from jingzhun.core import EngineError
            from jingzhun.engine import DuckDBEngine
            try:
                DuckDBEngine(Path({str(path)!r}))
            except EngineError as exc:
                print("ERROR", exc)
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        )
    assert done.stdout.startswith("ERROR cannot open the warehouse")
    assert "Another jingzhun process" in done.stdout
