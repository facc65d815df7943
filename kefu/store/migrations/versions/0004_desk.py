"""People in the loop: who owns a conversation, agents and their logins, the conversation feed, desk notes,
webhook deliveries.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
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
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("handoff_state", sa.String(16), nullable=False, server_default="bot"))
        batch.add_column(sa.Column("handoff_id", sa.String(64), nullable=True))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("author", sa.String(255), nullable=True))
    with op.batch_alter_table("handoff_requests") as batch:
        batch.add_column(sa.Column("reason_code", sa.String(32), nullable=False, server_default="shopper"))
        batch.add_column(sa.Column("context", sa.Text(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("agent_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(32), nullable=True))
        batch.add_column(sa.Column("rating", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("rating_comment", sa.Text(), nullable=True))
        batch.add_column(sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("agent_read_seq", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE handoff_requests SET status = 'queued' WHERE status = 'open'")
    op.execute("UPDATE handoff_requests SET last_activity_at = created_at")
    op.create_table(
        "agents",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("name", name=op.f("uq_agents_name")),
    )
    op.create_table(
        "agent_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_tokens_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_agent_tokens")),
    )
    op.create_table(
        "conversation_events",
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_conversation_events_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "seq", name=op.f("pk_conversation_events")),
    )
    op.create_table(
        "desk_notes",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("handoff_id", sa.String(64), nullable=True),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_desk_notes_session_id_sessions"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_notes")),
    )
    op.create_index("ix_desk_notes_session_id", "desk_notes", ["session_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("session_id", sa.String(255), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index("ix_webhook_deliveries_status_next", "webhook_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_session_id", "webhook_deliveries", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_session_id", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_status_next", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_desk_notes_session_id", table_name="desk_notes")
    op.drop_table("desk_notes")
    op.drop_table("conversation_events")
    op.drop_table("agent_tokens")
    op.drop_table("agents")
    op.execute("UPDATE handoff_requests SET status = 'open' WHERE status = 'queued'")
    with op.batch_alter_table("handoff_requests") as batch:
        for column in (
            "agent_read_seq",
            "last_activity_at",
            "rating_comment",
            "rating",
            "outcome",
            "ended_at",
            "claimed_at",
            "agent_id",
            "context",
            "reason_code",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("author")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("handoff_id")
        batch.drop_column("handoff_state")
