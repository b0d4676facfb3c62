"""Membership over time: ``segment_members`` (who is in now), ``segment_changes`` (who
entered or exited at which build) and ``segment_snapshots`` (counts per build).

A build evaluates every segment in dependency order on the profiles' ``as_of``, compares the
members with the stored ones and writes the three tables: all three are staged in full, then
swapped in one transaction, so a build that stops leaves the stored tables as they were.
Rebuilding the same date finds no changes (idempotent). Membership at an earlier build is
the replay of ``segment_changes`` up to it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from jingzhun.engine import Engine
from jingzhun.profile import AsOf
from jingzhun.segments._compile import Catalog, _Compiler
from jingzhun.segments._spec import SegmentSpec, dependency_order

SEGMENT_MEMBERS = "segment_members"
SEGMENT_CHANGES = "segment_changes"
SEGMENT_SNAPSHOTS = "segment_snapshots"

_TS = pa.timestamp("us", tz="UTC")
MEMBERS_SCHEMA = pa.schema(
    [
        ("segment", pa.string()),
        ("customer_key", pa.string()),
        ("since_build", pa.string()),
        ("since", pa.date32()),
    ]
)
CHANGES_SCHEMA = pa.schema(
    [
        ("segment", pa.string()),
        ("customer_key", pa.string()),
        ("change", pa.string()),  # entered | exited
        ("build_id", pa.string()),
        ("as_of", pa.date32()),
        ("changed_at", _TS),
    ]
)
SNAPSHOTS_SCHEMA = pa.schema(
    [
        ("segment", pa.string()),
        ("build_id", pa.string()),
        ("as_of", pa.date32()),
        ("built_at", _TS),
        ("members", pa.int64()),
        ("entered", pa.int64()),
        ("exited", pa.int64()),
        ("rule_fingerprint", pa.string()),
    ]
)
_CURRENT = "_segment_current_next"
CURRENT_SCHEMA = pa.schema([("segment", pa.string()), ("customer_key", pa.string())])
_STAGE = {
    SEGMENT_MEMBERS: ("_segment_members_next", MEMBERS_SCHEMA),
    SEGMENT_CHANGES: ("_segment_changes_next", CHANGES_SCHEMA),
    SEGMENT_SNAPSHOTS: ("_segment_snapshots_next", SNAPSHOTS_SCHEMA),
}


@dataclass
class SegmentsReport:
    """What a segments build did: members, entered and exited per segment."""

    build_id: str
    as_of: dt.date
    segments: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"build_id": self.build_id, "as_of": self.as_of, "segments": self.segments}


def rule_fingerprint(spec: SegmentSpec) -> str:
    """A short hash of the rule as parsed, so a snapshot says which rule it counted."""
    return hashlib.sha256(repr(spec.rule).encode()).hexdigest()[:12]


def _stored(engine: Engine, name: str, schema: pa.Schema) -> ir.Table:
    # Created empty on the first build: an in-memory table would not reach every engine.
    engine.create(name, schema)
    return engine.read(name)


def build_segments(
    engine: Engine,
    specs: Sequence[SegmentSpec],
    *,
    as_of: dt.date,
    build_id: str,
    include_late_loads: bool = False,
    now: dt.datetime | None = None,
) -> SegmentsReport:
    """Evaluate every segment and record who entered and exited since the last build."""
    ordered = dependency_order(specs)
    moment = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    compiler = _Compiler(
        engine,
        Catalog.from_engine(engine),
        AsOf(as_of, include_late_loads),
        {s.name: s for s in specs},
    )
    names = [s.name for s in ordered]
    old_members = _stored(engine, SEGMENT_MEMBERS, MEMBERS_SCHEMA)
    old_changes = _stored(engine, SEGMENT_CHANGES, CHANGES_SCHEMA)
    old_snapshots = _stored(engine, SEGMENT_SNAPSHOTS, SNAPSHOTS_SCHEMA)
    build = ibis.literal(build_id)
    day = ibis.literal(as_of, type="date")
    at = ibis.literal(moment, type="timestamp")

    _clear_staging(engine)
    # Each rule is evaluated once, into a staging table; the diffs read that table.
    engine.create(_CURRENT, CURRENT_SCHEMA)
    for spec in ordered:
        current = compiler.compile(spec).members.select(
            segment=ibis.literal(spec.name), customer_key="customer_key"
        )
        engine.write(_CURRENT, current)
    current = engine.read(_CURRENT)
    before = old_members.filter(old_members.segment.isin(names))
    same = [current.segment == before.segment, current.customer_key == before.customer_key]
    stayed = before.semi_join(
        current, [before.segment == current.segment, before.customer_key == current.customer_key]
    )
    entered = current.anti_join(before, same)
    exited = before.anti_join(
        current, [before.segment == current.segment, before.customer_key == current.customer_key]
    )
    new_members = ibis.union(
        stayed.select(*MEMBERS_SCHEMA.names),
        entered.select("segment", "customer_key", since_build=build, since=day),
    )
    changes_now = ibis.union(
        *[
            rows.select(
                "segment",
                "customer_key",
                change=ibis.literal(change),
                build_id=build,
                as_of=day,
                changed_at=at,
            )
            for rows, change in ((entered, "entered"), (exited, "exited"))
        ]
    )
    _stage(engine, SEGMENT_MEMBERS, new_members)
    _stage(engine, SEGMENT_CHANGES, old_changes)
    staging_changes, _ = _STAGE[SEGMENT_CHANGES]
    engine.write(staging_changes, changes_now.select(*CHANGES_SCHEMA.names))
    counts = {
        r["segment"]: int(r["n"])
        for r in engine.execute(
            current.group_by("segment").aggregate(n=current.count())
        ).to_pylist()
    }
    staged = engine.read(staging_changes)
    staged = staged.filter(staged.build_id == build_id)
    moved = engine.execute(
        staged.group_by(["segment", "change"]).aggregate(n=staged.count())
    ).to_pylist()
    report = SegmentsReport(build_id, as_of)
    for name in names:
        report.segments[name] = {"members": counts.get(name, 0), "entered": 0, "exited": 0}
    for row in moved:
        report.segments[row["segment"]][str(row["change"])] = int(row["n"])
    snapshot_rows = pa.Table.from_pylist(
        [
            {
                "segment": spec.name,
                "build_id": build_id,
                "as_of": as_of,
                "built_at": moment.replace(tzinfo=dt.UTC),
                "members": report.segments[spec.name]["members"],
                "entered": report.segments[spec.name]["entered"],
                "exited": report.segments[spec.name]["exited"],
                "rule_fingerprint": rule_fingerprint(spec),
            }
            for spec in ordered
        ],
        schema=SNAPSHOTS_SCHEMA,
    )
    staging_snapshots, _ = _STAGE[SEGMENT_SNAPSHOTS]
    _stage(engine, SEGMENT_SNAPSHOTS, old_snapshots)
    engine.write(staging_snapshots, snapshot_rows)
    with engine.transaction():
        for name, (staging, schema) in _STAGE.items():
            engine.drop(name)
            engine.create(name, schema)
            engine.write(name, engine.read(staging))
    _clear_staging(engine)
    return report


def _stage(engine: Engine, name: str, rows: ir.Table) -> None:
    staging, schema = _STAGE[name]
    engine.drop(staging)
    engine.create(staging, schema)
    engine.write(staging, rows.select(*schema.names))


def _clear_staging(engine: Engine) -> None:
    engine.drop(_CURRENT)
    for staging, _ in _STAGE.values():
        engine.drop(staging)


def members_at(engine: Engine, segment: str, build_id: str) -> ir.Table:
    """Members of ``segment`` right after build ``build_id`` (a replay of the changes)."""
    changes = engine.read(SEGMENT_CHANGES)
    builds = engine.read(SEGMENT_SNAPSHOTS)
    target = builds.filter(builds.build_id == build_id).select(t_at="built_at")
    mine = changes.filter(changes.segment == segment)
    mine = mine.cross_join(target)
    mine = mine.filter(mine.changed_at <= mine.t_at)
    last = ibis.row_number().over(group_by=mine.customer_key, order_by=mine.changed_at.desc())
    ranked = mine.mutate(_jz_n=last)
    latest = ranked.filter((ranked._jz_n == 0) & (ranked.change == "entered"))
    return latest.select("customer_key")
