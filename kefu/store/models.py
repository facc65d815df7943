"""SQL tables for sessions and messages (SQLAlchemy 2 declarative).

The schema itself is created by the Alembic migrations in :mod:`kefu.store.migrations`; these classes are
the Python view of it and the migration's ``target_metadata``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so later migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; naive datetimes are refused rather than guessed."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: kefu stores timezone-aware UTC datetimes only")
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every dialect.

    PostgreSQL keeps the offset itself (``timestamptz``). SQLite has no datetime type: values are stored as
    UTC text without an offset (so that text comparison is time comparison) and come back marked UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of kefu's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SessionRow(Base):
    """A conversation owned by one user."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_active_at: Mapped[datetime] = mapped_column(UTCDateTime())
    context_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Who answers the shopper: bot | queued | agent | closed (kefu.handoff), and the handoff that made it so.
    handoff_state: Mapped[str] = mapped_column(String(16), server_default="bot")
    handoff_id: Mapped[str | None] = mapped_column(String(64))
    # When the retention sweep replaced the personal data in its messages (kefu.privacy); None: not yet.
    anonymised_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MessageRow(Base):
    """One message of a session; ``UNIQUE(turn_id, role)`` stores each turn's answer exactly once."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("turn_id", "role"),
        Index("ix_messages_session_id_created_at", "session_id", "created_at"),
    )

    # SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    session_id: Mapped[str] = mapped_column(String(255), ForeignKey("sessions.id", ondelete="CASCADE"))
    turn_id: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text())
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(255))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer())
    completion_tokens: Mapped[int | None] = mapped_column(Integer())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    author: Mapped[str | None] = mapped_column(String(255))  # an agent's display name (role ``agent``)
    # What content moderation did to this message, as ``<action>:<category>`` (kefu.moderation); None: nothing.
    moderation: Mapped[str | None] = mapped_column(String(64))


class PrivacyAuditRow(Base):
    """One privacy action (export, erasure, retention sweep): who asked, about whom (a hash), and counts only —
    never the data itself."""

    __tablename__ = "privacy_audit"
    __table_args__ = (Index("ix_privacy_audit_at", "at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    action: Mapped[str] = mapped_column(String(32))  # export | erase | sweep (anonymised and deleted counts)
    actor: Mapped[str] = mapped_column(String(64))  # shopper | admin | cli | sweep
    subject: Mapped[str | None] = mapped_column(String(64))  # sha256 of the user id (never the id itself)
    details: Mapped[str] = mapped_column(Text(), server_default="{}")  # JSON counts per table / key pattern


class UsageRow(Base):
    """One model call: tokens as the provider billed them (or estimated), and its cost (kefu.store.usage).

    Session and turn ids are cleared when the session is deleted (erasure, retention): the counts stay for
    accounting, linked to nobody (docs/privacy.md)."""

    __tablename__ = "llm_usage"
    __table_args__ = (
        Index("ix_llm_usage_created_at", "created_at"),
        Index("ix_llm_usage_session_id", "session_id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    turn_id: Mapped[str | None] = mapped_column(String(255))
    session_id: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(32))  # the answer's source: llm, kb, flow, human, fallback, ...
    model: Mapped[str] = mapped_column(String(255))
    upstream: Mapped[str | None] = mapped_column(String(255))  # the route of the fallback chain that answered
    finish_reason: Mapped[str | None] = mapped_column(String(32))  # None: the stream broke or was cancelled
    prompt_cache_hit_tokens: Mapped[int] = mapped_column(Integer())
    prompt_cache_miss_tokens: Mapped[int] = mapped_column(Integer())
    completion_tokens: Mapped[int] = mapped_column(Integer())  # reasoning included, as providers count it
    reasoning_tokens: Mapped[int] = mapped_column(Integer())
    estimated: Mapped[bool] = mapped_column(Boolean())  # no usage from the provider: counted from characters
    cost_nano: Mapped[int | None] = mapped_column(BigInteger())  # 1e-9 of ``currency``; None: no price for the model
    currency: Mapped[str | None] = mapped_column(String(8))
