"""Precision ads: impressions, clicks, conversions, the billing ledger, daily budgets.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ad_impressions",
        sa.Column("impression_id", sa.String(length=40), nullable=False),
        sa.Column("served_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("campaign", sa.String(length=80), nullable=False),
        sa.Column("creative", sa.String(length=80), nullable=False),
        sa.Column("placement", sa.String(length=80), nullable=False),
        sa.Column("customer_key", sa.String(length=80), nullable=True),
        sa.Column("anonymous_id", sa.String(length=120), nullable=True),
        sa.Column("device_id", sa.String(length=120), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("pctr", sa.Float(), nullable=False),
        sa.Column("ecpm", sa.Float(), nullable=False),
        sa.Column("runner_up_ecpm", sa.Float(), nullable=False),
        sa.Column("candidates", sa.Integer(), nullable=False),
        sa.Column("rendered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("impression_id", name=op.f("pk_ad_impressions")),
    )
    op.create_index(
        "ix_ad_impressions_campaign", "ad_impressions", ["campaign", "served_at"], unique=False
    )
    op.create_index("ix_ad_impressions_served_at", "ad_impressions", ["served_at"], unique=False)
    op.create_table(
        "ad_clicks",
        sa.Column("click_id", sa.String(length=40), nullable=False),
        sa.Column("clicked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("impression_id", sa.String(length=40), nullable=True),
        sa.Column("campaign", sa.String(length=80), nullable=True),
        sa.Column("creative", sa.String(length=80), nullable=True),
        sa.Column("placement", sa.String(length=80), nullable=True),
        sa.Column("customer_key", sa.String(length=80), nullable=True),
        sa.Column("device_id", sa.String(length=120), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("charged", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("click_id", name=op.f("pk_ad_clicks")),
    )
    op.create_index("ix_ad_clicks_campaign", "ad_clicks", ["campaign", "clicked_at"], unique=False)
    op.create_index("ix_ad_clicks_impression", "ad_clicks", ["impression_id"], unique=False)
    op.create_table(
        "ad_conversions",
        sa.Column("conversion_id", sa.String(length=80), nullable=False),
        sa.Column("click_id", sa.String(length=40), nullable=False),
        sa.Column("campaign", sa.String(length=80), nullable=False),
        sa.Column("creative", sa.String(length=80), nullable=False),
        sa.Column("customer_key", sa.String(length=80), nullable=True),
        sa.Column("converted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("conversion_id", name=op.f("pk_ad_conversions")),
    )
    op.create_index("ix_ad_conversions_campaign", "ad_conversions", ["campaign"], unique=False)
    op.create_table(
        "ad_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("click_id", sa.String(length=40), nullable=False),
        sa.Column("campaign", sa.String(length=80), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('charge', 'credit')", name=op.f("ck_ad_ledger_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ad_ledger")),
    )
    op.create_index("ix_ad_ledger_campaign", "ad_ledger", ["campaign", "day"], unique=False)
    op.create_index("ix_ad_ledger_click", "ad_ledger", ["click_id", "kind"], unique=True)
    op.create_table(
        "ad_budget_days",
        sa.Column("campaign", sa.String(length=80), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("budget", sa.Float(), nullable=False),
        sa.Column("spent", sa.Float(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign", "day", name=op.f("pk_ad_budget_days")),
    )


def downgrade() -> None:
    op.drop_table("ad_budget_days")
    op.drop_index("ix_ad_ledger_click", table_name="ad_ledger")
    op.drop_index("ix_ad_ledger_campaign", table_name="ad_ledger")
    op.drop_table("ad_ledger")
    op.drop_index("ix_ad_conversions_campaign", table_name="ad_conversions")
    op.drop_table("ad_conversions")
    op.drop_index("ix_ad_clicks_impression", table_name="ad_clicks")
    op.drop_index("ix_ad_clicks_campaign", table_name="ad_clicks")
    op.drop_table("ad_clicks")
    op.drop_index("ix_ad_impressions_served_at", table_name="ad_impressions")
    op.drop_index("ix_ad_impressions_campaign", table_name="ad_impressions")
    op.drop_table("ad_impressions")
