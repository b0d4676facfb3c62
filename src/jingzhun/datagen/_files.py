"""The files the generator writes: their names, target tables and columns.

One place for the layout, so the writer and the source specs cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from jingzhun.core import ARROW_TYPES, CONTRACTS, Target


@dataclass(frozen=True)
class OutputFile:
    """A generated Parquet file: its stem, the canonical table it feeds, its columns."""

    stem: str
    target: Target | None  # None: not a source (the identity answer key)
    columns: tuple[str, ...]
    description: str

    @property
    def filename(self) -> str:
        """File name inside the output folder."""
        return f"{self.stem}.parquet"


def _all(target: Target) -> tuple[str, ...]:
    return CONTRACTS[target].field_names


CUSTOMERS_FILE = OutputFile(
    "customers",
    Target.CUSTOMERS,
    _all(Target.CUSTOMERS),
    "Customer records from the web shop (W- ids) and the store tills (S- ids).",
)
PRODUCTS_FILE = OutputFile(
    "products", Target.PRODUCTS, _all(Target.PRODUCTS), "The product catalogue."
)
# order_lines leaves total_amount (the sum of the lines) and the per-line contact details
# unmapped: the ingest stage derives the first, and the customer id carries the second.
ORDER_LINES_FILE = OutputFile(
    "order_lines",
    Target.ORDER_LINES,
    tuple(f for f in _all(Target.ORDER_LINES) if f not in {"total_amount", "email", "phone"}),
    "Order lines from web, app, stores and marketplaces, returns included.",
)
EVENTS_FILE = OutputFile(
    "events", Target.EVENTS, _all(Target.EVENTS), "Web, app and e-mail events."
)
IDENTITY_TRUTH_FILE = OutputFile(
    "identity_truth",
    None,
    ("customer_id", "person_id"),
    "Which person each customer record belongs to: the answer key for identity resolution.",
)
OUTPUT_FILES: tuple[OutputFile, ...] = (
    CUSTOMERS_FILE,
    PRODUCTS_FILE,
    ORDER_LINES_FILE,
    EVENTS_FILE,
    IDENTITY_TRUTH_FILE,
)


def arrow_schema(output: OutputFile) -> pa.Schema:
    """The schema a generated file has when read back (dictionary columns read as text)."""
    if output.target is None:
        return pa.schema([pa.field(c, pa.string()) for c in output.columns])
    contract = CONTRACTS[output.target]
    return pa.schema([pa.field(c, ARROW_TYPES[contract.field(c).type]) for c in output.columns])
