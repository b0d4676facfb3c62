"""The consent ledger (operational store, full history) and the suppression list, and who may
be contacted for a purpose on a channel.

A consent record names its subject by a source customer id (with the source), an e-mail, a
phone or a ``customer_key``; the latest record per subject, purpose and channel counts.
Without any record for a customer, the source systems' consent flags (``email_consent``,
``sms_consent``, ``push_consent`` of the profile) count for ``marketing`` on their channel when
``use_source_flags`` is on — the default, because a CRM's opt-in is a consent record too —
and nothing else does: no record, no contact.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import func, select

from jingzhun.campaigns._spec import Channel, Purpose
from jingzhun.core import IngestError, NotFoundError, SpecError, SpecProblem
from jingzhun.engine import Engine
from jingzhun.profile import IDENTITY_MAP, PROFILES
from jingzhun.store import Consent, OperationalStore, Suppression


class Status(StrEnum):
    """A consent record's status."""

    GRANTED = "granted"
    DENIED = "denied"
    WITHDRAWN = "withdrawn"


SUBJECT_KINDS = ("customer_id", "email", "phone", "customer_key")
SOURCE_FLAGS = {
    Channel.EMAIL: "email_consent",
    Channel.SMS: "sms_consent",
    Channel.PUSH: "push_consent",
}
PHONE_DIGITS = 9  # phones match on their last nine digits (country codes and trunk 0s differ)


def normalise(kind: str, value: str) -> str:
    """The form a subject or address is stored and matched in."""
    text = value.strip()
    if kind == "email":
        return text.lower()
    if kind == "phone":
        return re.sub(r"\D", "", text)
    return text


@dataclass(frozen=True)
class ConsentRecord:
    """One consent event as given to ``ConsentLedger.record``."""

    subject_kind: str
    subject: str
    purpose: Purpose
    channel: Channel
    status: Status
    recorded_at: dt.datetime
    legal_basis: str = "consent"
    source: str = "cli"
    recorded_by: str = "unknown"
    subject_source: str = ""


