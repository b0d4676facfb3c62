"""The whole UCI Online Retail file, checked against its published figures.

Published (../shared/data/online_retail/SOURCE.md, matching UCI data set 352): 541,909 lines,
4,372 customers, 25,900 invoices, 38 countries; sum of Quantity x UnitPrice 9,747,747.93.
"""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import ibis
import pytest

from helpers import REPO, shared_file
from jingzhun.core import EngineKind
from jingzhun.workspace import Workspace


@pytest.fixture(scope="module")
def retail(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    shared_file("online_retail/online_retail.csv.gz")
    root = tmp_path_factory.mktemp("examples") / "online_retail"
    shutil.copytree(
        REPO / "examples" / "online_retail",
        root,
        ignore=shutil.ignore_patterns("warehouse", "state", "reports"),
    )
    # The example reads ../../../shared/data relative to itself; point the copy at the same file.
    spec = root / "sources" / "online_retail.yml"
    data = (REPO.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz").as_posix()
    spec.write_text(
        spec.read_text().replace("../../../shared/data/online_retail/online_retail.csv.gz", data)
    )
    ws = Workspace.open(root)
    report = ws.ingest.run()
    assert report.ok, report.to_dict()
    yield ws
    ws.close()


def test_every_line_is_accounted_for(retail: Workspace) -> None:
    (file,) = retail.ingest.run().files  # second run: unchanged
    assert file.status.value == "unchanged"
    files = retail.engine.execute(retail.engine.read("ingest_files")).to_pylist()
    (ledger,) = files
    assert ledger["rows_read"] == 541_909
    # 2,517 lines have a unit price of zero or below (two "Adjust bad debt" lines at -11,062.06)
    assert ledger["rows_quarantined"] == 2_517
    assert ledger["rows_loaded"] == 541_909 - 2_517
    assert ledger["rows_duplicate"] == 0


def test_published_counts(retail: Workspace) -> None:
    engine = retail.engine
    items = engine.read("raw_order_items")
    orders = engine.read("raw_orders")
    quarantined = engine.read("quarantine")
    q_rows = quarantined.select(record=quarantined.record)
    # Customers, invoices and countries over every line read (loaded or quarantined).
    loaded_customers = orders.filter(orders.customer_id.notnull()).select("customer_id")
    quarantined_customers = q_rows.select(
        customer_id=q_rows.record.cast("json")["CustomerID"].str
    ).filter(lambda t: t.customer_id.notnull())
    customers = ibis.union(loaded_customers, quarantined_customers, distinct=True).count()
    assert engine.scalar(customers) == 4_372
    assert engine.scalar(orders.filter(orders.customer_id.notnull()).customer_id.nunique()) == 4_371
    invoices = ibis.union(
        orders.select("order_id"),
        q_rows.select(order_id=q_rows.record.cast("json")["InvoiceNo"].str),
        distinct=True,
    ).count()
    assert engine.scalar(invoices) == 25_900
    assert engine.scalar(orders.order_id.nunique()) == 23_796
    assert engine.scalar(orders.country.nunique()) == 38
    returns = orders.filter(orders.is_return)
    assert engine.scalar(returns.count()) == 3_836  # cancellation invoices, all with prices > 0
    assert engine.scalar(items.filter(items.is_return).count()) == 9_288
    assert engine.scalar(orders.filter(orders.customer_id.isnull()).count()) > 0
    # 9,747,747.93 (to the penny) over all lines, minus the two -11,062.06 lines in quarantine.
    total = engine.scalar(items.amount.sum())
    assert total.quantize(Decimal("0.01")) == Decimal("9747747.93") + Decimal("22124.12")


def test_time_zone_and_range(retail: Workspace) -> None:
    orders = retail.engine.read("raw_orders")
    first = retail.engine.scalar(orders.ordered_at.min())
    last = retail.engine.scalar(orders.ordered_at.max())
    assert first.isoformat() == "2010-12-01T08:26:00+00:00"  # GMT in winter
    assert last.isoformat() == "2011-12-09T12:50:00+00:00"
    # 2011-07-01 08:16 London summer time (BST) is 07:16 UTC
    summer = orders.filter(orders.order_id == "558638")
    assert retail.engine.scalar(summer.ordered_at.max()).isoformat() == "2011-07-01T07:16:00+00:00"


@pytest.mark.spark
def test_spark_agrees_with_duckdb(retail: Workspace, tmp_path: Path) -> None:
    """The same source loaded on Spark gives the same tables (row counts and money)."""
    root = tmp_path / "spark_copy"
    shutil.copytree(retail.project.root, root, ignore=shutil.ignore_patterns("warehouse", "state"))
    yml = root / "jingzhun.yml"
    yml.write_text(
        yml.read_text()
        .replace("kind: duckdb", "kind: spark")
        .replace("path: warehouse/warehouse.duckdb", "path: warehouse/spark")
    )
    with Workspace.open(root) as spark:
        assert spark.project.settings.engine.kind is EngineKind.SPARK
        assert spark.ingest.run().ok
        assert spark.tables() == retail.tables()
        for ws in (spark, retail):
            items = ws.engine.read("raw_order_items")
            assert ws.engine.scalar(items.amount.sum()) == Decimal("9769872.0540")
        by_month = []
        for ws in (spark, retail):
            o = ws.engine.read("raw_orders")
            month = o.ordered_at.truncate("M")
            q = o.group_by(month=month).agg(n=o.count(), revenue=o.total_amount.sum())
            by_month.append(ws.engine.execute(q.order_by("month")).to_pylist())
        assert by_month[0] == by_month[1]
