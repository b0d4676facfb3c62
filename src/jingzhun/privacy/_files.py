"""The person in every file under the project folder: found (export) or removed (erase).

Every file is visited (``scan_exclude`` globs aside), whatever stage or tool wrote it, and
handled by what it is:

- Parquet, CSV/TSV (also ``.gz``): rows of the person (column-aware, see ``_match``); the
  file is rewritten without them.
- NDJSON, JSONL, journals, logs (also ``.gz``): lines; rewritten without them.
- JSON: strings holding an identifier are replaced by ``[erased]``; list items that are
  records of the person are dropped.
- HTML, Markdown, text, XML, SVG: identifiers replaced by ``[erased]`` (reports: regenerate
  them for clean figures).
- SQLite databases (the API's collection log...): rows of every table deleted, then
  ``VACUUM``.
- DuckDB files other than the warehouse (a server's snapshot): rows deleted through the engine
  seam, then the file compacted.
- YAML specs and anything else: text and raw bytes (zip members opened) are searched, but the
  file is **not changed**: it is listed as ``needs_review``.

Files are replaced atomically (written beside, then renamed).
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import gzip
import io
import json
import os
import sqlite3
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from jingzhun.core import EngineKind, EngineSettings, Project
from jingzhun.engine import PREFIX, ColumnCipher, connect
from jingzhun.privacy import _warehouse
from jingzhun.privacy._match import Matcher

REDACTED = "[erased]"
_TABULAR = (".csv", ".tsv")
_LINES = (".ndjson", ".jsonl", ".journal", ".log")
_TEXT = (".html", ".htm", ".md", ".txt", ".xml", ".svg")
_SPECS = (".yml", ".yaml", ".toml", ".ini", ".cfg")


@dataclass
class FileHit:
    """What was found in, or done to, one file."""

    path: str  # relative to the project
    kind: str  # parquet | csv | lines | json | text | sqlite | duckdb | other
    action: str  # found | rewritten | redacted | needs_review | failed
    rows: int = 0
    detail: str = ""
    records: list[Any] = field(default_factory=list)  # export only

    def to_dict(self, *, with_records: bool = False) -> dict[str, Any]:
        """Plain values; records only when asked (they hold the person's data)."""
        out = asdict(self)
        if not with_records:
            out.pop("records")
        return out


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def _write_bytes(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".jz-partial")
    partial.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    os.replace(partial, path)


def _stem_suffix(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    return Path(name).suffix


def _file_kind(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(16)
    if head.startswith(b"SQLite format 3\x00"):
        return "sqlite"
    if head[8:12] == b"DUCK":
        return "duckdb"
    suffix = _stem_suffix(path)
    if suffix == ".parquet":
        return "parquet"
    if suffix in _TABULAR:
        return "csv"
    if suffix in _LINES:
        return "lines"
    if suffix == ".json":
        return "json"
    if suffix in _TEXT:
        return "text"
    if suffix in _SPECS:
        return "spec"
    return "other"


@dataclass
class FileScan:
    """Walks the project's files for one person."""

    project: Project
    matcher: Matcher
    exclude: list[str]
    skip: set[Path]
    erase: bool = False
    cipher: ColumnCipher | None = None  # other DuckDB files are copies of the warehouse

    def sources_of(self) -> dict[Path, str]:
        """Which source spec reads each data file (source-scoped ids are checked with it)."""
        owned: dict[Path, str] = {}
        for name in self.project.sources:
            for path in self.project.source_paths(name):
                owned[path.resolve()] = name
        return owned

    def files(self) -> list[Path]:
        """Every file under the project that is not excluded or handled elsewhere."""
        root = self.project.root
        out = []
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.is_symlink() or path.resolve() in self.skip:
                continue
            relative = path.relative_to(root).as_posix()
            if any(fnmatch.fnmatch(relative, pattern) for pattern in self.exclude):
                continue
            if path.name.endswith(".jz-partial"):
                continue
            out.append(path)
        return out

    def run(self) -> list[FileHit]:
        """Visit every file; return those that held the person (and what was done)."""
        owners = self.sources_of()
        hits: list[FileHit] = []
        handlers: dict[str, Callable[[Path, FileHit, str | None], None]] = {
            "parquet": self._parquet,
            "csv": self._csv,
            "lines": self._lines,
            "json": self._json,
            "text": self._text,
            "spec": self._review,
            "other": self._review,
            "sqlite": self._sqlite,
            "duckdb": self._duckdb,
        }
        for path in self.files():
            try:
                kind = _file_kind(path)
            except OSError:
                continue
            hit = FileHit(path.relative_to(self.project.root).as_posix(), kind, "found")
            try:
                handlers[kind](path, hit, owners.get(path.resolve()))
            except Exception as exc:  # a file we cannot parse is reported, never skipped silently
                if self._bytes_hit(path):
                    hit.action, hit.detail = "failed", f"{type(exc).__name__}: {exc}"
                    hit.rows = hit.rows or 1
            if hit.rows:
                hits.append(hit)
        return hits

    # -- one handler per kind ------------------------------------------------------------------

    def _parquet(self, path: Path, hit: FileHit, source: str | None) -> None:
        table = pq.read_table(path)
        rows = table.to_pylist()
        mine = [self.matcher.row_hit(r, source) for r in rows]
        hit.rows = sum(mine)
        if not hit.rows:
            return
        hit.records = [r for r, m in zip(rows, mine, strict=True) if m]
        if self.erase:
            kept = table.filter(pa.array([not m for m in mine]))
            partial = path.with_name(path.name + ".jz-partial")
            pq.write_table(kept, partial)
            os.replace(partial, path)
            hit.action = "rewritten"

    def _csv(self, path: Path, hit: FileHit, source: str | None) -> None:
        text = _read_bytes(path).decode("utf-8-sig")
        delimiter = "\t" if _stem_suffix(path) == ".tsv" else ","
        lines = text.splitlines(keepends=True)
        if not lines:
            return
        header = next(csv.reader([lines[0]], delimiter=delimiter))
        kept = [lines[0]]
        body = lines[1:]
        # records may span lines (quoted newlines): parse with csv, keep the original text
        reader = csv.reader(io.StringIO("".join(body)), delimiter=delimiter)
        consumed = 0
        for record in reader:
            start, consumed = consumed, reader.line_num
            raw = "".join(body[start:consumed])
            row = dict(zip(header, record, strict=False))
            if self.matcher.row_hit(row, source):
                hit.rows += 1
                hit.records.append(row)
            else:
                kept.append(raw)
        if hit.rows and self.erase:
            _write_bytes(path, "".join(kept).encode("utf-8"))
            hit.action = "rewritten"

    def _lines(self, path: Path, hit: FileHit, source: str | None) -> None:
        lines = _read_bytes(path).decode("utf-8", errors="replace").splitlines(keepends=True)
        kept = []
        for line in lines:
            try:
                value = json.loads(line)
            except ValueError:
                value = None
            mine = (
                self.matcher.row_hit(value, source)
                if isinstance(value, dict)
                else self.matcher.text_hit(line)
            )
            if mine:
                hit.rows += 1
                hit.records.append(value if value is not None else line.rstrip("\n"))
            else:
                kept.append(line)
        if hit.rows and self.erase:
            _write_bytes(path, "".join(kept).encode("utf-8"))
            hit.action = "rewritten"

    def _json(self, path: Path, hit: FileHit, source: str | None) -> None:
        document = json.loads(_read_bytes(path).decode("utf-8"))
        found: list[Any] = []
        cleaned = self._clean(document, found, source)
        hit.rows = len(found)
        hit.records = found
        if hit.rows and self.erase:
            data = json.dumps(cleaned, indent=2, ensure_ascii=False, default=str)
            _write_bytes(path, data.encode("utf-8"))
            hit.action = "redacted"

    def _clean(self, value: Any, found: list[Any], source: str | None) -> Any:
        if isinstance(value, str):
            if self.matcher.text_hit(value):
                found.append(value)
                return self.matcher.redact(value, REDACTED)
            return value
        if isinstance(value, list):
            out = []
            for item in value:
                if isinstance(item, dict) and self.matcher.row_hit(item, source):
                    found.append(item)  # a record of the person: dropped whole
                    continue
                out.append(self._clean(item, found, source))
            return out
        if isinstance(value, dict):
            return {k: self._clean(v, found, source) for k, v in value.items()}
        return value

    def _text(self, path: Path, hit: FileHit, source: str | None) -> None:
        text = _read_bytes(path).decode("utf-8", errors="replace")
        regex = self.matcher.regex
        if regex is None:
            return
        matches = regex.findall(text)
        hit.rows = len(matches)
        if hit.rows and self.erase:
            _write_bytes(path, self.matcher.redact(text, REDACTED).encode("utf-8"))
            hit.action = "redacted"

    def _review(self, path: Path, hit: FileHit, source: str | None) -> None:
        if self._bytes_hit(path):
            hit.rows = 1
            hit.action = "needs_review"
            hit.detail = "not changed: edit or delete this file by hand, then erase again"

    def _bytes_hit(self, path: Path) -> bool:
        data = path.read_bytes()
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                data += b"\n".join(archive.read(n) for n in archive.namelist())
        elif path.suffix == ".gz":
            with contextlib.suppress(OSError):
                data += gzip.decompress(data)
        return self.matcher.text_hit(data.decode("latin-1"))

    def _opened(self, value: Any) -> Any:
        """A value encrypted with the warehouse's key (the API's collection log) in clear."""
        if self.cipher is not None and isinstance(value, str) and value.startswith(PREFIX):
            return self.cipher.decrypt(value)
        return value

    def _sqlite(self, path: Path, hit: FileHit, source: str | None) -> None:
        connection = sqlite3.connect(path, timeout=10)
        try:
            connection.execute("PRAGMA busy_timeout = 10000")
            tables = [
                r[0]
                for r in connection.execute(
                    "SELECT name FROM sqlite_master "
                    "WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                )
            ]
            doomed: dict[str, list[int]] = {}
            for table in tables:
                cursor = connection.execute(f'SELECT rowid, * FROM "{table}"')
                names = [d[0] for d in cursor.description][1:]
                for row in cursor:
                    values = {
                        n: self._opened(v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
                        for n, v in zip(names, row[1:], strict=True)
                    }
                    if self.matcher.row_hit(values, source):
                        doomed.setdefault(table, []).append(int(row[0]))
                        hit.records.append({"table": table, **values})
            hit.rows = sum(len(v) for v in doomed.values())
            if hit.rows and self.erase:
                with connection:
                    for table, rowids in doomed.items():
                        connection.executemany(
                            f'DELETE FROM "{table}" WHERE rowid = ?', [(r,) for r in rowids]
                        )
                connection.execute("PRAGMA secure_delete = ON")
                connection.execute("VACUUM")
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                hit.action = "rewritten"
                hit.detail = "rows deleted, database vacuumed"
        finally:
            connection.close()

    def _duckdb(self, path: Path, hit: FileHit, source: str | None) -> None:
        settings = EngineSettings(kind=EngineKind.DUCKDB, path=str(path))
        with connect(settings, path.parent, cipher=self.cipher) as engine:
            if self.erase:
                deleted = _warehouse.erase_rows(engine, self.matcher)
                hit.rows = sum(deleted.values())
            else:
                found = _warehouse.person_rows(engine, self.matcher)
                hit.rows = sum(t.num_rows for t in found.values())
                hit.records = [
                    {"table": name, **row} for name, t in found.items() for row in t.to_pylist()
                ]
        if hit.rows and self.erase:
            _warehouse.compact_duckdb_file(path)
            hit.action = "rewritten"
            hit.detail = "rows deleted, file compacted"