class ConsentLedger:
    """Consent events in the operational store; nothing is ever updated or deleted."""

    def __init__(self, store: OperationalStore) -> None:
        self.store = store

    def record(self, records: Iterable[ConsentRecord]) -> int:
        """Append consent events; returns how many."""
        rows = []
        for r in records:
            if r.subject_kind not in SUBJECT_KINDS:
                raise SpecError(
                    [
                        SpecProblem(
                            Path(r.source),
                            None,
                            "subject_kind",
                            f"'{r.subject_kind}' is not a subject kind; use one of "
                            + ", ".join(SUBJECT_KINDS),
                        )
                    ]
                )
            if r.recorded_at.tzinfo is None:
                raise SpecError(
                    [SpecProblem(Path(r.source), None, "recorded_at", "needs a time zone")]
                )
            rows.append(
                Consent(
                    subject_kind=r.subject_kind,
                    subject=normalise(r.subject_kind, r.subject),
                    subject_source=r.subject_source,
                    purpose=r.purpose.value,
                    channel=r.channel.value,
                    status=r.status.value,
                    recorded_at=r.recorded_at,
                    legal_basis=r.legal_basis,
                    source=r.source,
                    recorded_by=r.recorded_by,
                )
            )
        with self.store.session(write=True) as session:
            session.add_all(rows)
        return len(rows)

    def import_file(self, path: Path, *, recorded_by: str) -> int:
        """Import a CSV (or .csv.gz) of consent events; every bad row is reported with its line
        and nothing is stored when one is bad.

        Columns: ``subject_kind, subject, purpose, channel, status, recorded_at`` and optional
        ``legal_basis``, ``subject_source``. ``recorded_at`` is ISO 8601 with an offset (or UTC).
        """
        if not path.is_file():
            raise NotFoundError(f"consent file {path} not found")
        opener = gzip.open if path.suffix == ".gz" else open
        records: list[ConsentRecord] = []
        problems: list[str] = []
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            needed = {"subject_kind", "subject", "purpose", "channel", "status", "recorded_at"}
            missing = needed - set(reader.fieldnames or [])
            if missing:
                raise IngestError(path, f"missing column(s) {', '.join(sorted(missing))}", 1)
            for line, row in enumerate(reader, start=2):
                try:
                    records.append(_parse_row(row, path, recorded_by))
                except ValueError as exc:
                    problems.append(f"line {line}: {exc}")
        if problems:
            raise IngestError(
                path, f"{len(problems)} bad row(s), nothing stored: " + "; ".join(problems[:10])
            )
        return self.record(records)

    def history(self, subject_kind: str, subject: str) -> list[dict[str, object]]:
        """Every event about a subject, oldest first."""
        value = normalise(subject_kind, subject)
        with self.store.session() as session:
            rows = session.scalars(
                select(Consent)
                .where(Consent.subject_kind == subject_kind, Consent.subject == value)
                .order_by(Consent.recorded_at, Consent.id)
            ).all()
            return [
                {
                    "purpose": r.purpose,
                    "channel": r.channel,
                    "status": r.status,
                    "recorded_at": r.recorded_at.isoformat(),
                    "legal_basis": r.legal_basis,
                    "source": r.source,
                    "recorded_by": r.recorded_by,
                }
                for r in rows
            ]

    def latest(self, purpose: Purpose, channel: Channel) -> pa.Table:
        """The latest status per subject for a purpose and channel."""
        with self.store.session() as session:
            rows = session.execute(
                select(
                    Consent.subject_kind,
                    Consent.subject,
                    Consent.subject_source,
                    Consent.status,
                    Consent.recorded_at,
                    Consent.id,
                ).where(Consent.purpose == purpose.value, Consent.channel == channel.value)
            ).all()
        newest: dict[tuple[str, str, str], tuple[dt.datetime, int, str]] = {}
        for kind, subject, source, status, at, row_id in rows:
            key = (kind, subject, source)
            if key not in newest or (at, row_id) > newest[key][:2]:
                newest[key] = (at, row_id, status)
        return pa.table(
            {
                "subject_kind": pa.array([k[0] for k in newest], pa.string()),
                "subject": pa.array([k[1] for k in newest], pa.string()),
                "subject_source": pa.array([k[2] for k in newest], pa.string()),
                "granted": pa.array(
                    [v[2] == Status.GRANTED.value for v in newest.values()], pa.bool_()
                ),
                "recorded_at": pa.array(
                    [v[0] for v in newest.values()], pa.timestamp("us", tz="UTC")
                ),
            }
        )

    def count(self) -> tuple[int, int]:
        """(records, highest id): part of a plan's data fingerprint."""
        with self.store.session() as session:
            n, top = session.execute(select(func.count(Consent.id), func.max(Consent.id))).one()
        return int(n or 0), int(top or 0)


def _parse_row(row: dict[str, str], path: Path, recorded_by: str) -> ConsentRecord:
    kind = (row.get("subject_kind") or "").strip()
    if kind not in SUBJECT_KINDS:
        raise ValueError(f"subject_kind '{kind}' is not one of {', '.join(SUBJECT_KINDS)}")
    subject = (row.get("subject") or "").strip()
    if not subject:
        raise ValueError("subject is empty")
    try:
        purpose = Purpose((row.get("purpose") or "").strip())
    except ValueError:
        raise ValueError(
            f"purpose '{row.get('purpose')}' is not one of {', '.join(p.value for p in Purpose)}"
        ) from None
    try:
        channel = Channel((row.get("channel") or "").strip())
    except ValueError:
        raise ValueError(
            f"channel '{row.get('channel')}' is not one of {', '.join(c.value for c in Channel)}"
        ) from None
    try:
        status = Status((row.get("status") or "").strip())
    except ValueError:
        raise ValueError(
            f"status '{row.get('status')}' is not one of {', '.join(s.value for s in Status)}"
        ) from None
    text = (row.get("recorded_at") or "").strip()
    try:
        at = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"recorded_at '{text}' is not an ISO 8601 time") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return ConsentRecord(
        kind,
        subject,
        purpose,
        channel,
        status,
        at,
        legal_basis=(row.get("legal_basis") or "consent").strip(),
        source=f"import:{path.name}",
        recorded_by=recorded_by,
        subject_source=(row.get("subject_source") or "").strip(),
    )


