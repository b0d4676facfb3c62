"""Data-subject requests (export, correct, erase), retention and key rotation for one project.

``PrivacyService`` opens the warehouse itself (through the factory it is given) because an
erasure must close it again to compact the file; every operation is written to the store's
``privacy_requests`` trail with who, when, what, and the subject as a keyed hash.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
from sqlalchemy import Date, DateTime, MetaData, delete, func, select

from jingzhun.core import (
    CONTRACTS,
    NotFoundError,
    Permission,
    Principal,
    Project,
    RefusedError,
    SpecError,
    SpecProblem,
    Target,
)
from jingzhun.engine import ColumnCipher, Engine, connect
from jingzhun.ingest import (
    CORRECTIONS_SCHEMA,
    CORRECTIONS_TABLE,
    PRIVACY_SECRET,
    TOMBSTONES_SCHEMA,
    TOMBSTONES_TABLE,
    content_hash,
)
from jingzhun.privacy import _operational, _warehouse
from jingzhun.privacy._files import FileScan
from jingzhun.privacy._settings import PrivacySettings, load_privacy_settings
from jingzhun.privacy._subject import Subject, find_subject
from jingzhun.privacy._vault import (
    Vault,
    load_master_key,
    rotate_master_key,
    seal_store,
    warehouse_cipher,
)
from jingzhun.store import OperationalStore, PrivacyRequest

EXPORTS_FOLDER = "state/privacy/exports"
CORRECTABLE = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "birth_date",
    "gender",
    "city",
    "country",
    "timezone",
    "attributes",
)
_CUSTOMERS = CONTRACTS[Target.CUSTOMERS]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return json.loads(json.dumps(rows, default=_json_default, ensure_ascii=False))


@dataclass
class SubjectExport:
    """Everything held about one person: every table's and file's rows of them."""

    request_id: str
    generated_at: datetime
    subject_name: str  # whose data key archives it (not part of the document)
    customer_keys: list[str]
    identifiers: dict[str, list[str]]
    warehouse: dict[str, list[dict[str, Any]]]
    store: dict[str, list[dict[str, Any]]]
    files: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """The export as plain JSON values."""
        return {
            "request_id": self.request_id,
            "generated_at": self.generated_at.isoformat(),
            "customer_keys": self.customer_keys,
            "identifiers": self.identifiers,
            "warehouse": self.warehouse,
            "operational_store": self.store,
            "files": self.files,
        }

    def json_bytes(self) -> bytes:
        """The export as indented UTF-8 JSON."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False).encode("utf-8")

    def zip_bytes(self) -> bytes:
        """``export.json`` plus one CSV per table (``warehouse/<t>.csv``, ``store/<t>.csv``)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("export.json", self.json_bytes())
            for folder, tables in (("warehouse", self.warehouse), ("store", self.store)):
                for name, rows in tables.items():
                    archive.writestr(f"{folder}/{name}.csv", _csv_text(rows))
            for number, hit in enumerate(self.files, start=1):
                archive.writestr(
                    f"files/{number:03d}.json",
                    json.dumps(hit, indent=2, ensure_ascii=False, default=_json_default),
                )
        return buffer.getvalue()


def _csv_text(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
                for k, v in row.items()
            }
        )
    return out.getvalue()


@dataclass
class ErasureReport:
    """What an erasure removed, where, and what is left for a person to do."""

    request_id: str
    warehouse: dict[str, int] = field(default_factory=dict)
    store: dict[str, dict[str, int]] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    tombstones: int = 0
    on_return: str = "suppress"
    key_shredded: bool = False
    compacted: list[str] = field(default_factory=list)
    needs_review: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when nothing is left for a person to look at."""
        return not self.needs_review

    def to_dict(self) -> dict[str, Any]:
        """Plain values (counts and paths; never the person's identifiers)."""
        return {
            "request_id": self.request_id,
            "complete": self.complete,
            "warehouse": self.warehouse,
            "operational_store": self.store,
            "files": self.files,
            "tombstones": self.tombstones,
            "on_return": self.on_return,
            "key_shredded": self.key_shredded,
            "compacted": self.compacted,
            "needs_review": self.needs_review,
        }


