"""Read one source file into Arrow, turning every way a file can be broken into a clear error."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from jingzhun.core import IngestError, SourceFormat, SourceSpec


def file_sha256(path: Path) -> str:
    """Content hash of the file as stored (compressed bytes), for idempotent loads."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _open_text_bytes(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if _is_gzip(path) else path.open("rb")


def _check_gzip_complete(path: Path) -> None:
    """Decompress to the end once: a truncated or corrupt gzip fails here with a clear message."""
    if not _is_gzip(path):
        return
    try:
        with gzip.open(path, "rb") as handle:
            while handle.read(1 << 22):
                pass
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise IngestError(
            path,
            f"the gzip file is truncated or corrupt ({exc})",
            hint="the file was probably cut off during copy or download; fetch it again",
        ) from None


def _locate_bad_utf8(path: Path, encoding: str) -> IngestError:
    """Find the first line that does not decode, to name it in the error."""
    with _open_text_bytes(path) as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as exc:
                bad = line[exc.start : exc.start + 1].hex()
                return IngestError(
                    path,
                    f"line {number} is not valid {encoding} (byte 0x{bad} at position "
                    f"{exc.start + 1})",
                    hint="re-save the file as UTF-8, or set csv.encoding in the source spec "
                    "(for example latin-1 or gb18030)",
                )
    return IngestError(path, f"the file is not valid {encoding}")


def _csv_header(path: Path, spec: SourceSpec) -> list[str]:
    options = spec.csv
    with _open_text_bytes(path) as raw:
        first = raw.readline()
    if not first.strip():
        raise IngestError(path, "the file is empty: no header line and no rows")
    try:
        text = first.decode(options.encoding).lstrip("\ufeff")
    except UnicodeDecodeError:
        raise _locate_bad_utf8(path, options.encoding) from None
    row = next(csv.reader([text], delimiter=options.delimiter, quotechar=options.quote))
    return [name.strip() for name in row]


def _read_csv(path: Path, spec: SourceSpec) -> pa.Table:
    options = spec.csv
    if options.header:
        names = _csv_header(path, spec)
        read_options = pacsv.ReadOptions(encoding=options.encoding, block_size=1 << 24)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise IngestError(path, f"the header names columns more than once: {duplicates}")
    else:
        with _open_text_bytes(path) as raw:
            first = raw.readline()
        if not first.strip():
            raise IngestError(path, "the file is empty: no rows")
        width = len(next(csv.reader([first.decode(options.encoding, "replace")])))
        names = [f"column_{i + 1}" for i in range(width)]
        read_options = pacsv.ReadOptions(
            encoding=options.encoding, column_names=names, block_size=1 << 24
        )
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in names},
        null_values=options.null_values,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    parse = pacsv.ParseOptions(
        delimiter=options.delimiter, quote_char=options.quote, newlines_in_values=True
    )
    try:
        with pa.input_stream(str(path), compression="detect" if _is_gzip(path) else None) as src:
            return pacsv.read_csv(src, read_options, parse, convert)
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "UTF8" in message or "UTF-8" in message:
            raise _locate_bad_utf8(path, options.encoding) from None
        if "Expected" in message and "columns" in message:
            raise IngestError(
                path,
                f"a row has the wrong number of columns: {message.splitlines()[0]}",
                hint="check the delimiter and quoting in the source spec's csv options",
            ) from None
        raise IngestError(path, f"cannot parse the CSV: {message.splitlines()[0]}") from None


def _read_jsonl(path: Path) -> pa.Table:
    table = _parse_jsonl(path, None)
    # Arrow infers ISO strings as timestamps and drops their offsets on the way; read such
    # fields again as text so the source spec's time zone rules apply to them.
    temporal = [
        f for f in table.schema if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type)
    ]
    if temporal:
        table = _parse_jsonl(path, pa.schema([pa.field(f.name, pa.string()) for f in temporal]))
    return table


def _parse_jsonl(path: Path, schema: pa.Schema | None) -> pa.Table:
    parse = pajson.ParseOptions(
        newlines_in_values=False, unexpected_field_behavior="infer", explicit_schema=schema
    )
    try:
        with pa.input_stream(str(path), compression="detect" if _is_gzip(path) else None) as src:
            return pajson.read_json(src, parse_options=parse)
    except pa.ArrowInvalid as exc:
        message = str(exc).splitlines()[0]
        if "UTF8" in message or "UTF-8" in message or "utf" in message.lower():
            raise _locate_bad_utf8(path, "utf-8") from None
        raise IngestError(
            path,
            f"not valid JSON Lines: {message}",
            hint="one JSON object per line is expected, each field with one JSON type",
        ) from None


def _read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(path, f"not a readable Parquet file: {exc}") from None


def read_file(path: Path, spec: SourceSpec) -> pa.Table:
    """Read a whole file; raises IngestError for missing, empty, truncated or undecodable files."""
    if not path.exists():
        raise IngestError(path, "the file does not exist")
    if not path.is_file():
        raise IngestError(path, "is not a file")
    try:
        size = path.stat().st_size
        with path.open("rb"):
            pass
    except OSError as exc:
        raise IngestError(path, f"cannot open the file: {exc.strerror}") from None
    if size == 0:
        raise IngestError(path, "the file is empty (0 bytes)")
    fmt = spec.file_format(path.name)
    if fmt is SourceFormat.PARQUET:
        table = _read_parquet(path)
    else:
        _check_gzip_complete(path)
        table = _read_csv(path, spec) if fmt is SourceFormat.CSV else _read_jsonl(path)
    if table.num_rows == 0:
        raise IngestError(path, "the file has no data rows")
    return table.combine_chunks()