def suppression_address(channel: Channel, address: str) -> str:
    """The form an address is suppressed in: e-mails lower-cased, phone numbers as digits
    (SMS, call centre), anything else (device, customer key, postal line) trimmed as given.
    """
    if channel in (Channel.EMAIL, Channel.ADS) and "@" in address:
        return normalise("email", address)
    if channel in (Channel.SMS, Channel.CALL_CENTRE) or (
        channel is Channel.ADS and "@" not in address
    ):
        return normalise("phone", address)
    return address.strip()


class SuppressionList:
    """Addresses not to contact on a channel (hard bounces, complaints, unsubscribes)."""

    def __init__(self, store: OperationalStore) -> None:
        self.store = store

    def add(self, channel: Channel, address: str, reason: str, source: str = "cli") -> bool:
        """Suppress an address; False when it already was."""
        value = suppression_address(channel, address)
        with self.store.session(write=True) as session:
            found = session.scalar(
                select(Suppression).where(
                    Suppression.channel == channel.value, Suppression.address == value
                )
            )
            if found is not None:
                return False
            session.add(
                Suppression(
                    channel=channel.value,
                    address=value,
                    reason=reason,
                    source=source,
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
        return True

    def addresses(self, channel: Channel) -> list[str]:
        """Every suppressed address of a channel."""
        with self.store.session() as session:
            return list(
                session.scalars(
                    select(Suppression.address).where(Suppression.channel == channel.value)
                ).all()
            )


def _digits(column: ir.StringValue) -> ir.StringValue:
    return column.re_replace(r"[^0-9]", "")


def consented(
    engine: Engine,
    latest: pa.Table,
    channel: Channel,
    purpose: Purpose,
    *,
    use_source_flags: bool = True,
) -> ir.Table:
    """``customer_key`` of everyone whose latest consent for the purpose and channel is a grant
    (or, with no record at all, whose source flag for the channel says yes, for marketing).
    """
    profiles = engine.read(PROFILES)
    registered = engine.register("_jz_consents_latest", latest)
    matches: list[ir.Table] = []
    by_key = registered.filter(registered.subject_kind == "customer_key")
    matches.append(by_key.select(customer_key=by_key.subject, granted="granted", at="recorded_at"))
    emails = registered.filter(registered.subject_kind == "email")
    joined = profiles.join(emails, profiles.email.lower().strip() == emails.subject)
    matches.append(joined.select("customer_key", "granted", at="recorded_at"))
    phones = registered.filter(registered.subject_kind == "phone")
    joined = profiles.join(
        phones, _digits(profiles.phone).right(PHONE_DIGITS) == phones.subject.right(PHONE_DIGITS)
    )
    matches.append(joined.select("customer_key", "granted", at="recorded_at"))
    if engine.exists(IDENTITY_MAP):
        nodes = engine.read(IDENTITY_MAP)
        nodes = (
            nodes.filter(nodes.node_kind == "customer")
            .select("node_source", "node_id", "customer_key")
            .distinct()
        )
        ids = registered.filter(registered.subject_kind == "customer_id")
        joined = nodes.join(
            ids,
            (nodes.node_id == ids.subject)
            & ((ids.subject_source == "") | (ids.subject_source == nodes.node_source)),
        )
        matches.append(joined.select("customer_key", "granted", at="recorded_at"))
    records = ibis.union(*matches)
    newest = ibis.row_number().over(group_by=records.customer_key, order_by=records.at.desc())
    ranked = records.mutate(_jz_n=newest)
    decided = ranked.filter(ranked._jz_n == 0).select("customer_key", "granted")
    yes = decided.filter(decided.granted).select("customer_key")
    flag = SOURCE_FLAGS.get(channel)
    if not use_source_flags or purpose is not Purpose.MARKETING or flag is None:
        return yes
    undecided = profiles.anti_join(decided, profiles.customer_key == decided.customer_key)
    by_flag = undecided.filter(undecided[flag].fill_null(False)).select("customer_key")
    return ibis.union(yes, by_flag)
