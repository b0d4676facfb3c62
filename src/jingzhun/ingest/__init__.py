"""Ingest: read source files, enforce their contracts, load the raw tables idempotently."""

from jingzhun.ingest._load import (
    FILES_TABLE,
    QUARANTINE_TABLE,
    FileReport,
    FileStatus,
    LoadReport,
    ensure_tables,
    ingest,
    ingest_file,
    quarantine_counts,
    quarantine_summary,
)
from jingzhun.ingest._read import file_sha256, read_file

__all__ = [
    "FILES_TABLE",
    "QUARANTINE_TABLE",
    "FileReport",
    "FileStatus",
    "LoadReport",
    "ensure_tables",
    "file_sha256",
    "ingest",
    "ingest_file",
    "quarantine_counts",
    "quarantine_summary",
    "read_file",
]
