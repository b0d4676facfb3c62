"""Campaigns: the consent ledger, suppressions, stored plans and the delivery queue.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject_kind", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=320), nullable=False),
        sa.Column("subject_source", sa.String(length=80), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("legal_basis", sa.String(length=40), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    op.create_index(
        "ix_consents_subject",
        "consents",
        ["subject_kind", "subject", "purpose", "channel", "recorded_at"],
        unique=False,
    )
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("channel", "address", name=op.f("uq_suppressions_channel")),
    )
    op.create_table(
        "campaign_plans",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("plan_id", sa.String(length=80), nullable=False),
        sa.Column("campaign", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("as_of", sa.String(length=10), nullable=False),
        sa.Column("spec_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("data_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("waterfall", sa.JSON(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_by", sa.String(length=120), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("launched_by", sa.String(length=120), nullable=True),
        sa.Column("launched_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_plans")),
        sa.UniqueConstraint("plan_id", name=op.f("uq_campaign_plans_plan_id")),
    )
    op.create_index(
        "ix_campaign_plans_campaign", "campaign_plans", ["campaign", "created_at"], unique=False
    )
    op.create_table(
        "delivery_queue",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("plan_id", sa.String(length=80), nullable=False),
        sa.Column("campaign", sa.String(length=80), nullable=False),
        sa.Column("customer_key", sa.String(length=80), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("variant", sa.String(length=80), nullable=False),
        sa.Column("send_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_queue")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_delivery_queue_idempotency_key")),
    )
    op.create_index(
        "ix_delivery_queue_customer",
        "delivery_queue",
        ["customer_key", "channel", "send_at"],
        unique=False,
    )
    op.create_index(
        "ix_delivery_queue_status", "delivery_queue", ["status", "send_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_queue_status", table_name="delivery_queue")
    op.drop_index("ix_delivery_queue_customer", table_name="delivery_queue")
    op.drop_table("delivery_queue")
    op.drop_index("ix_campaign_plans_campaign", table_name="campaign_plans")
    op.drop_table("campaign_plans")
    op.drop_table("suppressions")
    op.drop_index("ix_consents_subject", table_name="consents")
    op.drop_table("consents")
