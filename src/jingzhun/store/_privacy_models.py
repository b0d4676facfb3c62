"""Tables of the privacy stage: the audit trail of data-subject requests and the wrapped keys.

Declared on the store's one ``Base``, so ``Base.metadata`` stays the whole schema; migration
``0009`` creates them. Written by ``jingzhun.privacy`` only. Neither table holds a person's
identifiers: a subject is named by a keyed hash (HMAC-SHA256 with the project's privacy
secret), and data keys are stored wrapped (AES-GCM) under the master key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jingzhun.store._models import Base, UTCDateTime

PRIVACY_REQUEST_KINDS = ("export", "erase", "correct", "retention", "keys_rotate", "encrypt")


class PrivacyRequest(Base):
    """One privacy operation: who asked, when, about whom (a keyed hash) and what was done."""

    __tablename__ = "privacy_requests"
    __table_args__ = (
        CheckConstraint(
            "kind IN (" + ", ".join(f"'{k}'" for k in PRIVACY_REQUEST_KINDS) + ")", name="kind"
        ),
        CheckConstraint("status IN ('running', 'ok', 'failed')", name="status"),
        Index("ix_privacy_requests_subject", "subject_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(32), unique=True)  # uuid4 hex
    kind: Mapped[str] = mapped_column(String(20))
    subject_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    requested_by: Mapped[str] = mapped_column(String(120))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)  # counts, paths; no identifiers
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class PrivacyKey(Base):
    """A data key (32 random bytes) wrapped with the master key: one per person whose data is
    archived encrypted, and a few system keys. Deleting a person's row makes their archives
    unreadable (crypto-shredding).
    """

    __tablename__ = "privacy_keys"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    key_name: Mapped[str] = mapped_column(String(80), unique=True)  # "subject:<hash>" | "system:x"
    wrapped: Mapped[str] = mapped_column(Text)  # base64 of nonce + AES-GCM ciphertext
    master_id: Mapped[str] = mapped_column(String(16))  # fingerprint of the wrapping master key
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
