"""The scale path: the same Ibis expressions on Apache Spark (PySpark, local or a cluster).

Each stored table is a folder of Parquet files under the engine path. Writes go to a staging
folder first and are moved into the table folders at commit, so a failed load leaves no
rows behind. (A rename per file is atomic on a local or POSIX file system; on object stores
this is where a table format such as DuckLake, Delta or Iceberg would take over.)
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.parquet as pq

from jingzhun.core import EngineError, EngineKind
from jingzhun.engine._base import Engine

_counter = itertools.count()


def spark_session(master: str = "local[2]", options: dict[str, str] | None = None) -> Any:
    """The process's Spark session: created once, shared by every engine (cold start ~7 s)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:  # pragma: no cover - depends on the install
        raise EngineError(
            "engine kind 'spark' needs PySpark: pip install 'jingzhun[spark]' (and a Java 17 "
            "runtime)"
        ) from None
    builder = (
        SparkSession.builder.master(master)
        .appName("jingzhun")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.ansi.enabled", "false")
        .config("spark.driver.memory", "2g")
    )
    for key, value in (options or {}).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


@ibis.udf.scalar.builtin(name="get_json_object")
def _get_json_object(document: str, path: str) -> str:  # type: ignore[empty-body]
    """Spark's ``get_json_object``."""


class SparkEngine(Engine):
    """Warehouse as Parquet table folders read through a Spark session."""

    kind = EngineKind.SPARK

    def __init__(
        self, root: Path, *, master: str = "local[2]", options: dict[str, str] | None = None
    ):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._session = spark_session(master, options)
        self._ibis = ibis.pyspark.connect(self._session)
        # Temporary views are session-wide; a prefix keeps two engines in one session apart.
        self._prefix = f"jz{os.getpid()}_{next(_counter)}"
        self._registered: dict[str, Path] = {}
        self._staged: list[tuple[str, Path]] | None = None
        self._spark_schemas: dict[str, Any] = {}

    @property
    def ibis(self) -> ibis.BaseBackend:
        """The Ibis PySpark backend."""
        return self._ibis

    def _table_dir(self, name: str) -> Path:
        return self.root / name

    def exists(self, name: str) -> bool:
        """Whether the table folder exists."""
        return (self._table_dir(name) / "_schema.parquet").exists()

    def tables(self) -> list[str]:
        """Stored tables: folders holding a schema marker."""
        return sorted(p.parent.name for p in self.root.glob("*/_schema.parquet"))

    def _view(self, name: str) -> str:
        return f"{self._prefix}_{name}"

    def json_text(self, document: ir.StringValue, key: str) -> ir.StringValue:
        """``get_json_object(document, '$.key')``."""
        return _get_json_object(document, f"$.{key}")

    def read(self, name: str) -> ir.Table:
        """Register the table folder as a view (listing its files afresh) and return it."""
        if not self.exists(name):
            raise EngineError(f"table '{name}' does not exist in the warehouse {self.root}")
        folder = self._table_dir(name)
        schema_file = folder / "_schema.parquet"
        schema = pq.read_schema(schema_file)
        if name not in self._spark_schemas:
            self._spark_schemas[name] = _spark_ddl(schema)
        frame = self._session.read.schema(self._spark_schemas[name]).parquet(str(folder))
        frame = frame.select(*schema.names)
        frame.createOrReplaceTempView(self._view(name))
        return self._ibis.table(self._view(name))

    def create(self, name: str, schema: pa.Schema) -> None:
        """Create an empty table folder with its schema marker."""
        folder = self._table_dir(name)
        if self.exists(name):
            return
        folder.mkdir(parents=True, exist_ok=True)
        # Spark skips files starting with "_" when reading; this one only records the schema.
        pq.write_table(schema.empty_table(), folder / "_schema.parquet")

    def _stage_file(self, name: str) -> Path:
        return self.root / "_staging" / uuid.uuid4().hex / f"part-{uuid.uuid4().hex}.parquet"

    def write(self, name: str, data: pa.Table | ir.Table) -> int:
        """Write Arrow rows or an expression's result as new Parquet files in the table."""
        if not self.exists(name):
            raise EngineError(f"table '{name}' does not exist in the warehouse {self.root}")
        schema = pq.read_schema(self._table_dir(name) / "_schema.parquet")
        staged: list[Path] = []
        if isinstance(data, pa.Table):
            if data.num_rows == 0:
                return 0
            file = self._stage_file(name)
            file.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(data.select(schema.names).cast(schema), file)
            staged.append(file)
            rows = data.num_rows
        else:
            frame = self._session.sql(self._ibis.compile(data.select(schema.names)))
            folder = self._stage_file(name).parent
            frame.write.mode("overwrite").parquet(str(folder))
            staged.extend(sorted(folder.glob("part-*.parquet")))
            rows = sum(pq.ParquetFile(f).metadata.num_rows for f in staged)
        if self._staged is None:
            self._publish([(name, f) for f in staged])
        else:
            self._staged.extend((name, f) for f in staged)
        return rows

    def _publish(self, staged: list[tuple[str, Path]]) -> None:
        for name, file in staged:
            os.replace(file, self._table_dir(name) / file.name)
        for _, file in staged:
            shutil.rmtree(file.parent, ignore_errors=True)

    def register(self, name: str, data: pa.Table) -> ir.Table:
        """Write Arrow data to a scratch Parquet file and expose it as a temporary view."""
        folder = self.root / "_scratch" / f"{self._prefix}_{name}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        pq.write_table(data, folder / "part-0.parquet")
        self._session.read.parquet(str(folder)).createOrReplaceTempView(self._view(name))
        self._registered[name] = folder
        return self._ibis.table(self._view(name))

    def unregister(self, name: str) -> None:
        """Drop a temporary view and its scratch file."""
        folder = self._registered.pop(name, None)
        if folder is not None:
            self._session.catalog.dropTempView(self._view(name))
            shutil.rmtree(folder, ignore_errors=True)

    def drop(self, name: str) -> None:
        """Delete a table folder."""
        shutil.rmtree(self._table_dir(name), ignore_errors=True)
        self._spark_schemas.pop(name, None)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Stage every write; move them into place at commit, delete them on error."""
        if self._staged is not None:
            yield
            return
        self._staged = []
        try:
            yield
        except BaseException:
            for _, file in self._staged:
                shutil.rmtree(file.parent, ignore_errors=True)
            raise
        else:
            self._publish(self._staged)
        finally:
            self._staged = None

    def close(self) -> None:
        """Drop this engine's views; the shared session stays up for the process."""
        for name in list(self._registered):
            self.unregister(name)
        shutil.rmtree(self.root / "_scratch", ignore_errors=True)


def _spark_type(dtype: pa.DataType) -> str:
    if pa.types.is_decimal(dtype):
        return f"DECIMAL({dtype.precision},{dtype.scale})"
    simple = {
        pa.int64(): "BIGINT",
        pa.int32(): "INT",
        pa.string(): "STRING",
        pa.large_string(): "STRING",
        pa.bool_(): "BOOLEAN",
        pa.float64(): "DOUBLE",
        pa.date32(): "DATE",
    }
    if dtype in simple:
        return simple[dtype]
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMP" if dtype.tz else "TIMESTAMP_NTZ"
    raise EngineError(f"no Spark type for Arrow type {dtype}")


def _spark_ddl(schema: pa.Schema) -> str:
    """Spark DDL for an Arrow schema, so reads of empty tables keep their columns."""
    return ", ".join(f"`{f.name}` {_spark_type(f.type)}" for f in schema)
