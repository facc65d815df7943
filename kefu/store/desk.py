"""Who owns each conversation, the handoff requests, the conversation feed and desk notes, in SQL.

Every change to a conversation is one transaction that starts by writing the session's row: that takes the row's
lock (PostgreSQL) or the database's write lock (SQLite) first, so changes of one session are serialised and
compare-and-set transitions ("claim if still queued") decide exactly one winner. Feed events get the next
per-session ``seq`` inside that transaction, so seqs have no gaps and become visible in order.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import RowMapping, Table, and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kefu.errors import NotFound
from kefu.store.desk_models import ConversationEventRow, DeskNoteRow
from kefu.store.flow_models import HandoffRow
from kefu.store.models import MessageRow, SessionRow

SESSIONS = cast(Table, SessionRow.__table__)
MESSAGES = cast(Table, MessageRow.__table__)
HANDOFFS = cast(Table, HandoffRow.__table__)
EVENTS = cast(Table, ConversationEventRow.__table__)
NOTES = cast(Table, DeskNoteRow.__table__)

OPEN_STATES = ("queued", "agent")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HandoffRecord:
    """A request for a person, from the moment it is queued to its end (back to the bot, or closed)."""

    id: str
    session_id: str
    user_id: str
    turn_id: str
    flow: str | None
    reason: str
    summary: dict[str, Any]  # the flow's slots at the time
    status: str  # queued | agent | bot | closed
    created_at: datetime
    reason_code: str = "shopper"
    context: dict[str, Any] = field(default_factory=dict)
    agent_id: str | None = None
    claimed_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None
    rating: int | None = None
    rating_comment: str | None = None
    last_activity_at: datetime | None = None
    agent_read_seq: int = 0


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One event of a conversation feed; ``data`` is its JSON."""

    session_id: str
    seq: int
    kind: str
    data: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NoteRecord:
    """An internal note on a conversation."""

    id: str
    session_id: str
    handoff_id: str | None
    agent_id: str
    private: bool
    text: str
    created_at: datetime


class SessionTxn:
    """One transaction on one session, holding its lock (see the module docstring)."""

    def __init__(self, conn: AsyncConnection, session_id: str, user_id: str, state: str, handoff_id: str | None):
        self.conn = conn
        self.session_id = session_id
        self.user_id = user_id
        self.state = state
        self.handoff_id = handoff_id
        self.now = datetime.now(UTC)
        self.events: list[FeedEvent] = []

    async def handoff(self) -> HandoffRecord | None:
        """The session's current (or last) handoff."""
        if self.handoff_id is None:
            return None
        row = (await self.conn.execute(select(HANDOFFS).where(HANDOFFS.c.id == self.handoff_id))).mappings().first()
        return _handoff(row) if row is not None else None

    async def set_state(self, state: str, handoff_id: str | None) -> None:
        """Change who owns the conversation."""
        await self.conn.execute(
            update(SESSIONS).where(SESSIONS.c.id == self.session_id).values(handoff_state=state, handoff_id=handoff_id)
        )
        self.state, self.handoff_id = state, handoff_id

    async def update_handoff(self, handoff_id: str, **values: Any) -> HandoffRecord:
        """Change the handoff's columns and return it as it is now."""
        await self.conn.execute(update(HANDOFFS).where(HANDOFFS.c.id == handoff_id).values(**values))
        row = (await self.conn.execute(select(HANDOFFS).where(HANDOFFS.c.id == handoff_id))).mappings().one()
        return _handoff(row)

    async def append(self, kind: str, data: Mapping[str, Any]) -> FeedEvent:
        """Append an event to the session's feed (the next seq)."""
        last = await self.conn.scalar(select(func.max(EVENTS.c.seq)).where(EVENTS.c.session_id == self.session_id))
        seq = (last or 0) + 1
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        await self.conn.execute(
            insert(EVENTS).values(session_id=self.session_id, seq=seq, kind=kind, data=body, created_at=self.now)
        )
        event = FeedEvent(self.session_id, seq, kind, body, self.now)
        self.events.append(event)
        return event

    async def add_message(self, message_id: str, role: str, text: str, *, author: str | None, source: str) -> None:
        """Store a message of the transcript (an agent's reply)."""
        await self.conn.execute(
            insert(MESSAGES).values(
                session_id=self.session_id,
                turn_id=message_id,
                role=role,
                content=text,
                status="complete",
                source=source,
                created_at=self.now,
                author=author,
            )
        )
        await self.conn.execute(
            update(SESSIONS).where(SESSIONS.c.id == self.session_id).values(last_active_at=self.now)
        )


