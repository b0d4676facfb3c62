"""Privacy: ``encrypt`` joins the kinds of the privacy trail (``jingzhun privacy encrypt``
seals personal values written in clear), and the columns sealed at rest (addresses, consent
and request subjects) widen to hold a sealed 320-character value.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = ("export", "erase", "correct", "retention", "keys_rotate")
_AFTER = (*_BEFORE, "encrypt")


def _kinds(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


_SEALED = (
    ("deliveries", "address"),
    ("delivery_queue", "address"),
    ("suppressions", "address"),
    ("consents", "subject"),
    ("data_subject_requests", "subject"),
)


def upgrade() -> None:
    with op.batch_alter_table("privacy_requests", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_privacy_requests_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_privacy_requests_kind"), _kinds(_AFTER))
    for table, column in _SEALED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=sa.String(length=320),
                type_=sa.String(length=640),
                existing_nullable=False,
            )


def downgrade() -> None:
    for table, column in _SEALED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column,
                existing_type=sa.String(length=640),
                type_=sa.String(length=320),
                existing_nullable=False,
            )
    op.execute("DELETE FROM privacy_requests WHERE kind = 'encrypt'")
    with op.batch_alter_table("privacy_requests", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_privacy_requests_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_privacy_requests_kind"), _kinds(_BEFORE))
