"""The engine seam: every warehouse read and write of every stage goes through ``Engine``."""

from __future__ import annotations

from pathlib import Path

from jingzhun.core import ARROW_TYPES, EngineKind, EngineSettings
from jingzhun.engine._base import Engine, arrow_schema
from jingzhun.engine._duckdb import DuckDBEngine


def connect(settings: EngineSettings, root: Path) -> Engine:
    """Open the warehouse a project's settings name; paths are relative to ``root``."""
    path = Path(settings.resolved_path)
    path = path if path.is_absolute() else root / path
    if settings.kind is EngineKind.SPARK:
        from jingzhun.engine._spark import SparkEngine

        return SparkEngine(path, master=settings.master, options=settings.options)
    threads = settings.options.get("threads")
    return DuckDBEngine(path, threads=int(threads) if threads else None)


__all__ = ["ARROW_TYPES", "DuckDBEngine", "Engine", "arrow_schema", "connect"]