class DeskStore:
    """SQL access for handoffs, the conversation feed and notes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def in_session(
        self, session_id: str, work: Callable[[SessionTxn], Awaitable[T]]
    ) -> tuple[T, list[FeedEvent]]:
        """Run ``work`` in one transaction holding the session's lock; :class:`NotFound` if there is no session."""
        async with self._engine.begin() as conn:
            locked = await conn.execute(
                update(SESSIONS).where(SESSIONS.c.id == session_id).values(handoff_state=SESSIONS.c.handoff_state)
            )
            if locked.rowcount == 0:
                raise NotFound("session not found")
            row = (
                await conn.execute(
                    select(SESSIONS.c.user_id, SESSIONS.c.handoff_state, SESSIONS.c.handoff_id).where(
                        SESSIONS.c.id == session_id
                    )
                )
            ).one()
            txn = SessionTxn(conn, session_id, row.user_id, row.handoff_state, row.handoff_id)
            result = await work(txn)
        return result, txn.events

    async def new_handoff(
        self,
        txn: SessionTxn,
        *,
        turn_id: str,
        flow: str | None,
        reason: str,
        reason_code: str,
        summary: Mapping[str, Any],
        context: Mapping[str, Any],
    ) -> HandoffRecord:
        """Insert a queued handoff for the session of ``txn`` and make it the session's owner."""
        handoff_id = f"ho_{uuid.uuid4().hex[:20]}"
        await txn.conn.execute(
            insert(HANDOFFS).values(
                id=handoff_id,
                session_id=txn.session_id,
                user_id=txn.user_id,
                turn_id=turn_id,
                flow=flow,
                reason=reason,
                reason_code=reason_code,
                summary=json.dumps(dict(summary), ensure_ascii=False),
                context=json.dumps(dict(context), ensure_ascii=False),
                status="queued",
                created_at=txn.now,
                last_activity_at=txn.now,
                agent_read_seq=0,
            )
        )
        await txn.set_state("queued", handoff_id)
        handoff = await txn.handoff()
        assert handoff is not None
        return handoff

    async def position(self, handoff: HandoffRecord, conn: AsyncConnection | None = None) -> int:
        """How many queued requests are ahead of ``handoff`` (0: it is next)."""
        query = select(func.count()).where(
            and_(HANDOFFS.c.status == "queued", HANDOFFS.c.created_at < handoff.created_at)
        )
        if conn is not None:
            return int(await conn.scalar(query) or 0)
        async with self._engine.connect() as own:
            return int(await own.scalar(query) or 0)

    async def session_state(self, session_id: str) -> tuple[str, str | None, str] | None:
        """``(state, handoff_id, user_id)`` of a session, or None."""
        query = select(SESSIONS.c.handoff_state, SESSIONS.c.handoff_id, SESSIONS.c.user_id).where(
            SESSIONS.c.id == session_id
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else (row[0], row[1], row[2])

    async def get_handoff(self, handoff_id: str) -> HandoffRecord | None:
        """A handoff by id."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(HANDOFFS).where(HANDOFFS.c.id == handoff_id))).mappings().first()
        return _handoff(row) if row is not None else None

    async def handoffs(
        self,
        *,
        statuses: Collection[str] | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        limit: int = 500,
    ) -> list[HandoffRecord]:
        """Handoffs, oldest first."""
        query = select(HANDOFFS).order_by(HANDOFFS.c.created_at).limit(limit)
        if statuses is not None:
            query = query.where(HANDOFFS.c.status.in_(list(statuses)))
        if session_id is not None:
            query = query.where(HANDOFFS.c.session_id == session_id)
        if agent_id is not None:
            query = query.where(HANDOFFS.c.agent_id == agent_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_handoff(r) for r in rows]

    async def events(self, session_id: str, after: int, *, limit: int = 500) -> list[FeedEvent]:
        """Feed events with ``seq > after``, in order."""
        query = (
            select(EVENTS)
            .where(and_(EVENTS.c.session_id == session_id, EVENTS.c.seq > after))
            .order_by(EVENTS.c.seq)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [FeedEvent(r["session_id"], r["seq"], r["kind"], r["data"], r["created_at"]) for r in rows]

    async def last_seq(self, session_id: str) -> int:
        """The session's newest feed seq (0: none)."""
        async with self._engine.connect() as conn:
            value = await conn.scalar(select(func.max(EVENTS.c.seq)).where(EVENTS.c.session_id == session_id))
        return int(value or 0)

    async def activity(self, sessions: Sequence[str]) -> dict[str, list[FeedEvent]]:
        """The feed events of ``sessions`` that carry text (``user``, ``agent``), for previews and unread counts."""
        if not sessions:
            return {}
        query = (
            select(EVENTS)
            .where(and_(EVENTS.c.session_id.in_(list(sessions)), EVENTS.c.kind.in_(("user", "agent"))))
            .order_by(EVENTS.c.session_id, EVENTS.c.seq)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        found: dict[str, list[FeedEvent]] = {}
        for r in rows:
            found.setdefault(r["session_id"], []).append(
                FeedEvent(r["session_id"], r["seq"], r["kind"], r["data"], r["created_at"])
            )
        return found

    async def mark_read(self, handoff_id: str, seq: int) -> None:
        """The agent has seen the feed up to ``seq``."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(HANDOFFS)
                .where(and_(HANDOFFS.c.id == handoff_id, HANDOFFS.c.agent_read_seq < seq))
                .values(agent_read_seq=seq)
            )

    async def add_note(
        self, session_id: str, handoff_id: str | None, agent_id: str, text: str, *, private: bool
    ) -> NoteRecord:
        """Store an internal note."""
        note = NoteRecord(
            f"nt_{uuid.uuid4().hex[:20]}", session_id, handoff_id, agent_id, private, text, datetime.now(UTC)
        )
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(NOTES).values(
                    id=note.id,
                    session_id=session_id,
                    handoff_id=handoff_id,
                    agent_id=agent_id,
                    private=private,
                    text=text,
                    created_at=note.created_at,
                )
            )
        return note

    async def notes(self, session_id: str) -> list[NoteRecord]:
        """All notes of a session, oldest first (the caller filters private ones)."""
        query = select(NOTES).where(NOTES.c.session_id == session_id).order_by(NOTES.c.created_at)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            NoteRecord(
                r["id"], r["session_id"], r["handoff_id"], r["agent_id"], r["private"], r["text"], r["created_at"]
            )
            for r in rows
        ]

    async def aclose(self) -> None:
        """Close the pool."""
        await self._engine.dispose()


def _handoff(row: RowMapping) -> HandoffRecord:
    return HandoffRecord(
        id=row["id"],
        session_id=row["session_id"],
        user_id=row["user_id"],
        turn_id=row["turn_id"],
        flow=row["flow"],
        reason=row["reason"],
        summary=json.loads(row["summary"] or "{}"),
        status=row["status"],
        created_at=row["created_at"],
        reason_code=row["reason_code"],
        context=json.loads(row["context"] or "{}"),
        agent_id=row["agent_id"],
        claimed_at=row["claimed_at"],
        ended_at=row["ended_at"],
        outcome=row["outcome"],
        rating=row["rating"],
        rating_comment=row["rating_comment"],
        last_activity_at=row["last_activity_at"],
        agent_read_seq=row["agent_read_seq"],
    )
