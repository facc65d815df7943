"""SQL tables of task flows (created by migration ``0003_flows``): a session's flow snapshot, handoff requests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kefu.store.models import Base, UTCDateTime


class FlowStateRow(Base):
    """The running flow of a session (at most one), as the flow interpreter's JSON snapshot."""

    __tablename__ = "flow_states"

    session_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(255))
    flow: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(Text())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HandoffRow(Base):
    """A request for a human agent, recorded until a desk picks it up."""

    __tablename__ = "handoff_requests"
    __table_args__ = (Index("ix_handoff_requests_status_created_at", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(255), ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(255))
    turn_id: Mapped[str] = mapped_column(String(255))
    flow: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text())
    summary: Mapped[str] = mapped_column(Text())  # JSON object: the flow's slots at the time
    status: Mapped[str] = mapped_column(String(16))  # queued | agent | bot (handed back) | closed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason_code: Mapped[str] = mapped_column(String(32), server_default="shopper")
    context: Mapped[str] = mapped_column(Text(), server_default="{}")  # JSON: last turns, intent
    agent_id: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(32))
    rating: Mapped[int | None] = mapped_column(Integer())
    rating_comment: Mapped[str | None] = mapped_column(Text())
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    agent_read_seq: Mapped[int] = mapped_column(Integer(), server_default="0")
