"""A small generated shop (jingzhun.datagen, British, 120 days from 2024-01-01) built once per
test session, with the ready journeys and their message templates copied in; each test gets
its own copy (warehouse and operational store).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pyarrow as pa

from jingzhun.core import init_project
from jingzhun.datagen import generate, source_specs
from jingzhun.engine import Engine
from jingzhun.journeys import template_files
from jingzhun.workspace import Workspace

AS_OF = dt.date(2024, 4, 29)
SEGMENTS = {
    "buyers": "name: buyers\nrule: frequency >= 2\n",
    "slipping_away": (
        "name: slipping_away\nrule:\n  all:\n    - lifecycle_stage = 'at risk'\n"
        "    - frequency >= 2\n"
    ),
}


def build_shop(root: Path, *, customers: int = 600) -> Path:
    """Generate, ingest and build (identity without the probabilistic matcher)."""
    init_project(root, name="shop", timezone="Europe/London", currency="GBP", region="GB")
    (root / "tags" / "_settings.yml").write_text("include_late_loads: true\n")
    with (root / "jingzhun.yml").open("a") as handle:
        handle.write("identity:\n  allow_same_source_merge: true\n")
    generate(
        root / "data" / "gen",
        customers=customers,
        days=120,
        seed=3,
        start=dt.date(2024, 1, 1),
        region="GB",
    )
    for stem, text in source_specs("data/gen").items():
        (root / "sources" / f"gen_{stem}.yml").write_text(text)
    for name, text in SEGMENTS.items():
        (root / "segments" / f"{name}.yml").write_text(text)
    for target, source in template_files().items():
        (root / target).parent.mkdir(exist_ok=True)
        shutil.copyfile(source, root / target)
    with Workspace.open(root) as ws:
        assert ws.ingest.run().ok
        ws.build(AS_OF, probabilistic=False)
    return root


def copy_shop(shop: Path, target: Path) -> Path:
    """A private copy of the built shop."""
    shutil.copytree(shop, target)
    return target


def add_events(engine: Engine, rows: list[dict[str, object]]) -> None:
    """Append events to ``raw_events`` (lineage columns filled in)."""
    raw = engine.read("raw_events")
    schema = raw.schema().to_pyarrow()
    now = dt.datetime.now(dt.UTC)
    full = []
    for i, row in enumerate(rows):
        full.append(
            {
                "event_id": row["event_id"],
                "event_type": row["event_type"],
                "occurred_at": row["occurred_at"],
                "customer_id": row.get("customer_id"),
                "anonymous_id": None,
                "session_id": None,
                "channel": row.get("channel", "app"),
                "sku": row.get("sku"),
                "properties": row.get("properties"),
                "_source": "gen_events",
                "_file": "test",
                "_row": i + 1,
                "_batch_id": "test-batch",
                "_loaded_at": now,
                "_row_hash": None,
            }
        )
    data = pa.Table.from_pylist(full, schema=schema)
    with engine.transaction():
        engine.write("raw_events", data)


def shared_shop(base: Path) -> Path:
    """The shop built once per test session under ``base`` (pytest's basetemp)."""
    root = base / "journey_shop"
    if not (root / "ready").exists():
        shutil.rmtree(root, ignore_errors=True)
        build_shop(root)
        (root / "ready").write_text("ok")
    return root


def write_journey(root: Path, name: str, text: str) -> Path:
    """Write ``journeys/NAME.yml``."""
    path = root / "journeys" / f"{name}.yml"
    path.write_text(text)
    return path
