"""Journey state: enrolments, their history, the trigger watermarks and the tags journeys set.

Declared on the store's one ``Base``, so ``Base.metadata`` stays the whole schema; migration
``0006`` creates the tables. Written by ``jingzhun.journeys`` only.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jingzhun.store._models import Base, UTCDateTime


class EnrollmentState(StrEnum):
    """Where a customer is in a journey.

    ``active`` waits for ``next_due_at``; ``waiting`` waits for an event until
    ``next_due_at`` (the timeout); ``completed`` reached the end; ``exited`` left early (a
    goal, an exit step, a missing step after a change of the journey).
    """

    ACTIVE = "active"
    WAITING = "waiting"
    COMPLETED = "completed"
    EXITED = "exited"


_STATES = ", ".join(f"'{s.value}'" for s in EnrollmentState)


class JourneyEnrollment(Base):
    """One customer's pass through one journey, from the trigger that put them in.

    ``(journey, customer_key, trigger_id)`` is unique: the same trigger (an event id, a
    segment build, a birthday's year, a scheduled time) never enrols twice; ``entry`` counts a
    customer's entries into the journey and is unique with them too. ``version`` goes up with
    every change, so two runners never both advance the same step.
    """

    __tablename__ = "journey_enrollments"
    __table_args__ = (
        CheckConstraint(f"state IN ({_STATES})", name="state"),
        CheckConstraint("entry >= 1", name="entry"),
        UniqueConstraint(
            "journey", "customer_key", "trigger_id", name="uq_journey_enrollments_trigger"
        ),
        UniqueConstraint("journey", "customer_key", "entry", name="uq_journey_enrollments_entry"),
        Index("ix_journey_enrollments_due", "state", "next_due_at"),
        Index("ix_journey_enrollments_journey", "journey", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    journey: Mapped[str] = mapped_column(String(80))
    customer_key: Mapped[str] = mapped_column(String(80))
    trigger_id: Mapped[str] = mapped_column(String(200))
    entry: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    current_step: Mapped[str | None] = mapped_column(String(80))
    step_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    triggered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    exited_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    exit_reason: Mapped[str | None] = mapped_column(String(80))
    spec_fingerprint: Mapped[str] = mapped_column(String(64))
    context: Mapped[dict[str, Any]] = mapped_column(JSON)  # the trigger's properties
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JourneyEvent(Base):
    """What happened to an enrolment: entered, each step taken, messages queued or skipped
    (and why), exits. Only appended.
    """

    __tablename__ = "journey_events"
    __table_args__ = (
        Index("ix_journey_events_enrollment", "enrollment_id"),
        Index("ix_journey_events_journey", "journey", "kind", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    enrollment_id: Mapped[int] = mapped_column(Integer)
    journey: Mapped[str] = mapped_column(String(80))
    customer_key: Mapped[str] = mapped_column(String(80))
    step: Mapped[str | None] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime())  # when it happened in journey time
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JourneyWatermark(Base):
    """How far a journey's trigger has been evaluated: trigger time, load time, build time."""

    __tablename__ = "journey_watermarks"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    journey: Mapped[str] = mapped_column(String(80), unique=True)
    trigger: Mapped[str] = mapped_column(String(40))
    position: Mapped[datetime | None] = mapped_column(UTCDateTime())
    loaded_position: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JourneyTag(Base):
    """A tag a journey set on a customer (the latest value per customer and tag)."""

    __tablename__ = "journey_tags"
    __table_args__ = (UniqueConstraint("customer_key", "tag", name="uq_journey_tags_customer"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    customer_key: Mapped[str] = mapped_column(String(80))
    tag: Mapped[str] = mapped_column(String(80))
    value: Mapped[str] = mapped_column(Text)
    journey: Mapped[str] = mapped_column(String(80))
    step: Mapped[str] = mapped_column(String(80))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())
