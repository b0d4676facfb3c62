"""Generate a seeded retail world and write it as Parquet sources: ``generate``."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jingzhun.datagen._calendar import build_calendar
from jingzhun.datagen._catalog import REGIONS, region_data
from jingzhun.datagen._customers import customer_ids, customers_table, identity_truth_table
from jingzhun.datagen._events import event_chunks
from jingzhun.datagen._files import (
    CUSTOMERS_FILE,
    EVENTS_FILE,
    IDENTITY_TRUTH_FILE,
    ORDER_LINES_FILE,
    OUTPUT_FILES,
    PRODUCTS_FILE,
    OutputFile,
    arrow_schema,
)
from jingzhun.datagen._orders import order_line_chunks, simulate_orders
from jingzhun.datagen._people import build_people
from jingzhun.datagen._products import build_products

# Mean purchase rate of buyers while active (orders a year). After BG/NBD drop-out, before and
# during the window, and with 2.9 lines per order this gives about ten order lines per customer
# in a one-year window, what the benchmark asks of it.
_ORDERS_PER_YEAR = 16.0
_GUEST_SHARE = 0.06  # orders placed without an account
_CHUNK_ROWS = 500_000  # rows per Parquet row group: bounds memory while writing


@dataclass(frozen=True)
class GenerateReport:
    """What ``generate`` wrote: rows and path per file, the inputs, and how long it took."""

    out_dir: Path
    seed: int
    customers: int
    days: int
    start: dt.date
    region: str
    duplicate_share: float
    rows: Mapping[str, int] = field(default_factory=dict)
    paths: Mapping[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready values, for ``--json`` output."""
        return {
            "out_dir": str(self.out_dir),
            "seed": self.seed,
            "customers": self.customers,
            "days": self.days,
            "start": self.start.isoformat(),
            "region": self.region,
            "duplicate_share": self.duplicate_share,
            "rows": dict(self.rows),
            "paths": {k: str(v) for k, v in self.paths.items()},
            "seconds": round(self.seconds, 3),
        }


