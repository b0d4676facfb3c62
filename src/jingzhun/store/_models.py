"""Tables of the operational store, as typed SQLAlchemy ORM classes.

Every table the store owns is declared here, so that ``Base.metadata`` is the whole schema:
the migrations mirror it, and a test checks that the migrated database and this module agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, Dialect, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

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
