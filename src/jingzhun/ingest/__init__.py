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
from jingzhun.ingest._privacy import (
    CORRECTIONS_SCHEMA,
    CORRECTIONS_TABLE,
    ON_RETURN,
    PRIVACY_SECRET,
    TOMBSTONES_SCHEMA,
    TOMBSTONES_TABLE,
    normalise_identifier,
    tombstone_hash,
)
from jingzhun.ingest._read import file_sha256, read_file
from jingzhun.ingest._shape import content_hash

__all__ = [
    "CORRECTIONS_SCHEMA",
    "CORRECTIONS_TABLE",
    "FILES_TABLE",
    "ON_RETURN",
    "PRIVACY_SECRET",
    "QUARANTINE_TABLE",
    "TOMBSTONES_SCHEMA",
    "TOMBSTONES_TABLE",
    "FileReport",
    "FileStatus",
    "LoadReport",
    "content_hash",
    "ensure_tables",
    "file_sha256",
    "ingest",
    "ingest_file",
    "normalise_identifier",
    "quarantine_counts",
    "quarantine_summary",
    "read_file",
    "tombstone_hash",
]