def generate(
    out_dir: Path,
    *,
    customers: int,
    days: int,
    seed: int,
    start: dt.date = dt.date(2024, 1, 1),
    region: str = "CN",
    duplicate_share: float = 0.03,
    products: int | None = None,
) -> GenerateReport:
    """Write a seeded, realistic retail data set as Parquet sources into ``out_dir``.

    Writes ``customers``, ``products``, ``order_lines`` and ``events`` (columns named after the
    canonical fields of their target tables) and ``identity_truth`` (which customer records are
    one person). The same arguments always give the same data.

    Parameters
    ----------
    out_dir
        Folder to write into; created if missing. Existing files of the same names are replaced.
    customers
        Number of persons. ``customers.parquet`` holds more rows: the second records of
        ``duplicate_share`` of them.
    days
        Length of the window, from ``start`` (00:00 UTC); every order and event lies inside it.
    seed
        Seed of every random choice.
    region
        Market the data looks like: ``CN`` (CNY, Chinese names and cities, Singles' Day),
        ``US`` (USD, Black Friday) or ``GB`` (GBP, British names and cities, Black Friday and
        the Boxing Day sales).
    duplicate_share
        Share of persons with a second customer record in the other system.
    products
        Number of SKUs; by default one per 50 customers, between 200 and 20 000.
    """
    _check(
        customers=customers,
        days=days,
        seed=seed,
        region_=region,
        share=duplicate_share,
        products=products,
    )
    began = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    area = region_data(region.upper())
    streams = [
        np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(6)
    ]
    rng_people, rng_records, rng_products, rng_orders, rng_events, rng_keys = streams
    key = int(rng_keys.integers(0, 2**63))

    calendar = build_calendar(start, days, area)
    catalogue = build_products(
        rng_products, products or min(20_000, max(200, customers // 50)), area
    )
    people = build_people(rng_people, customers, calendar, area, duplicate_share, _ORDERS_PER_YEAR)
    orders = simulate_orders(rng_orders, people, catalogue, calendar, area, _GUEST_SHARE)
    ids = customer_ids(people)

    # Two writers, one file each at a time, and two builders shared by both preparing the next
    # row groups: numpy, Arrow and Parquet release the GIL for the heavy work.
    with (
        ThreadPoolExecutor(2, thread_name_prefix="datagen-build") as builders,
        ThreadPoolExecutor(2, thread_name_prefix="datagen-write") as writers,
    ):

        def write_tables() -> dict[str, int]:
            records = customers_table(rng_records, people, area, ids)
            return {
                CUSTOMERS_FILE.stem: _write(out_dir, CUSTOMERS_FILE, [records]),
                IDENTITY_TRUTH_FILE.stem: _write(
                    out_dir, IDENTITY_TRUTH_FILE, [identity_truth_table(people, ids)]
                ),
                PRODUCTS_FILE.stem: _write(out_dir, PRODUCTS_FILE, [catalogue.table()]),
                ORDER_LINES_FILE.stem: _write(
                    out_dir,
                    ORDER_LINES_FILE,
                    _in_order(order_line_chunks(orders, catalogue, ids, _CHUNK_ROWS), builders),
                ),
            }

        def write_events() -> dict[str, int]:
            chunks = event_chunks(
                rng_events, people, orders, catalogue, calendar, ids, _CHUNK_ROWS, key
            )
            return {EVENTS_FILE.stem: _write(out_dir, EVENTS_FILE, _in_order(chunks, builders))}

        tables_done = writers.submit(write_tables)
        events_done = writers.submit(write_events)
        counts = {**tables_done.result(), **events_done.result()}

    stems = [f.stem for f in OUTPUT_FILES]
    return GenerateReport(
        out_dir=out_dir,
        seed=seed,
        customers=customers,
        days=days,
        start=start,
        region=area.code,
        duplicate_share=duplicate_share,
        rows=MappingProxyType({k: counts[k] for k in stems}),
        paths=MappingProxyType({f.stem: out_dir / f.filename for f in OUTPUT_FILES}),
        seconds=time.perf_counter() - began,
    )


def _check(
    *, customers: int, days: int, seed: int, region_: str, share: float, products: int | None
) -> None:
    problems = []
    if customers < 1:
        problems.append(f"customers must be at least 1, got {customers}")
    if days < 1:
        problems.append(f"days must be at least 1, got {days}")
    if seed < 0:
        problems.append(f"seed must be a non-negative integer, got {seed}")
    if region_.upper() not in REGIONS:
        problems.append(f"region '{region_}' is not supported; choose one of {', '.join(REGIONS)}")
    if not 0.0 <= share <= 0.5:
        problems.append(f"duplicate_share must be between 0 and 0.5, got {share}")
    if products is not None and products < 1:
        problems.append(f"products must be at least 1 when given, got {products}")
    if problems:
        raise ValueError("; ".join(problems))


def _write(out_dir: Path, output: OutputFile, tables: Iterable[pa.Table]) -> int:
    """Write tables as one Parquet file, a row group each; returns the number of rows.

    The file appears under its name only when complete. Text columns from small
    vocabularies arrive as dictionary arrays; the Arrow schema is not stored, so readers see
    plain text, as the canonical contract says.
    """
    path = out_dir / output.filename
    partial = path.with_name(path.name + ".partial")
    expected = arrow_schema(output)
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for table in tables:
            table = table.select(list(output.columns))
            _check_types(output, table.schema, expected)
            if writer is None:
                writer = pq.ParquetWriter(
                    partial, table.schema, compression="snappy", store_schema=False
                )
            writer.write_table(table, row_group_size=max(table.num_rows, 1))
            rows += table.num_rows
        if writer is None:
            pq.write_table(expected.empty_table(), partial, store_schema=False)
        else:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
    return rows


def _check_types(output: OutputFile, actual: pa.Schema, expected: pa.Schema) -> None:
    for got, want in zip(actual, expected, strict=True):
        value_type = got.type.value_type if pa.types.is_dictionary(got.type) else got.type
        if got.name != want.name or value_type != want.type:
            raise TypeError(
                f"{output.filename}: column {got.name} is {value_type}, "
                f"the contract wants {want.name} as {want.type}"
            )


def _in_order(
    builders: Iterable[Callable[[], pa.Table]], pool: Executor, ahead: int = 2
) -> Iterator[pa.Table]:
    """Run table builders on ``pool``, a few ahead of the caller, and yield tables in order."""
    pending: deque[Future[pa.Table]] = deque()
    try:
        for build in builders:
            pending.append(pool.submit(build))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
