"""Privacy: ``encrypt`` joins the kinds of the privacy trail (``jingzhun privacy encrypt``
seals the warehouse's personal values written in clear).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = ("export", "erase", "correct", "retention", "keys_rotate")
_AFTER = (*_BEFORE, "encrypt")


def _kinds(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def upgrade() -> None:
    with op.batch_alter_table("privacy_requests", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_privacy_requests_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_privacy_requests_kind"), _kinds(_AFTER))


def downgrade() -> None:
    op.execute("DELETE FROM privacy_requests WHERE kind = 'encrypt'")
    with op.batch_alter_table("privacy_requests", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_privacy_requests_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_privacy_requests_kind"), _kinds(_BEFORE))
