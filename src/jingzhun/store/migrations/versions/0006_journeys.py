"""Journeys: enrolments, their history, trigger watermarks and the tags journeys set.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "journey_enrollments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("journey", sa.String(length=80), nullable=False),
        sa.Column("customer_key", sa.String(length=80), nullable=False),
        sa.Column("trigger_id", sa.String(length=200), nullable=False),
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("current_step", sa.String(length=80), nullable=True),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("triggered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exit_reason", sa.String(length=80), nullable=True),
        sa.Column("spec_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("entry >= 1", name=op.f("ck_journey_enrollments_entry")),
        sa.CheckConstraint(
            "state IN ('active', 'waiting', 'completed', 'exited')",
            name=op.f("ck_journey_enrollments_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_enrollments")),
        sa.UniqueConstraint(
            "journey", "customer_key", "entry", name="uq_journey_enrollments_entry"
        ),
        sa.UniqueConstraint(
            "journey", "customer_key", "trigger_id", name="uq_journey_enrollments_trigger"
        ),
    )
    op.create_index(
        "ix_journey_enrollments_due",
        "journey_enrollments",
        ["state", "next_due_at"],
        unique=False,
    )
    op.create_index(
        "ix_journey_enrollments_journey",
        "journey_enrollments",
        ["journey", "state"],
        unique=False,
    )
    op.create_table(
        "journey_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("journey", sa.String(length=80), nullable=False),
        sa.Column("customer_key", sa.String(length=80), nullable=False),
        sa.Column("step", sa.String(length=80), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_events")),
    )
    op.create_index(
        "ix_journey_events_enrollment", "journey_events", ["enrollment_id"], unique=False
    )
    op.create_index(
        "ix_journey_events_journey", "journey_events", ["journey", "kind", "at"], unique=False
    )
    op.create_table(
        "journey_watermarks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("journey", sa.String(length=80), nullable=False),
        sa.Column("trigger", sa.String(length=40), nullable=False),
        sa.Column("position", sa.DateTime(timezone=True), nullable=True),
        sa.Column("loaded_position", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_watermarks")),
        sa.UniqueConstraint("journey", name=op.f("uq_journey_watermarks_journey")),
    )
    op.create_table(
        "journey_tags",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_key", sa.String(length=80), nullable=False),
        sa.Column("tag", sa.String(length=80), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("journey", sa.String(length=80), nullable=False),
        sa.Column("step", sa.String(length=80), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_tags")),
        sa.UniqueConstraint("customer_key", "tag", name="uq_journey_tags_customer"),
    )


def downgrade() -> None:
    op.drop_table("journey_tags")
    op.drop_table("journey_watermarks")
    op.drop_index("ix_journey_events_journey", table_name="journey_events")
    op.drop_index("ix_journey_events_enrollment", table_name="journey_events")
    op.drop_table("journey_events")
    op.drop_index("ix_journey_enrollments_journey", table_name="journey_enrollments")
    op.drop_index("ix_journey_enrollments_due", table_name="journey_enrollments")
    op.drop_table("journey_enrollments")
