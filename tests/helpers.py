"""Small builders shared by tests: a project folder with one source and its files."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from jingzhun.engine import Engine

REPO = Path(__file__).resolve().parents[1]
# Real public data sets live next to the checkout (../shared/data), never inside it.
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    """A file under ../shared/data; fails loudly when the data folder is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.fail(f"real data file {path} is missing: the repo expects ../shared/data beside it")
    return path


@contextlib.contextmanager
def project_warehouse(root: Path) -> Iterator[Engine]:
    """A project's warehouse as its stages see it: personal columns decrypted with the
    project's key (a bare DuckDB connection sees them sealed).
    """
    from jingzhun.workspace import Workspace

    with Workspace.open(root) as ws:
        yield ws.engine


PROJECT_YML = """\
name: {name}
timezone: {timezone}
currency: GBP
region: GB
engine:
  kind: {engine}
sources:
  - sources/*.yml
"""

ORDER_LINES_SPEC = """\
name: shop
path: data/*.csv*
target: order_lines
timezone: Europe/London
max_bad_fraction: {max_bad}
columns:
  order_id: InvoiceNo
  is_return: {{from: InvoiceNo, starts_with: "C"}}
  sku: StockCode
  product_name: Description
  quantity: {{from: Quantity, type: integer}}
  ordered_at: {{from: InvoiceDate, format: "%Y-%m-%d %H:%M:%S"}}
  unit_price: {{from: UnitPrice, greater_than: 0}}
  customer_id: CustomerID
  country: Country
"""

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
LINES = [  # the first lines of Online Retail, plus a return, a zero price and guest orders
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850,United Kingdom",  # noqa: E501
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850,United Kingdom",
    "536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,17850,United Kingdom",
    "536367,84879,ASSORTED COLOUR BIRD ORNAMENT,32,2010-12-01 08:34:00,1.69,13047,United Kingdom",
    "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527,United Kingdom",
    "536414,22139,,56,2010-12-01 11:52:00,0,,United Kingdom",
    "536544,21773,DECORATIVE ROSE BATHROOM BOTTLE,1,2010-12-01 14:32:00,2.51,,United Kingdom",
    "536370,22728,ALARM CLOCK BAKELIKE PINK,24,2010-12-01 08:45:00,3.75,12583,France",
]


def make_project(
    root: Path, *, engine: str = "duckdb", max_bad: float = 0.2, timezone: str = "Europe/London"
) -> Path:
    """A project with one order_lines source reading data/*.csv* ."""
    (root / "sources").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "jingzhun.yml").write_text(
        PROJECT_YML.format(name="shop", engine=engine, timezone=timezone)
    )
    (root / "sources" / "shop.yml").write_text(ORDER_LINES_SPEC.format(max_bad=max_bad))
    return root


def write_csv(root: Path, name: str, lines: list[str], header: str = HEADER) -> Path:
    """Write data/NAME with the Online Retail header."""
    path = root / "data" / name
    path.write_text(header + "".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def warehouse_fingerprint(engine: Engine) -> dict[str, str]:
    """A digest of every stored table's rows, to prove a failed load changed nothing."""
    out = {}
    for name in engine.tables():
        table = engine.execute(engine.read(name))
        rows = sorted(repr(sorted(r.items())) for r in table.to_pylist())
        out[name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return out
