"""A shopper's rights over their data: list their conversations, export everything, erase everything.

The same operations serve the shopper (``/v1/sessions``, ``/v1/me``), admins (``/v1/admin/privacy``) and the CLI
(``kefu privacy``); every export and erasure leaves one audit record with counts, the user only as a hash.

Erasure goes session by session. Each session is first held like a turn holds it (its per-session lock), so no
new turn can start in it while its rows go; a turn that is running there is cancelled first (its partial answer is
stored as ``interrupted``, then deleted with the rest) and erasure waits for it to let go of the lock, up to
``cancel_wait`` seconds, else :class:`Conflict`. Then the rows go in one transaction, then the hot copies: the
session's turn logs (so nothing can be replayed from them), its cached context window and lock, its flow's hot
copy.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from kefu.errors import Conflict, InvalidInput, NotFound
from kefu.obs.logging import get_logger
from kefu.privacy.audit import Actor, subject_of
from kefu.privacy.document import counts, export_document
from kefu.store.base import ContextCache, TurnLeases, TurnLog
from kefu.store.privacy import PERSONAL_TABLES, AuditRecord, PrivacyStore, Removed, SessionSummary

log = get_logger("kefu.privacy")

MAX_PAGE = 100
_BATCH = 50  # sessions read per query when exporting, listed per query when erasing


class FlowHotCopy(Protocol):
    """The hot copy of a session's running flow (:class:`kefu.store.flowstate.FlowStates`)."""

    async def forget(self, session_id: str) -> None:
        """Drop it, key included."""
        ...


@dataclass(frozen=True, slots=True)
class SessionPage:
    """One page of a shopper's conversations; ``next_cursor`` is None on the last page."""

    sessions: list[SessionSummary]
    next_cursor: str | None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Rights:
    """List, export and erase a user's data."""

    def __init__(
        self,
        store: PrivacyStore,
        *,
        turns: TurnLog,
        leases: TurnLeases,
        context: ContextCache,
        flows: FlowHotCopy,
        lease_seconds: float,
        cancel_wait: float | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._store = store
        self._turns = turns
        self._leases = leases
        self._context = context
        self._flows = flows
        self._lease = lease_seconds
        # A cancelled turn notices at its next lease renewal (a third of the lease) and then stores what it has.
        self._cancel_wait = cancel_wait if cancel_wait is not None else lease_seconds * 1.5
        self._clock = clock

    async def list_sessions(self, user_id: str, *, limit: int = 20, cursor: str | None = None) -> SessionPage:
        """The user's conversations, most recently active first; ``cursor`` continues after a previous page."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", code="invalid_limit")
        before = decode_cursor(cursor) if cursor else None
        found = await self._store.list_sessions(user_id, limit=limit + 1, before=before)
        page = found[:limit]
        more = len(found) > limit
        return SessionPage(page, encode_cursor(page[-1].last_active_at, page[-1].id) if more else None)

    async def export(
        self, user_id: str, *, actor: Actor, include_notes: bool = False, missing_ok: bool = True
    ) -> dict[str, Any]:
        """Everything kefu holds about ``user_id`` (see :mod:`kefu.privacy.document`); without ``missing_ok``, a
        user kefu knows nothing about is :class:`NotFound`."""
        sessions = []
        after = ""
        while ids := await self._store.session_ids(user_id, after=after, limit=_BATCH):
            sessions += await self._store.read_sessions(ids)
            after = ids[-1]
        if not sessions and not missing_ok:
            raise NotFound(f"kefu holds no data about user {user_id!r}", code="unknown_user")
        now = self._clock()
        document = export_document(user_id, sessions, exported_at=now, include_notes=include_notes)
        found = counts(sessions, include_notes=include_notes)
        await self._store.audit(at=now, action="export", actor=actor, subject=subject_of(user_id), details=found)
        log.info("privacy_export", actor=actor, sessions=found["sessions"])
        return document

    async def erase(self, user_id: str, *, actor: Actor, missing_ok: bool = True) -> dict[str, int]:
        """Delete everything kefu holds about ``user_id``: rows in every table and the hot copies. Returns counts
        per table, plus ``turn_logs`` (turn logs still in the hot state). :class:`Conflict` if a running turn
        would not stop in time (nothing of that session is deleted; the sessions before it are)."""
        total: dict[str, int] = dict.fromkeys(PERSONAL_TABLES, 0) | {"turn_logs": 0}
        # Erased sessions disappear from the listing, so each round lists from the start; one the shopper opens
        # meanwhile is found by the next round.
        while ids := await self._store.session_ids(user_id, limit=_BATCH):
            for session_id in ids:
                removed, turn_logs = await self._erase_session(session_id)
                for table, count in removed.rows.items():
                    total[table] = total.get(table, 0) + count
                total["turn_logs"] += turn_logs
        if not total["sessions"] and not missing_ok:
            raise NotFound(f"kefu holds no data about user {user_id!r}", code="unknown_user")
        await self._store.audit(
            at=self._clock(), action="erase", actor=actor, subject=subject_of(user_id), details=total
        )
        log.info("privacy_erase", actor=actor, sessions=total["sessions"], messages=total.get("messages", 0))
        return total

    async def audit_log(self, limit: int = 100) -> list[AuditRecord]:
        """The newest privacy audit records."""
        return await self._store.audit_log(limit)

    async def _erase_session(self, session_id: str) -> tuple[Removed, int]:
        marker = f"erase_{uuid.uuid4().hex}"
        await self._hold(session_id, marker)
        try:
            removed = await self._store.delete_sessions([session_id])
            turn_logs = await self._turns.forget_turns(removed.turn_ids)
            await self._flows.forget(session_id)
        finally:
            await self._context.clear_session(session_id)  # its context window, and the lock held above
        return removed, turn_logs

    async def _hold(self, session_id: str, marker: str) -> None:
        """Take the session's turn lock for ``marker``, cancelling the turn that holds it and waiting for it."""
        deadline = time.monotonic() + self._cancel_wait
        cancelled: str | None = None
        while True:
            holder = await self._leases.acquire_session(session_id, marker, lease_seconds=self._lease)
            if holder is None:
                return
            if holder != cancelled:
                await self._leases.request_cancel(holder)
                cancelled = holder
            if time.monotonic() >= deadline:
                raise Conflict(
                    "a turn is still running in one of the conversations and did not stop in time; try again shortly"
                )
            await asyncio.sleep(0.05)


def encode_cursor(last_active_at: datetime, session_id: str) -> str:
    """An opaque cursor: where the next page starts."""
    raw = f"{last_active_at.isoformat()}|{session_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The ``(last_active_at, session_id)`` of a cursor; :class:`InvalidInput` for anything this did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, session_id = raw.split("|", 1)
        when = datetime.fromisoformat(at)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this server returned", code="invalid_cursor") from exc
    if when.tzinfo is None or not session_id:
        raise InvalidInput("cursor is not one this server returned", code="invalid_cursor")
    return when, session_id
