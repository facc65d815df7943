"""Drop the index of messages by time: the lost-turn sweeper that read it now finds lost turns in the hot state.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_messages_created_at", table_name="messages")


def downgrade() -> None:
    op.create_index("ix_messages_created_at", "messages", ["created_at"])
