"""The delivery log: one row per message that delivery has claimed, sent, retried or given up.

Declared on the store's one ``Base``, so ``Base.metadata`` stays the whole schema; migration
``0005`` creates the table. Written by ``jingzhun.delivery`` only.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jingzhun.store._models import Base, UTCDateTime
from jingzhun.store._sealed import SealedString


class DeliveryStatus(StrEnum):
    """Where one message is on its way out.

    ``sending`` is claimed by a worker (a network call may be under way); ``retry`` waits for
    ``next_attempt_at``; ``in_doubt`` was being sent when its worker died and the provider
    could not be asked whether it arrived, so it is held for a person to decide.
    """

    SENDING = "sending"
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    SUPPRESSED = "suppressed"
    IN_DOUBT = "in_doubt"


_STATUSES = ", ".join(f"'{s.value}'" for s in DeliveryStatus)


class Delivery(Base):
    """One message's delivery: its idempotency key, state, attempts, claim and outcome."""

    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUSES})", name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index("ix_deliveries_status", "status", "next_attempt_at"),
        Index("ix_deliveries_queue_id", "queue_id"),
        Index("ix_deliveries_campaign", "campaign", "channel", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    # campaign:customer_key:channel (or journey step:customer_key:channel): one send per key
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    queue_id: Mapped[int | None] = mapped_column(Integer)  # delivery_queue.id
    campaign: Mapped[str | None] = mapped_column(String(80))
    journey_step: Mapped[str | None] = mapped_column(String(120))
    customer_key: Mapped[str] = mapped_column(String(80))
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(SealedString())
    message_id: Mapped[str] = mapped_column(String(200))  # Message-ID / id the provider sees
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)  # addresses scrubbed out
    provider_id: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(120))  # worker id / run
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