@dataclass
class CorrectionReport:
    """A corrected attribute: which records got a corrected version."""

    request_id: str
    field: str
    records: int
    note: str

    def to_dict(self) -> dict[str, Any]:
        """Plain values (the new value is not repeated)."""
        return {
            "request_id": self.request_id,
            "field": self.field,
            "records": self.records,
            "note": self.note,
        }


@dataclass
class RetentionReport:
    """Rows purged (or, in a dry run, due) per table."""

    request_id: str | None
    dry_run: bool
    cutoffs: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain values."""
        return {
            "request_id": self.request_id,
            "dry_run": self.dry_run,
            "cutoffs": self.cutoffs,
            "rows": self.rows,
        }


class PrivacyService:
    """Data-subject requests, retention and keys of one project.

    Parameters
    ----------
    open_engine
        Opens the warehouse (default: the project's engine settings). The service closes what
        it opens; an erasure compacts the DuckDB file afterwards, so nothing else in the
        process may hold the warehouse open during ``erase``.
    """

    def __init__(
        self,
        project: Project,
        store: OperationalStore,
        *,
        open_engine: Callable[[], Engine] | None = None,
        settings: PrivacySettings | None = None,
    ) -> None:
        self.project = project
        self.store = store
        self.settings = settings or load_privacy_settings(project.root)
        # the store's addresses and consent subjects are sealed: open them to find the person
        seal_store(project, store, self.settings)
        self.open_engine = open_engine or (
            lambda: connect(project.settings.engine, project.root, cipher=self.cipher)
        )

    @cached_property
    def cipher(self) -> ColumnCipher | None:
        """The warehouse's column cipher, made once (None when encryption at rest is off)."""
        return warehouse_cipher(self.project, self.store, self.settings)

    # -- keys ----------------------------------------------------------------------------------

    @property
    def vault(self) -> Vault:
        """The project's vault (master key from the environment or the key file)."""
        return Vault(self.store, load_master_key(self.project, self.settings.master_key_file))

    def subject_hash(self, subject: Subject | str) -> str:
        """The keyed hash a subject is recorded under (no identifier is stored)."""
        name = subject.name if isinstance(subject, Subject) else subject
        key = self.project.secret(PRIVACY_SECRET)
        message = f"subject\x1f{name.strip().lower()}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    def pseudonymise(self, identifier: str, kind: str = "") -> str:
        """A stable keyed pseudonym of an identifier, for analytics exports."""
        return self.vault.pseudonymise(identifier, kind)

    def encrypt_warehouse(self, *, by: str, check: bool = False) -> dict[str, Any]:
        """Seal every personal value still held in clear (written before encryption was on):
        the warehouse's personal columns, then compact its file so no clear copy stays in
        free blocks; and the operational store's addresses and consent subjects. With
        ``check`` only count them.
        """
        if self.cipher is None:
            raise RefusedError(
                "encryption at rest is off for this project (privacy.yml encrypt_at_rest, or "
                "the Spark engine): nothing to encrypt"
            )
        seal_store(self.project, self.store, self.settings)
        with connect(self.project.settings.engine, self.project.root) as stored:
            before = _warehouse.unsealed_values(stored)
        store_before = {f"store:{k}": v for k, v in self.store.clear_values().items()}
        if check:
            return {"unsealed": {**before, **store_before}, "tables_rewritten": []}
        with self._request("encrypt", None, by) as summary:
            tables = sorted({column.split(".")[0] for column in before})
            with self.open_engine() as engine:
                for name in tables:
                    _warehouse.rewrite_table(engine, name, engine.read(name))
            compacted = (
                _warehouse.compact_warehouse(self.project.settings.engine, self.project.root)
                if tables
                else None
            )
            self.store.clear_values(seal=True)
            if store_before:
                _operational.vacuum(
                    self.store, {k.split(":")[1].split(".")[0] for k in store_before}
                )
            with connect(self.project.settings.engine, self.project.root) as stored:
                after = _warehouse.unsealed_values(stored)
            after.update({f"store:{k}": v for k, v in self.store.clear_values().items()})
            result = {
                "unsealed_before": {**before, **store_before},
                "unsealed": after,
                "tables_rewritten": tables
                + sorted({f"store:{k.split(':')[1].split('.')[0]}" for k in store_before}),
                "compacted": [str(compacted)] if compacted else [],
            }
            summary.update(result)
        return result

    def rotate_keys(self, *, by: str) -> dict[str, object]:
        """Re-wrap every data key under a new master key (``jingzhun privacy keys rotate``)."""
        with self._request("keys_rotate", None, by) as summary:
            result = rotate_master_key(self.project, self.store, self.settings.master_key_file)
            summary.update(result)
        return result

    # -- audit trail ---------------------------------------------------------------------------

    @contextmanager
    def _request(self, kind: str, subject_hash: str | None, by: str) -> Iterator[dict[str, Any]]:
        request_id = uuid.uuid4().hex
        summary: dict[str, Any] = {"request_id": request_id}
        with self.store.session(write=True) as session:
            session.add(
                PrivacyRequest(
                    request_id=request_id,
                    kind=kind,
                    subject_hash=subject_hash,
                    requested_by=by,
                    requested_at=datetime.now(UTC),
                    status="running",
                    summary={},
                )
            )
        try:
            yield summary
        except Exception as exc:
            self._finish(request_id, "failed", summary, f"{type(exc).__name__}: {exc}")
            raise
        self._finish(request_id, "ok", summary, None)

    def _finish(
        self, request_id: str, status: str, summary: dict[str, Any], error: str | None
    ) -> None:
        with self.store.session(write=True) as session:
            row = session.scalar(
                select(PrivacyRequest).where(PrivacyRequest.request_id == request_id)
            )
            if row is None:  # erased by a concurrent erasure of the trail: nothing to update
                return
            row.status = status
            row.completed_at = datetime.now(UTC)
            row.summary = json.loads(json.dumps(summary, default=_json_default))
            row.error = error

    def requests(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest privacy operations, newest first."""
        with self.store.session() as session:
            rows = session.scalars(
                select(PrivacyRequest).order_by(PrivacyRequest.id.desc()).limit(limit)
            ).all()
            return [
                {
                    "request_id": r.request_id,
                    "kind": r.kind,
                    "subject_hash": r.subject_hash,
                    "requested_by": r.requested_by,
                    "requested_at": r.requested_at.isoformat(),
                    "status": r.status,
                    "summary": r.summary,
                    "error": r.error,
                }
                for r in rows
            ]

    @staticmethod
    def _allowed(principal: Principal | None) -> None:
        if principal is not None and not principal.can(Permission.PRIVACY_ADMIN):
            raise RefusedError(
                f"{principal.name} may not handle data-subject requests: it needs the "
                f"'{Permission.PRIVACY_ADMIN.value}' permission (role admin)"
            )

    def _skip(self) -> set[Path]:
        """Files erase and export handle elsewhere (the warehouse, the store's database)."""
        root = self.project.root
        engine = Path(self.project.settings.engine.resolved_path)
        engine = engine if engine.is_absolute() else root / engine
        skip = {engine, engine.with_name(engine.name + ".wal")}
        url = self.store.engine.url
        if url.get_backend_name() == "sqlite" and url.database:
            db = Path(url.database)
            skip |= {db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal")}
        return {p.resolve() for p in skip}

    # -- export --------------------------------------------------------------------------------

    def export(
        self, identifier: str, *, by: str, principal: Principal | None = None
    ) -> SubjectExport:
        """Everything held about the person (right of access and portability)."""
        self._allowed(principal)
        with self.open_engine() as engine:
            subject = find_subject(engine, identifier)
            matcher = subject.matcher(self.project.settings.region)
            with self._request("export", self.subject_hash(subject), by) as summary:
                warehouse = {
                    name: _plain(rows.to_pylist())
                    for name, rows in _warehouse.person_rows(
                        engine, matcher, skip={TOMBSTONES_TABLE}
                    ).items()
                }
                store = {
                    name: _plain(rows)
                    for name, rows in _operational.person_rows(self.store, matcher).items()
                }
                hits = FileScan(
                    self.project,
                    matcher,
                    self.settings.scan_exclude,
                    self._skip(),
                    cipher=self.cipher,
                ).run()
                summary.update(
                    {
                        "warehouse": {k: len(v) for k, v in warehouse.items()},
                        "store": {k: len(v) for k, v in store.items()},
                        "files": [h.path for h in hits],
                    }
                )
                return SubjectExport(
                    request_id=summary["request_id"],
                    generated_at=datetime.now(UTC),
                    subject_name=subject.name,
                    customer_keys=sorted(subject.customer_keys),
                    identifiers={
                        "customer_records": sorted(f"{s}:{i}" for s, i in subject.customers),
                        "devices": sorted(f"{s}:{i}" for s, i in subject.devices),
                        "emails": sorted(subject.emails),
                        "phones": sorted(subject.phones),
                        "orders": sorted(f"{s}:{i}" for s, i in subject.orders),
                    },
                    warehouse=warehouse,
                    store=store,
                    files=[_plain([h.to_dict(with_records=True)])[0] for h in hits],
                )

    def archive_export(self, export: SubjectExport, *, zipped: bool = True) -> Path:
        """Keep an export encrypted under the person's own data key (``state/privacy/
        exports/<request>.zip.enc``); erasing the person shreds the key, so every copy of the
        archive becomes unreadable.
        """
        key_name = "subject:" + self.subject_hash(export.subject_name)
        data = export.zip_bytes() if zipped else export.json_bytes()
        folder = self.project.resolve(EXPORTS_FOLDER)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{export.request_id}.{'zip' if zipped else 'json'}.enc"
        path.write_bytes(self.vault.encrypt(data, key_name))
        path.chmod(0o600)
        return path

    def read_archive(self, path: Path) -> bytes:
        """Decrypt an archived export (fails once the person was erased)."""
        return self.vault.decrypt(path.read_bytes())

    # -- erase ---------------------------------------------------------------------------------

    def erase(
        self, identifier: str, *, by: str, principal: Principal | None = None
    ) -> ErasureReport:
        """Delete the person from the warehouse (raw and derived), the operational store and
        every file under the project; record tombstones; shred their data key; compact.
        """
        self._allowed(principal)
        on_return = self.settings.on_return
        with self.open_engine() as engine:
            subject = find_subject(engine, identifier)
        subject_hash = self.subject_hash(subject)
        matcher = subject.matcher(self.project.settings.region)
        with self._request("erase", subject_hash, by) as summary:
            report = ErasureReport(summary["request_id"], on_return=on_return)
            with self.open_engine() as engine:
                report.warehouse = _warehouse.erase_rows(engine, matcher, skip={TOMBSTONES_TABLE})
                stones = subject.tombstones(
                    self.project.secret(PRIVACY_SECRET),
                    on_return=on_return,
                    request_id=report.request_id,
                    erased_at=datetime.now(UTC),
                )
                engine.create(TOMBSTONES_TABLE, TOMBSTONES_SCHEMA)
                stored = engine.read(TOMBSTONES_TABLE).select("value_hash")
                fresh = engine.register("_jz_privacy_new_tombstones", stones)
                try:
                    report.tombstones = engine.write(
                        TOMBSTONES_TABLE,
                        fresh.anti_join(stored, "value_hash"),
                    )
                finally:
                    engine.unregister("_jz_privacy_new_tombstones")
            report.store = _operational.erase_rows(
                self.store,
                matcher,
                anonymise=self.settings.anonymise_tables,
                replacement=f"[erased:{report.request_id[:8]}]",
            )
            vault = self.vault
            for name in {f"subject:{self.subject_hash(n)}" for n in subject.names()}:
                report.key_shredded = vault.shred(name) or report.key_shredded
            hits = FileScan(
                self.project,
                matcher,
                self.settings.scan_exclude,
                self._skip(),
                erase=True,
                cipher=self.cipher,
            ).run()
            report.files = [h.to_dict() for h in hits]
            report.needs_review = [h.path for h in hits if h.action in ("needs_review", "failed")]
            compacted = _warehouse.compact_warehouse(
                self.project.settings.engine, self.project.root
            )
            report.compacted = [str(compacted)] if compacted else []
            if self.cipher is not None:
                self.cipher.forget()
            summary.update(report.to_dict())
        return report

    # -- correct -------------------------------------------------------------------------------

    def correct(
        self,
        identifier: str,
        field_name: str,
        value: str | None,
        *,
        by: str,
        principal: Principal | None = None,
    ) -> CorrectionReport:
        """Fix an attribute at the source layer (right to rectification).

        Each of the person's customer records gets a new version with the corrected value
        (later stages read the latest version), and the correction is kept in
        ``privacy_corrections`` so that ingest applies it to any later export from the source
        system. Run ``jingzhun build`` to see it in the profile.
        """
        self._allowed(principal)
        if field_name not in CORRECTABLE:
            raise SpecError(
                [
                    SpecProblem(
                        Path("--field"),
                        None,
                        "field",
                        f"'{field_name}' cannot be corrected here; fields: "
                        + ", ".join(CORRECTABLE),
                    )
                ]
            )
        typed = _typed_value(field_name, value)
        with self.open_engine() as engine:
            subject = find_subject(engine, identifier)
            if not subject.customers or not engine.exists("raw_customers"):
                raise NotFoundError("the person has no customer record to correct")
            raw = engine.read("raw_customers")
            keyed = [f"{s}\x1f{i}" for s, i in sorted(subject.customers)]
            mine = raw.filter(raw._source.concat("\x1f", raw.customer_id).isin(keyed))
            newest = ibis.row_number().over(
                group_by=[mine._source, mine.customer_id],
                order_by=[mine._loaded_at.desc(), mine._batch_id.desc(), mine._row.desc()],
            )
            latest = mine.mutate(_jz_n=newest)
            latest = latest.filter(latest._jz_n == 0).drop("_jz_n")
            records = engine.execute(latest)
            if records.num_rows == 0:
                raise NotFoundError("the person has no customer record to correct")
            with self._request("correct", self.subject_hash(subject), by) as summary:
                now = datetime.now(UTC)
                index = records.column_names.index(field_name)
                column = pa.array([typed] * records.num_rows, records.schema.field(index).type)
                versions = records.set_column(index, field_name, column)
                hashes = content_hash(versions, list(_CUSTOMERS.field_names))
                n = versions.num_rows
                lineage = {
                    "_file": pa.array([f"privacy correction {summary['request_id']}"] * n),
                    "_batch_id": pa.array([f"privacy-{summary['request_id']}"] * n),
                    "_loaded_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
                    "_row": pa.array([0] * n, pa.int64()),
                    "_row_hash": hashes,
                }
                for name, array in lineage.items():
                    i = versions.column_names.index(name)
                    versions = versions.set_column(
                        i, name, array.cast(versions.schema.field(i).type)
                    )
                corrections = pa.table(
                    {
                        "_source": versions["_source"],
                        "customer_id": versions["customer_id"],
                        "field": [field_name] * n,
                        "value": [json.dumps(value, ensure_ascii=False)] * n,
                        "request_id": [summary["request_id"]] * n,
                        "corrected_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
                    },
                    schema=CORRECTIONS_SCHEMA,
                )
                engine.create(CORRECTIONS_TABLE, CORRECTIONS_SCHEMA)
                with engine.transaction():
                    engine.write("raw_customers", versions)
                    engine.write(CORRECTIONS_TABLE, corrections)
                summary.update({"field": field_name, "records": n})
                return CorrectionReport(
                    summary["request_id"],
                    field_name,
                    n,
                    "a corrected version of each record was loaded; run 'jingzhun build' to "
                    "rebuild profiles with it",
                )

    # -- retention -----------------------------------------------------------------------------

    def retention(
        self, *, as_of: date | None = None, dry_run: bool = False, by: str = "system"
    ) -> RetentionReport:
        """Purge rows older than each table's ``retention_days`` (``privacy.yml``)."""
        today = as_of or datetime.now(UTC).date()
        report = RetentionReport(None, dry_run)
        if not self.settings.retention:
            return report
        with self.open_engine() as engine:
            if dry_run:
                self._retain(engine, today, report, purge=False)
                return report
            with self._request("retention", None, by) as summary:
                report.request_id = summary["request_id"]
                self._retain(engine, today, report, purge=True)
                summary.update(report.to_dict())
        return report

    def _retain(self, engine: Engine, today: date, report: RetentionReport, *, purge: bool) -> None:
        store_tables = set(_operational.table_names(self.store))
        for name, rule in sorted(self.settings.retention.items()):
            cutoff = datetime.combine(today - timedelta(days=rule.days), datetime.min.time(), UTC)
            report.cutoffs[name] = cutoff.isoformat()
            if engine.exists(name):
                table = engine.read(name)
                column = rule.column or "_loaded_at"
                if column not in table.columns:
                    raise SpecError(
                        [
                            SpecProblem(
                                self.project.root / "privacy.yml",
                                None,
                                f"retention.{name}.column",
                                f"table {name} has no column '{column}'; its columns: "
                                + ", ".join(table.columns),
                            )
                        ]
                    )
                value = table[column]
                bound = (
                    ibis.literal(cutoff.date()) if value.type().is_date() else ibis.literal(cutoff)
                )
                old = (value < bound).fill_null(False)
                report.rows[name] = int(engine.scalar(table.filter(old).count()))
                if purge and report.rows[name]:
                    _warehouse.rewrite_table(engine, name, table.filter(~old))
            elif name in store_tables:
                report.rows[name] = self._retain_store(name, rule.column, cutoff, purge)
            else:
                raise SpecError(
                    [
                        SpecProblem(
                            self.project.root / "privacy.yml",
                            None,
                            f"retention.{name}",
                            f"no table '{name}' in the warehouse or the operational store",
                        )
                    ]
                )

    def _retain_store(self, name: str, column: str | None, cutoff: datetime, purge: bool) -> int:
        with self.store.session(write=purge) as session:
            metadata = MetaData()
            metadata.reflect(bind=session.connection(), only=[name])
            table = metadata.tables[name]
            dated = [c.name for c in table.columns if isinstance(c.type, DateTime | Date)]
            chosen = column or (dated[0] if dated else None)
            if chosen is None or chosen not in table.columns:
                raise SpecError(
                    [
                        SpecProblem(
                            self.project.root / "privacy.yml",
                            None,
                            f"retention.{name}.column",
                            f"name a date or time column of {name}: " + ", ".join(dated),
                        )
                    ]
                )
            # the store keeps UTC timestamps without an offset on SQLite
            bound = cutoff.replace(tzinfo=None)
            old = table.c[chosen] < bound
            count = int(session.scalar(select(func.count()).select_from(table).where(old)) or 0)
            if purge and count:
                session.execute(delete(table).where(old))
        return count


def _typed_value(field_name: str, value: str | None) -> object:
    """A corrected value as the customers contract types it; a wrong one names the field."""
    if value is None:
        return None
    kind = _CUSTOMERS.field(field_name).type.value
    try:
        if kind == "date":
            return date.fromisoformat(value)
        if kind == "json":
            json.loads(value)
    except ValueError:
        expected = "a date like 1990-05-17" if kind == "date" else "a JSON object"
        raise SpecError(
            [SpecProblem(Path("--value"), None, field_name, f"'{value}' is not {expected}")]
        ) from None
    return value
