"""What a report reads from SQL: the conversations that started in the range and what happened in them.

Every number is about the *conversations that started in the range* (``sessions.created_at``): their answers,
handoffs and ratings, whenever those came. A conversation counts when it holds at least one shopper message.
Transcripts are read only for conversations where the bot fell back or a person was asked for: the unanswered
questions are found there (:mod:`kefu.report.unanswered`).

The usage ledger (:data:`LEDGERS`: ``llm_usage.cost_nano`` from migration 0007, or a plain ``usage.cost``; with
``session_id``, ``turn_id``, ``currency``) is optional: when no such table is there the report has no cost section
(``cost`` is None), never an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, column, func, inspect, or_, select, table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kefu.store.flow_models import HandoffRow
from kefu.store.models import MessageRow, SessionRow

SESSIONS = cast(Table, SessionRow.__table__)
MESSAGES = cast(Table, MessageRow.__table__)
HANDOFFS = cast(Table, HandoffRow.__table__)
# Transcripts read for the unanswered questions, at most (the most recent conversations win).
MAX_TRANSCRIPTS = 20_000


@dataclass(frozen=True, slots=True)
class Msg:
    """One stored message, as the report needs it."""

    id: int
    session_id: str
    turn_id: str
    role: str  # user | assistant | agent
    content: str
    source: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class HandoffFact:
    """One request for a person."""

    session_id: str
    turn_id: str
    reason_code: str
    status: str
    outcome: str | None
    rating: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CostLine:
    """Cost of the range's conversations in one currency."""

    currency: str
    total: float
    conversations: int  # conversations with at least one priced row
    turns: int


@dataclass(slots=True)
class Facts:
    """Everything a report is computed from."""

    sessions: list[tuple[str, datetime]] = field(default_factory=list)  # (id, created_at)
    answers: list[tuple[str, str | None, str, int]] = field(default_factory=list)  # (role, source, status, n)
    handoffs: list[HandoffFact] = field(default_factory=list)
    transcripts: dict[str, list[Msg]] = field(default_factory=dict)  # session id → messages in order
    transcripts_capped: bool = False
    cost: list[CostLine] | None = None  # None: no usage ledger in this database


def _in_range(start: datetime, end: datetime) -> Any:
    return and_(SESSIONS.c.created_at >= start, SESSIONS.c.created_at < end)


def _has_message(**match: str) -> Any:
    """Whether the session has a message with these column values (its own alias: the outer query may read
    messages too)."""
    m = MESSAGES.alias()
    conditions = [m.c.session_id == SESSIONS.c.id, *(m.c[name] == value for name, value in match.items())]
    return select(m.c.id).where(*conditions).correlate(SESSIONS).exists()


async def read_facts(engine: AsyncEngine, start: datetime, end: datetime) -> Facts:
    """The facts about conversations started in ``[start, end)`` (UTC)."""
    async with engine.connect() as conn:
        return await _read(conn, start, end)


async def _read(conn: AsyncConnection, start: datetime, end: datetime) -> Facts:
    facts = Facts()
    in_range = and_(_in_range(start, end), _has_message(role="user"))
    rows = await conn.execute(select(SESSIONS.c.id, SESSIONS.c.created_at).where(in_range))
    facts.sessions = [(r.id, r.created_at) for r in rows]
    if not facts.sessions:
        facts.cost = await _cost(conn, in_range)
        return facts

    counted = (
        select(MESSAGES.c.role, MESSAGES.c.source, MESSAGES.c.status, func.count().label("n"))
        .join(SESSIONS, SESSIONS.c.id == MESSAGES.c.session_id)
        .where(in_range, MESSAGES.c.role.in_(("assistant", "agent")))
        .group_by(MESSAGES.c.role, MESSAGES.c.source, MESSAGES.c.status)
    )
    facts.answers = [(r.role, r.source, r.status, int(r.n)) for r in await conn.execute(counted)]

    h = HANDOFFS.c
    handoffs = (
        select(h.session_id, h.turn_id, h.reason_code, h.status, h.outcome, h.rating, h.created_at)
        .join(SESSIONS, SESSIONS.c.id == h.session_id)
        .where(in_range)
        .order_by(h.created_at)
    )
    facts.handoffs = [
        HandoffFact(r.session_id, r.turn_id, r.reason_code, r.status, r.outcome, r.rating, r.created_at)
        for r in await conn.execute(handoffs)
    ]

    # Conversations worth reading in full: the bot fell back, or someone asked for a person.
    fell_back = _has_message(source="fallback")
    asked = select(HANDOFFS.c.id).where(HANDOFFS.c.session_id == SESSIONS.c.id).correlate(SESSIONS).exists()
    interesting = (
        select(SESSIONS.c.id)
        .where(in_range, or_(fell_back, asked))
        .order_by(SESSIONS.c.created_at.desc())
        .limit(MAX_TRANSCRIPTS + 1)
    )
    ids = [r.id for r in await conn.execute(interesting)]
    facts.transcripts_capped = len(ids) > MAX_TRANSCRIPTS
    ids = ids[:MAX_TRANSCRIPTS]
    m = MESSAGES.c
    for chunk in _chunks(ids, 500):
        messages = (
            select(m.id, m.session_id, m.turn_id, m.role, m.content, m.source, m.created_at)
            .where(m.session_id.in_(chunk))
            .order_by(m.session_id, m.id)
        )
        for r in await conn.execute(messages):
            facts.transcripts.setdefault(r.session_id, []).append(
                Msg(r.id, r.session_id, r.turn_id, r.role, r.content, r.source, r.created_at)
            )
    facts.cost = await _cost(conn, in_range)
    return facts


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass(frozen=True, slots=True)
class Ledger:
    """Where the usage ledger keeps cost: its table, the cost column and what one unit of it is worth."""

    table: str
    cost_column: str
    scale: float  # cost_column × scale = cost in ``currency``


# The ledger of migration 0007 (cost in nano-units), then the plain shape (``usage.cost``) the report also reads.
LEDGERS = (Ledger("llm_usage", "cost_nano", 1e-9), Ledger("usage", "cost", 1.0))
_NEEDED = {"session_id", "turn_id", "currency"}


async def usage_ledger(conn: AsyncConnection) -> Ledger | None:
    """The usage ledger in this database (None: no such table, so no cost section)."""

    def find(sync: Any) -> Ledger | None:
        inspector = inspect(sync)
        for ledger in LEDGERS:
            if inspector.has_table(ledger.table):
                columns = {c["name"] for c in inspector.get_columns(ledger.table)}
                if _NEEDED | {ledger.cost_column} <= columns:
                    return ledger
        return None

    found: Ledger | None = await conn.run_sync(find)
    return found


async def _cost(conn: AsyncConnection, in_range: Any) -> list[CostLine] | None:
    ledger = await usage_ledger(conn)
    if ledger is None:
        return None
    usage = table(ledger.table, column("session_id"), column("turn_id"), column(ledger.cost_column), column("currency"))
    u = usage.c
    cost = u[ledger.cost_column]
    priced = (
        select(
            u.currency,
            func.sum(cost).label("total"),
            func.count(func.distinct(u.session_id)).label("conversations"),
            func.count(func.distinct(u.turn_id)).label("turns"),
        )
        .join(SESSIONS, SESSIONS.c.id == u.session_id)
        .where(in_range, cost.is_not(None))
        .group_by(u.currency)
        .order_by(u.currency)
    )
    return [
        CostLine(str(r.currency or "?"), float(r.total or 0) * ledger.scale, int(r.conversations), int(r.turns))
        for r in await conn.execute(priced)
    ]
