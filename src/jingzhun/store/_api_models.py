"""Tables of the HTTP API: API keys, users, console sessions, the audit log, data-subject requests.

Declared on the store's one ``Base``, so ``Base.metadata`` stays the whole schema; migration
``0007`` creates them. Written by ``jingzhun.api`` only. Secrets are never stored: API keys and
session tokens as keyed hashes (HMAC-SHA256 with a project secret), passwords as scrypt hashes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jingzhun.store._models import Base, UTCDateTime
from jingzhun.store._sealed import SealedString


class ApiKey(Base):
    """An API key: its public prefix (to find it), the keyed hash of the whole key, scopes."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))  # hex HMAC-SHA256(secret, key)
    scopes: Mapped[str] = mapped_column(String(80))  # comma-separated, sorted
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiUser(Base):
    """A person who logs in to the console: role and scrypt password hash."""

    __tablename__ = "api_users"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'marketer', 'analyst', 'viewer')", name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))  # scrypt$n$r$p$salt$hash
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiSession(Base):
    """A console login: the keyed hash of the cookie's token, whose, until when."""

    __tablename__ = "api_sessions"
    __table_args__ = (Index("ix_api_sessions_user", "user_name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditEntry(Base):
    """One read of personal data or one export: who, what, when. Rows are only ever added
    (the migration installs triggers that refuse UPDATE and DELETE).
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    principal: Mapped[str] = mapped_column(String(120))
    principal_kind: Mapped[str] = mapped_column(String(20))  # user | api_key | cli
    action: Mapped[str] = mapped_column(String(40))  # pii_read | export | ...
    resource: Mapped[str] = mapped_column(Text)  # e.g. "profile ck_1", "segment vips"
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class DataSubjectRequest(Base):
    """A data-subject request (access/export or erasure) and what became of it."""

    __tablename__ = "data_subject_requests"
    __table_args__ = (
        CheckConstraint("kind IN ('export', 'erase')", name="kind"),
        CheckConstraint("status IN ('pending', 'completed', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(SealedString())  # as given: key, id, e-mail or phone
    customer_key: Mapped[str | None] = mapped_column(String(80), nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    requested_by: Mapped[str] = mapped_column(String(120))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    note: Mapped[str] = mapped_column(Text)
