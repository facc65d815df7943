"""Knowledge base: entries and meta (version counter, bot-directory fingerprint).

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
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
        "kb_entries",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("similar", sa.Text(), nullable=False),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("origin", sa.String(1024), nullable=False),
        sa.Column("source", sa.String(1024), nullable=True),
        sa.Column("content_key", sa.String(32), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("embedding_model", sa.String(255), nullable=True),
        sa.Column("embedding_key", sa.String(32), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_entries")),
    )
    op.create_index("ix_kb_entries_origin", "kb_entries", ["origin"])
    meta = op.create_table(
        "kb_meta",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_kb_meta")),
    )
    op.bulk_insert(
        meta,
        [
            {"name": "version", "value": 0, "text": None},
            {"name": "bot_fingerprint", "value": 0, "text": None},
        ],
    )


def downgrade() -> None:
    op.drop_table("kb_meta")
    op.drop_index("ix_kb_entries_origin", table_name="kb_entries")
    op.drop_table("kb_entries")
