"""Tables of the operational store, as typed SQLAlchemy ORM classes.

Every table the store owns is declared here, so that ``Base.metadata`` is the whole schema:
the migrations mirror it, and a test checks that the migrated database and this module agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from jingzhun.store._sealed import SealedString

# Named constraints let SQLite batch migrations (copy-and-move) find them again later.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database, SQLite included.

    SQLite keeps no offset, so values are converted to UTC on the way in and marked UTC on the
    way out; naive datetimes are refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC before it is stored."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"timestamp {value.isoformat()} has no time zone; pass an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return a stored timestamp as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class RunStatus(StrEnum):
    """Where a command run is: still going, finished well, or finished with an error."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"


class Base(DeclarativeBase):
    """Declarative base of every operational-store table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Run(Base):
    """One run of a jingzhun command (ingest, build, send, ...) and how it ended."""

    __tablename__ = "runs"
    __table_args__ = (CheckConstraint("status IN ('running', 'ok', 'failed')", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(32), unique=True)
    command: Mapped[str] = mapped_column(Text)
    project: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class IdentityDecisionKind(StrEnum):
    """A reviewer's answer about a candidate pair of customer records."""

    ACCEPT = "accept"
    REJECT = "reject"


class IdentityDecision(Base):
    """A person's decision on a pair the probabilistic matcher proposed; the latest one per
    pair counts, and every later identity build reuses it.
    """

    __tablename__ = "identity_decisions"
    __table_args__ = (
        CheckConstraint("decision IN ('accept', 'reject')", name="decision"),
        # The pair is stored ordered (node_a sorts first in Python); the database checks only
        # that it is a pair, since collations order text differently.
        CheckConstraint("node_a <> node_b", name="pair"),
        Index("ix_identity_decisions_pair", "node_a", "node_b"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    node_a: Mapped[str] = mapped_column(Text)
    node_b: Mapped[str] = mapped_column(Text)
    decision: Mapped[str] = mapped_column(String(8))
    decided_by: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    match_weight: Mapped[float | None] = mapped_column(Float)


class IdentitySplit(Base):
    """A pair a person split apart (never one customer): written by an unmerge, beats any link."""

    __tablename__ = "identity_splits"
    __table_args__ = (
        CheckConstraint("node_a <> node_b", name="pair"),
        UniqueConstraint("node_a", "node_b", name="uq_identity_splits_pair"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    node_a: Mapped[str] = mapped_column(Text)
    node_b: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ModelVersion(Base):
    """One fitted model in the registry: what it was trained on, how well it did, where its
    artifact is and the artifact's SHA-256 (checked before every load).
    """

    __tablename__ = "model_versions"
    __table_args__ = (
        CheckConstraint("version >= 1", name="version"),
        UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
        Index("ix_model_versions_kind", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(80))
    version: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    features: Mapped[list[str]] = mapped_column(JSON)
    training_window: Mapped[dict[str, Any]] = mapped_column(JSON)
    data_fingerprint: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    artifact: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Consent(Base):
    """One consent event about a person: granted, denied or withdrawn, for a purpose on a
    channel. History is kept; the latest ``recorded_at`` per subject, purpose and channel counts.
    """

    __tablename__ = "consents"
    __table_args__ = (
        Index(
            "ix_consents_subject",
            "subject_kind",
            "subject",
            "purpose",
            "channel",
            "recorded_at",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    subject_kind: Mapped[str] = mapped_column(
        String(20)
    )  # customer_id | email | phone | customer_key
    subject: Mapped[str] = mapped_column(SealedString())  # normalised; sealed at rest
    subject_source: Mapped[str] = mapped_column(String(80))  # for customer_id: its source; else ""
    purpose: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))  # granted | denied | withdrawn
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    legal_basis: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(Text)  # where the record came from (file, cli, api)
    recorded_by: Mapped[str] = mapped_column(String(120))


class Suppression(Base):
    """An address that must not be contacted on a channel (bounce, complaint, unsubscribe)."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("channel", "address", name="uq_suppressions_channel"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(SealedString())  # normalised e-mail, phone digits, ...
    reason: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CampaignPlan(Base):
    """A stored plan of a campaign: its waterfall, figures, fingerprints and approval."""

    __tablename__ = "campaign_plans"
    __table_args__ = (Index("ix_campaign_plans_campaign", "campaign", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(String(80), unique=True)
    campaign: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20))  # planned | approved | launched | superseded
    as_of: Mapped[str] = mapped_column(String(10))
    spec_fingerprint: Mapped[str] = mapped_column(String(64))
    data_fingerprint: Mapped[str] = mapped_column(String(64))
    waterfall: Mapped[list[Any]] = mapped_column(JSON)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    approved_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    launched_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    launched_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class QueuedMessage(Base):
    """A message a launched plan hands to delivery; the key makes a send happen once."""

    __tablename__ = "delivery_queue"
    __table_args__ = (
        Index("ix_delivery_queue_customer", "customer_key", "channel", "send_at"),
        Index("ix_delivery_queue_status", "status", "send_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    plan_id: Mapped[str] = mapped_column(String(80))
    campaign: Mapped[str] = mapped_column(String(80))
    customer_key: Mapped[str] = mapped_column(String(80))
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(SealedString())
    variant: Mapped[str] = mapped_column(String(80))
    send_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))  # queued | sent | failed | suppressed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
