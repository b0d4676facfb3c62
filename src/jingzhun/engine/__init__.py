"""The engine seam: every warehouse read and write of every stage goes through ``Engine``."""

from __future__ import annotations

from pathlib import Path

from jingzhun.core import ARROW_TYPES, EngineError, EngineKind, EngineSettings
from jingzhun.engine._base import Engine, arrow_schema
from jingzhun.engine._cipher import PREFIX, ColumnCipher, personal_columns
from jingzhun.engine._duckdb import DuckDBEngine


def connect(settings: EngineSettings, root: Path, *, cipher: ColumnCipher | None = None) -> Engine:
    """Open the warehouse a project's settings name; paths are relative to ``root``.

    ``cipher`` encrypts personal columns at rest (DuckDB only; ``jingzhun.privacy`` makes it
    from the project's keys).
    """
    path = Path(settings.resolved_path)
    path = path if path.is_absolute() else root / path
    if settings.kind is EngineKind.SPARK:
        if cipher is not None:
            raise EngineError(
                "column encryption at rest is not available on the Spark engine: set "
                "encrypt_at_rest: false in privacy.yml and use Parquet modular encryption or "
                "encrypted storage"
            )
        from jingzhun.engine._spark import SparkEngine

        return SparkEngine(path, master=settings.master, options=settings.options)
    threads = settings.options.get("threads")
    return DuckDBEngine(path, threads=int(threads) if threads else None, cipher=cipher)


__all__ = [
    "ARROW_TYPES",
    "PREFIX",
    "ColumnCipher",
    "DuckDBEngine",
    "Engine",
    "arrow_schema",
    "connect",
    "personal_columns",
]
