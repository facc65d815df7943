"""Privacy and safety: moderation marks on messages, anonymisation time on sessions, the privacy audit log; an
index of messages by time (the lost-turn sweeper).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("moderation", sa.String(64), nullable=True))
    # The lost-turn sweeper reads recent questions; the retention sweep works by session.
    op.create_index("ix_messages_created_at", "messages", ["created_at"])
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("anonymised_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "privacy_audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("details", sa.Text(), nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_audit")),
    )
    op.create_index("ix_privacy_audit_at", "privacy_audit", ["at"])


def downgrade() -> None:
    op.drop_index("ix_privacy_audit_at", table_name="privacy_audit")
    op.drop_table("privacy_audit")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("anonymised_at")
    op.drop_index("ix_messages_created_at", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("moderation")
