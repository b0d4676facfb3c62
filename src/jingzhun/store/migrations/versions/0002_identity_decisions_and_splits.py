"""Identity review decisions and splits: what people decided about merging customer records.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 02:34:04.931125
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("node_a", sa.Text(), nullable=False),
        sa.Column("node_b", sa.Text(), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("decided_by", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("match_weight", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "decision IN ('accept', 'reject')", name=op.f("ck_identity_decisions_decision")
        ),
        sa.CheckConstraint("node_a <> node_b", name=op.f("ck_identity_decisions_pair")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_decisions")),
    )
    op.create_index(
        "ix_identity_decisions_pair", "identity_decisions", ["node_a", "node_b"], unique=False
    )
    op.create_table(
        "identity_splits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("node_a", sa.Text(), nullable=False),
        sa.Column("node_b", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("node_a <> node_b", name=op.f("ck_identity_splits_pair")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_splits")),
        sa.UniqueConstraint("node_a", "node_b", name=op.f("uq_identity_splits_pair")),
    )


def downgrade() -> None:
    op.drop_table("identity_splits")
    op.drop_index("ix_identity_decisions_pair", table_name="identity_decisions")
    op.drop_table("identity_decisions")
