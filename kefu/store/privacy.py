"""Personal data in SQL: a shopper's conversations listed, read out, deleted and anonymised, and the privacy audit.

Plain storage: what to keep, for how long and who may ask lives in :mod:`kefu.privacy`. Every table that holds a
shopper's data hangs off a session (:data:`PERSONAL_TABLES`, each by ``session_id``), so "everything about a user"
is "everything about their sessions". Tables that hold none are named with the reason in :data:`NO_SHOPPER_DATA`;
a test requires every table to be in one of the two.

Changes to a batch of sessions are one transaction that starts by writing the sessions' rows (with the condition
that selected them: still idle, still not anonymised), which takes their row locks (PostgreSQL) or the database's
write lock (SQLite) first. A turn or an agent writing to one of them waits for it, so no message slips in between
reading a conversation and marking it anonymised, and a conversation that became active again is left alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kefu.store.desk_models import ConversationEventRow, DeskNoteRow, WebhookDeliveryRow
from kefu.store.flow_models import FlowStateRow, HandoffRow
from kefu.store.models import MessageRow, PrivacyAuditRow, SessionRow
from kefu.store.usage import USAGE

SESSIONS = cast(Table, SessionRow.__table__)
MESSAGES = cast(Table, MessageRow.__table__)
FLOWS = cast(Table, FlowStateRow.__table__)
HANDOFFS = cast(Table, HandoffRow.__table__)
EVENTS = cast(Table, ConversationEventRow.__table__)
NOTES = cast(Table, DeskNoteRow.__table__)
DELIVERIES = cast(Table, WebhookDeliveryRow.__table__)
AUDIT = cast(Table, PrivacyAuditRow.__table__)

# Every table holding a shopper's data, children first (the order rows are deleted in); all keyed by session id.
_CHILDREN: tuple[Table, ...] = (DELIVERIES, NOTES, EVENTS, FLOWS, HANDOFFS, MESSAGES)
PERSONAL_TABLES: tuple[str, ...] = (*(t.name for t in _CHILDREN), SESSIONS.name)

NO_SHOPPER_DATA: dict[str, str] = {
    "kb_entries": "the shop's FAQ entries and document passages (bot content, written by the shop)",
    "kb_meta": "the knowledge base's version counter and bot fingerprint",
    "agents": "the shop's own staff accounts (names, password hashes)",
    "agent_tokens": "SHA-256 hashes of agents' desk logins",
    "privacy_audit": "who asked for what and counts; the subject only as a SHA-256 of the user id, never data",
    "llm_usage": "token counts and cost per model call (accounting); deleting a session clears the session and turn "
    "ids of its calls (delete_sessions), so what stays links to nobody",
    "alembic_version": "the schema version",
}

PREVIEW_CHARS = 80


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One conversation in a shopper's list."""

    id: str
    created_at: datetime
    last_active_at: datetime
    handoff_state: str
    message_count: int
    last_role: str | None
    last_text: str | None  # the newest message, cut to PREVIEW_CHARS


