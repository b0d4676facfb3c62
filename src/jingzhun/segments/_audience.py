"""What a marketer does with a compiled segment: count it, look at it, ask why a customer is
in or out, and export it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from jingzhun.core import NotFoundError, SpecError, SpecProblem
from jingzhun.engine import Engine
from jingzhun.profile import find_customer_key, mask_attribute
from jingzhun.segments._compile import CompiledSegment
from jingzhun.segments._spec import AllOf, AnyOf, NotOf

PII_COLUMNS = ("email", "phone", "first_name", "last_name", "birth_date")
PREVIEW_COLUMNS = (
    "customer_key",
    "email",
    "phone",
    "first_name",
    "city",
    "country",
    "rfm_segment",
    "lifecycle_stage",
    "value_tier",
    "orders",
    "revenue",
    "recency_days",
)
EXPORT_COLUMNS = (
    "customer_key",
    "email",
    "phone",
    "first_name",
    "last_name",
    "city",
    "country",
    "email_consent",
    "sms_consent",
    "push_consent",
    "rfm_segment",
    "lifecycle_stage",
    "value_tier",
)


def count_members(engine: Engine, compiled: CompiledSegment) -> int:
    """How many customers the segment holds."""
    return int(engine.scalar(compiled.count()))


def _columns(compiled: CompiledSegment, wanted: tuple[str, ...] | list[str] | None) -> list[str]:
    available = [c for c in compiled.wide.columns if not c.startswith("_jz_")]
    if wanted is None:
        return [c for c in PREVIEW_COLUMNS if c in available]
    unknown = [c for c in wanted if c not in available]
    if unknown:
        raise SpecError(
            [
                SpecProblem(
                    Path("--columns"),
                    None,
                    "columns",
                    f"unknown column(s) {', '.join(unknown)}; profile columns: "
                    + ", ".join(available),
                )
            ]
        )
    return ["customer_key", *[c for c in wanted if c != "customer_key"]]


def _masked(table: pa.Table) -> pa.Table:
    rows = [
        {name: mask_attribute(name, value) for name, value in row.items()}
        for row in table.to_pylist()
    ]
    columns = {
        name: pa.array(
            [r[name] for r in rows],
            type=pa.string() if name in PII_COLUMNS else table.schema.field(name).type,
        )
        for name in table.column_names
    }
    return pa.table(columns)


def preview(
    engine: Engine,
    compiled: CompiledSegment,
    *,
    limit: int = 20,
    columns: list[str] | None = None,
    mask_pii: bool = True,
) -> pa.Table:
    """The first members by ``customer_key`` with chosen columns; PII masked by default."""
    names = _columns(compiled, columns)
    rows = compiled.member_profiles().select(*names).order_by("customer_key").limit(limit)
    table = engine.execute(rows)
    return _masked(table) if mask_pii else table


def export_members(
    engine: Engine,
    compiled: CompiledSegment,
    out: Path,
    *,
    columns: list[str] | None = None,
    mask_pii: bool = False,
) -> int:
    """Write the members to ``out`` (CSV or Parquet by extension); returns rows written."""
    suffix = "".join(out.suffixes[-2:]).lower() if out.suffix == ".gz" else out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".csv.gz"):
        raise SpecError(
            [
                SpecProblem(
                    out, None, "--out", "write .csv, .csv.gz or .parquet (chosen by extension)"
                )
            ]
        )
    available = [c for c in compiled.wide.columns if not c.startswith("_jz_")]
    names = (
        [c for c in EXPORT_COLUMNS if c in available]
        if columns is None
        else _columns(compiled, columns)
    )
    table = engine.execute(compiled.member_profiles().select(*names).order_by("customer_key"))
    if mask_pii:
        table = _masked(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    if suffix == ".parquet":
        pq.write_table(table, partial)
    else:
        with (
            pa.CompressedOutputStream(partial, "gzip")
            if suffix == ".csv.gz"
            else open(partial, "wb") as sink
        ):
            pacsv.write_csv(table, sink)
    partial.replace(out)
    return table.num_rows


@dataclass
class ExplainStep:
    """One node of the rule for one customer: what it says, the value, true or false."""

    path: str
    depth: int
    rule: str
    value: Any
    result: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "path": self.path,
            "depth": self.depth,
            "rule": self.rule,
            "value": self.value,
            "result": self.result,
        }


@dataclass
class Explanation:
    """Why a customer is in or out of a segment."""

    segment: str
    customer_key: str
    as_of: dt.date
    member: bool
    steps: list[ExplainStep] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "segment": self.segment,
            "customer_key": self.customer_key,
            "as_of": self.as_of.isoformat(),
            "member": self.member,
            "steps": [s.to_dict() for s in self.steps],
        }


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def explain(engine: Engine, compiled: CompiledSegment, customer: str) -> Explanation:
    """Every predicate with the customer's value and whether it holds.

    ``customer`` is a ``customer_key`` or any id the 360° view accepts (source id, device,
    e-mail, phone). PII values shown in the steps are masked.
    """
    key = find_customer_key(engine, customer, compiled.as_of)
    wide = compiled.wide
    names = []
    for column in compiled.columns:
        if column.value is not None:
            names.append(column.value)
        names.append(column.truth)
    row_table = engine.execute(wide.filter(wide.customer_key == key).select(*dict.fromkeys(names)))
    rows = row_table.to_pylist()
    if not rows:
        raise NotFoundError(f"customer {key} has no profile on {compiled.as_of}")
    row = rows[0]
    steps = []
    for column in compiled.columns:
        node = column.node
        value = None
        if column.value is not None:
            value = row[column.value]
            if isinstance(node, AllOf | AnyOf | NotOf):
                value = None
            field_name = getattr(getattr(node, "condition", None), "field", None)
            if field_name is not None:
                value = mask_attribute(field_name, value)
            if value is None and getattr(node, "measure", None) == "count":
                value = 0
        steps.append(
            ExplainStep(
                node.path,
                column.depth,
                node.text(),
                _plain(value),
                bool(row[column.truth]),
            )
        )
    return Explanation(compiled.spec.name, key, compiled.as_of, steps[0].result, steps)
