"""SQL tables of the people in the loop (created by migration ``0004_desk``): agents and their logins, the
conversation feed, desk notes, webhook deliveries. Handoff requests are in :mod:`kefu.store.flow_models`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from kefu.store.models import Base, UTCDateTime


class AgentRow(Base):
    """A person who answers shoppers from the desk."""

    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # agent | admin
    password_hash: Mapped[str] = mapped_column(Text())
    disabled: Mapped[bool] = mapped_column(Boolean(), server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AgentTokenRow(Base):
    """A desk login: the SHA-256 of the token the agent's browser holds (the token itself is never stored)."""

    __tablename__ = "agent_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64), ForeignKey("agents.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConversationEventRow(Base):
    """One event of a session's conversation feed (agent messages, handoff states, notices, relayed shopper
    messages); ``seq`` counts per session from 1 without gaps, in commit order."""

    __tablename__ = "conversation_events"

    session_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer(), primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))
    data: Mapped[str] = mapped_column(Text())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DeskNoteRow(Base):
    """An agent's internal note on a conversation; the shopper never sees it. ``private`` notes are for their
    author (and admins) only."""

    __tablename__ = "desk_notes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(255), ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    handoff_id: Mapped[str | None] = mapped_column(String(64))
    agent_id: Mapped[str] = mapped_column(String(64))
    private: Mapped[bool] = mapped_column(Boolean())
    text: Mapped[str] = mapped_column(Text())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookDeliveryRow(Base):
    """One outgoing webhook call, from queued to delivered (or given up), with its attempts."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text())
    session_id: Mapped[str | None] = mapped_column(String(255), index=True)
    body: Mapped[str] = mapped_column(Text())
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer(), server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_status: Mapped[int | None] = mapped_column(Integer())
    last_error: Mapped[str | None] = mapped_column(Text())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