@dataclass(slots=True)
class SessionData:
    """Every row about one session, as plain column dicts (JSON columns still as text)."""

    session: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    flow_state: dict[str, Any] | None = None
    handoffs: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Removed:
    """What a deletion removed: rows per table, and the turn ids the sessions' rows named (for the hot state)."""

    rows: dict[str, int] = field(default_factory=dict)
    session_ids: list[str] = field(default_factory=list)
    turn_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Scrub:
    """How anonymisation rewrites a free-text column and a JSON column."""

    text: Callable[[str], str]
    json: Callable[[str], str]


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row of the privacy audit."""

    id: int
    at: datetime
    action: str
    actor: str
    subject: str | None
    details: dict[str, Any]


class PrivacyStore:
    """SQL access for data-subject requests and retention (SQLAlchemy Core; SQLite and PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # --- reading ---

    async def list_sessions(
        self, user_id: str, *, limit: int, before: tuple[datetime, str] | None = None
    ) -> list[SessionSummary]:
        """The user's sessions, most recently active first; ``before`` is the ``(last_active_at, id)`` of the last
        one of the previous page."""
        newest = (
            select(MESSAGES.c.role, MESSAGES.c.content)
            .where(MESSAGES.c.session_id == SESSIONS.c.id)
            .order_by(MESSAGES.c.created_at.desc(), MESSAGES.c.id.desc())
            .limit(1)
            .correlate(SESSIONS)
        )
        count = select(func.count()).where(MESSAGES.c.session_id == SESSIONS.c.id).correlate(SESSIONS)
        query = (
            select(
                SESSIONS.c.id,
                SESSIONS.c.created_at,
                SESSIONS.c.last_active_at,
                SESSIONS.c.handoff_state,
                count.scalar_subquery().label("message_count"),
                newest.with_only_columns(MESSAGES.c.role).scalar_subquery().label("last_role"),
                newest.with_only_columns(func.substr(MESSAGES.c.content, 1, PREVIEW_CHARS))
                .scalar_subquery()
                .label("last_text"),
            )
            .where(SESSIONS.c.user_id == user_id)
            .order_by(SESSIONS.c.last_active_at.desc(), SESSIONS.c.id.desc())
            .limit(limit)
        )
        if before is not None:
            at, session_id = before
            query = query.where(
                or_(
                    SESSIONS.c.last_active_at < at,
                    and_(SESSIONS.c.last_active_at == at, SESSIONS.c.id < session_id),
                )
            )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            SessionSummary(
                id=r["id"],
                created_at=r["created_at"],
                last_active_at=r["last_active_at"],
                handoff_state=r["handoff_state"],
                message_count=int(r["message_count"] or 0),
                last_role=r["last_role"],
                last_text=r["last_text"],
            )
            for r in rows
        ]

    async def session_ids(self, user_id: str, *, after: str = "", limit: int = 100) -> list[str]:
        """The ids of the user's sessions in id order, from after ``after`` (keyset paging)."""
        query = (
            select(SESSIONS.c.id)
            .where(SESSIONS.c.user_id == user_id, SESSIONS.c.id > after)
            .order_by(SESSIONS.c.id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return list((await conn.scalars(query)).all())

    async def read_sessions(self, session_ids: Sequence[str]) -> list[SessionData]:
        """Every row about these sessions, in the order of ``session_ids`` (unknown ids are left out)."""
        if not session_ids:
            return []
        ids = list(session_ids)
        async with self._engine.connect() as conn:
            sessions = await _rows(conn, select(SESSIONS).where(SESSIONS.c.id.in_(ids)))
            found = {s["id"]: SessionData(session=s) for s in sessions}
            messages = await _rows(
                conn,
                select(MESSAGES).where(MESSAGES.c.session_id.in_(ids)).order_by(MESSAGES.c.created_at, MESSAGES.c.id),
            )
            for row in messages:
                found[row["session_id"]].messages.append(row)
            for row in await _rows(conn, select(FLOWS).where(FLOWS.c.session_id.in_(ids))):
                found[row["session_id"]].flow_state = row
            handoffs = select(HANDOFFS).where(HANDOFFS.c.session_id.in_(ids)).order_by(HANDOFFS.c.created_at)
            for row in await _rows(conn, handoffs):
                found[row["session_id"]].handoffs.append(row)
            events = select(EVENTS).where(EVENTS.c.session_id.in_(ids)).order_by(EVENTS.c.session_id, EVENTS.c.seq)
            for row in await _rows(conn, events):
                found[row["session_id"]].events.append(row)
            notes = select(NOTES).where(NOTES.c.session_id.in_(ids)).order_by(NOTES.c.created_at)
            for row in await _rows(conn, notes):
                found[row["session_id"]].notes.append(row)
            deliveries = select(DELIVERIES).where(DELIVERIES.c.session_id.in_(ids)).order_by(DELIVERIES.c.created_at)
            for row in await _rows(conn, deliveries):
                found[row["session_id"]].deliveries.append(row)
        return [found[i] for i in ids if i in found]

    # --- deleting ---

    async def delete_sessions(self, session_ids: Sequence[str], *, idle_before: datetime | None = None) -> Removed:
        """Delete these sessions and every row about them, in one transaction; with ``idle_before`` only those
        still idle since before it (the retention sweep: a conversation that came back to life stays)."""
        removed = Removed()
        if not session_ids:
            return removed
        async with self._engine.begin() as conn:
            claim = update(SESSIONS).where(SESSIONS.c.id.in_(list(session_ids)))
            if idle_before is not None:
                claim = claim.where(SESSIONS.c.last_active_at < idle_before)
            ids = list(
                await conn.scalars(claim.values(handoff_state=SESSIONS.c.handoff_state).returning(SESSIONS.c.id))
            )
            if not ids:
                return removed
            removed.session_ids = ids
            turn_ids = await conn.scalars(select(MESSAGES.c.turn_id).where(MESSAGES.c.session_id.in_(ids)))
            handoff_turns = await conn.scalars(select(HANDOFFS.c.turn_id).where(HANDOFFS.c.session_id.in_(ids)))
            removed.turn_ids = sorted(set(turn_ids) | set(handoff_turns))
            # Explicit child deletes: SQLite cascades only where PRAGMA foreign_keys is on, deliveries have no FK.
            for table in _CHILDREN:
                result = await conn.execute(delete(table).where(table.c.session_id.in_(ids)))
                removed.rows[table.name] = int(result.rowcount)
            result = await conn.execute(delete(SESSIONS).where(SESSIONS.c.id.in_(ids)))
            removed.rows[SESSIONS.name] = int(result.rowcount)
            # The ledger keeps its counts for accounting, unlinked from the conversation (docs/privacy.md).
            await conn.execute(update(USAGE).where(USAGE.c.session_id.in_(ids)).values(session_id=None, turn_id=None))
        return removed

    # --- retention ---

    async def idle_sessions(
        self, idle_before: datetime, *, after: str = "", limit: int = 100, not_anonymised: bool = False
    ) -> list[str]:
        """Ids of sessions last active before ``idle_before`` (``not_anonymised``: and not anonymised since), in id
        order from after ``after``: the sweep pages by id, so a sweep reads the table once whatever it changes."""
        query = (
            select(SESSIONS.c.id)
            .where(SESSIONS.c.last_active_at < idle_before, SESSIONS.c.id > after)
            .order_by(SESSIONS.c.id)
            .limit(limit)
        )
        if not_anonymised:
            query = query.where(_NOT_ANONYMISED)
        async with self._engine.connect() as conn:
            return list((await conn.scalars(query)).all())

    async def anonymise_sessions(
        self, session_ids: Sequence[str], *, idle_before: datetime, now: datetime, scrub: Scrub
    ) -> dict[str, int]:
        """Rewrite every text about these sessions with ``scrub`` and mark them anonymised at ``now``, in one
        transaction; only sessions still idle since before ``idle_before`` and not anonymised since their last
        activity. Their flow state is deleted: a flow idle that long is over, and its slots serve nobody. Returns
        the rows changed per table."""
        counts: dict[str, int] = {}
        if not session_ids:
            return counts
        async with self._engine.begin() as conn:
            claim = (
                update(SESSIONS)
                .where(SESSIONS.c.id.in_(list(session_ids)), SESSIONS.c.last_active_at < idle_before, _NOT_ANONYMISED)
                .values(anonymised_at=now)
                .returning(SESSIONS.c.id)
            )
            ids = list(await conn.scalars(claim))
            counts[SESSIONS.name] = len(ids)
            if not ids:
                return counts
            counts[MESSAGES.name] = await _rewrite(conn, MESSAGES, ids, {"content": scrub.text})
            counts[HANDOFFS.name] = await _rewrite(
                conn,
                HANDOFFS,
                ids,
                {"reason": scrub.text, "summary": scrub.json, "context": scrub.json, "rating_comment": scrub.text},
            )
            counts[EVENTS.name] = await _rewrite(conn, EVENTS, ids, {"data": scrub.json})
            counts[NOTES.name] = await _rewrite(conn, NOTES, ids, {"text": scrub.text})
            counts[DELIVERIES.name] = await _rewrite(conn, DELIVERIES, ids, {"body": scrub.json})
            result = await conn.execute(delete(FLOWS).where(FLOWS.c.session_id.in_(ids)))
            counts[FLOWS.name] = int(result.rowcount)
        return counts

    # --- audit ---

    async def audit(
        self, *, at: datetime, action: str, actor: str, subject: str | None, details: dict[str, Any]
    ) -> None:
        """Record one privacy action (counts only, never data)."""
        row = {
            "at": at,
            "action": action,
            "actor": actor,
            "subject": subject,
            "details": json.dumps(details, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
        }
        async with self._engine.begin() as conn:
            await conn.execute(insert(AUDIT).values(row))

    async def audit_log(self, limit: int = 100) -> list[AuditRecord]:
        """The newest audit records first."""
        query = select(AUDIT).order_by(AUDIT.c.at.desc(), AUDIT.c.id.desc()).limit(max(limit, 0))
        async with self._engine.connect() as conn:
            rows = await _rows(conn, query)
        return [
            AuditRecord(r["id"], r["at"], r["action"], r["actor"], r["subject"], json.loads(r["details"] or "{}"))
            for r in rows
        ]

    async def aclose(self) -> None:
        """Close the pool."""
        await self._engine.dispose()


_NOT_ANONYMISED = or_(SESSIONS.c.anonymised_at.is_(None), SESSIONS.c.anonymised_at < SESSIONS.c.last_active_at)


async def _rows(conn: AsyncConnection, query: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in (await conn.execute(query)).mappings().all()]


async def _rewrite(
    conn: AsyncConnection, table: Table, session_ids: list[str], columns: dict[str, Callable[[str], str]]
) -> int:
    """Apply each column's rewrite to the sessions' rows; write back (one statement, many parameter sets) only the
    rows that changed, and return how many did."""
    keys = list(table.primary_key.columns)
    names = list(columns)
    rows = (
        await conn.execute(select(*keys, *(table.c[n] for n in names)).where(table.c.session_id.in_(session_ids)))
    ).mappings()
    changed: list[dict[str, Any]] = []
    for row in rows:
        new = {n: columns[n](row[n]) if row[n] is not None else None for n in names}
        if any(new[n] != row[n] for n in names):
            changed.append({**{f"k_{k.name}": row[k.name] for k in keys}, **{f"v_{n}": new[n] for n in names}})
    if changed:
        statement = (
            update(table)
            .where(*(k == bindparam(f"k_{k.name}") for k in keys))
            .values({n: bindparam(f"v_{n}") for n in names})
        )
        await conn.execute(statement, changed)
    return len(changed)
