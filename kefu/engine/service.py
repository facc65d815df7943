"""The chat service: the operations the HTTP layer (and the CLI) call. No HTTP in here."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kefu.engine.ending import LostTurns
from kefu.engine.events import Logged, SessionEvent, encode
from kefu.engine.history import context_from_records
from kefu.engine.people import OPEN_STATES, People
from kefu.engine.runner import AcceptedTurn, TurnRunner
from kefu.errors import Conflict, InvalidInput, MessageTooLong, NotFound
from kefu.handoff.service import Ticket
from kefu.identity import Identity
from kefu.obs.logging import get_logger
from kefu.store.base import (
    ContextCache,
    MessageRecord,
    SessionRecord,
    TranscriptStore,
    TurnLeases,
    TurnLog,
    TurnMeta,
)

log = get_logger("kefu.chat")

_SESSION_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

# Yielded by ``follow`` when nothing happened for a heartbeat interval.
HEARTBEAT = None


@dataclass(frozen=True, slots=True)
class TurnHandle:
    """A started turn."""

    session_id: str
    turn_id: str
    user_id: str = ""
    created_at: float = 0.0

    @property
    def meta(self) -> TurnMeta:
        """The turn's metadata as it was at the start (what ``follow`` needs, without reading it back)."""
        return TurnMeta(
            turn_id=self.turn_id, session_id=self.session_id, user_id=self.user_id, created_at=self.created_at
        )


def new_id(prefix: str) -> str:
    """A random id like ``t_3f2a…`` (no ``:``, so ``<turn_id>:<seq>`` event ids stay parseable)."""
    return f"{prefix}_{uuid.uuid4().hex}"


def derived_session_id(user_id: str, key: str) -> str:
    """A stable session id for an external conversation key (the OpenAI facade's ``user`` field)."""
    digest = hashlib.sha256(f"{user_id}\0{key}".encode()).hexdigest()[:32]
    return f"s_{digest}"


class ChatService:
    """Starts, follows and cancels turns; reads and deletes sessions. Owner checks happen here."""

    def __init__(
        self,
        *,
        store: TranscriptStore,
        turns: TurnLog,
        leases: TurnLeases,
        context: ContextCache,
        runner: TurnRunner,
        max_message_chars: int,
        session_ttl: int,
        lease_seconds: float,
        owner: str,
        on_session_deleted: Callable[[str], Awaitable[None]] | None = None,
        people: People | None = None,
    ) -> None:
        self._people = people
        self._on_session_deleted = on_session_deleted
        self._store = store
        self._turns = turns
        self._leases = leases
        self._context = context
        self._lost = LostTurns(store=store, turns=turns, locks=leases, context=context)
        self._runner = runner
        self._max_chars = max_message_chars
        self._session_ttl = timedelta(seconds=session_ttl)
        self._lease = lease_seconds
        self._owner = owner
        self._tasks: set[asyncio.Task[None]] = set()

    def validate_message(self, message: str) -> str:
        """The message to answer, or :class:`InvalidInput` / :class:`MessageTooLong`."""
        if not message.strip():
            raise InvalidInput("message must not be empty", code="empty_message")
        if len(message) > self._max_chars:
            raise MessageTooLong(
                f"message has {len(message)} characters; the limit is {self._max_chars} (KEFU_MAX_MESSAGE_CHARS)"
            )
        return message

    async def start_turn(
        self,
        identity: Identity,
        message: str,
        session_id: str | None = None,
        *,
        create_missing: bool = False,
    ) -> TurnHandle:
        """Accept a message and start answering it in the background.

        ``session_id`` None starts a new session. An unknown or foreign session is :class:`NotFound`
        (unless ``create_missing``, used for derived ids), a running turn in it :class:`Conflict`.

        A new session's row is written, with the question, while the turn's upstream request goes out; this
        returns once both are durable, so a client that learns the session id can use it at once.
        """
        text = self.validate_message(message)
        turn_id = new_id("t")
        turn, meta = await self._begin(identity, text, session_id, turn_id, create_missing=create_missing)
        started = self._runner.start(turn)
        self._tasks.add(started.task)
        started.task.add_done_callback(self._tasks.discard)
        if started.session_row is not None:
            # Return once the row is durable, so a client that learns the session id can use it at once.
            try:
                await asyncio.shield(started.session_row)
            except asyncio.CancelledError:
                raise  # the caller went away: the row is still written and the turn goes on
            except Exception:
                self._runner.cancel_local(turn_id)
                raise
        log.debug("turn_started", turn_id=turn_id, session_id=turn.session_id, user_id=identity.user_id)
        return TurnHandle(turn.session_id, turn_id, identity.user_id, meta.created_at)

    async def _begin(
        self, identity: Identity, text: str, session_id: str | None, turn_id: str, *, create_missing: bool
    ) -> tuple[AcceptedTurn, TurnMeta]:
        """Accept the turn and take its session: lock, registration and ``session`` event in one hot-state call (one
        Redis round trip). A turn whose process died holds its session until it is closed: it is closed here, and
        the turn accepted again (the cached window it was accepted with lacks that turn's exchange)."""
        for attempt in range(2):
            now = datetime.now(UTC)
            if session_id is None:
                # The row is written by the runner while the answer starts (one less wait before the upstream call).
                turn = AcceptedTurn(
                    turn_id, new_id("s"), identity.user_id, text, False, new_session=True, created_at=now
                )
            else:
                turn = await self._accept(identity, session_id, turn_id, text, now, create_missing=create_missing)
            meta = TurnMeta(turn_id, turn.session_id, identity.user_id, created_at=time.time())
            first = encode(SessionEvent(turn.session_id, turn_id))
            holder = await self._turns.begin_turn(meta, [first], owner=self._owner, lease_seconds=self._lease)
            if holder is None:
                return turn, meta
            if attempt > 0 or not await self._close_unended(holder):
                break
        raise Conflict(f"a turn is already running in this session ({holder}); wait for it or cancel it")

    async def _close_unended(self, turn_id: str) -> bool:
        """Close a turn that still holds its session though its process died (nobody resumed it and the sweeper
        has not come by yet), so that its partial answer is stored before the next question. False if it is
        running, or is no turn (a handoff holds the session)."""
        meta = await self._turns.get_turn(turn_id)
        if meta is None or (not meta.finished and await self._leases.lease_alive(turn_id)):
            return False
        if not meta.finished:
            await self._lost.close(meta)
        await self._leases.release_session(meta.session_id, turn_id)  # if it ended without releasing it
        return True

    async def _accept(
        self, identity: Identity, session_id: str, turn_id: str, text: str, now: datetime, *, create_missing: bool
    ) -> AcceptedTurn:
        """A turn in an existing session of the caller's (:class:`NotFound` for anyone else's)."""
        window = await self._context.get_window(session_id) if _SESSION_ID.match(session_id) else None
        if window is not None and window.owner == identity.user_id:
            # Cached by an earlier turn of this owner and alive (it expires with the session TTL): no SQL read.
            return AcceptedTurn(turn_id, session_id, identity.user_id, text, False, history=window.messages)
        session = await self._open_session(identity, session_id, now, create_missing=create_missing)
        reset = now - session.last_active_at > self._session_ttl
        # A window cached without an owner is still this session's history; without one the runner loads it.
        history = window.messages if window is not None and not reset else None
        return AcceptedTurn(
            turn_id,
            session.id,
            identity.user_id,
            text,
            reset,
            context_since=session.context_started_at,
            history=history,
            handoff_state=session.handoff_state,
        )

    async def _open_session(
        self, identity: Identity, session_id: str, now: datetime, *, create_missing: bool
    ) -> SessionRecord:
        if not _SESSION_ID.match(session_id):
            raise NotFound("session not found")
        session = await self._store.get_session(session_id)
        if session is None and create_missing:
            session = await self._store.create_session(session_id, identity.user_id, now)
        if session is None or session.user_id != identity.user_id:
            raise NotFound("session not found")
        return session

    async def turn_meta(self, identity: Identity, turn_id: str) -> TurnMeta:
        """The turn if it exists and belongs to the caller, else :class:`NotFound`."""
        meta = await self._turns.get_turn(turn_id)
        if meta is None or meta.user_id != identity.user_id:
            raise NotFound("turn not found (unknown, expired, or not yours)")
        return meta

    async def follow(self, meta: TurnMeta, after: int, *, heartbeat: float) -> AsyncIterator[Logged | None]:
        """Events of a turn after ``after``, then live ones until ``done``/``error``.

        Yields ``HEARTBEAT`` (None) after ``heartbeat`` seconds without events. If the process running the
        turn dies (its lease expires) the turn is closed with an ``error`` event, which is yielded.
        """
        if meta.finished and after >= meta.last_seq:
            return
        wait = min(heartbeat, self._lease)
        quiet_since = time.monotonic()
        while True:
            entries = await self._turns.read(meta.turn_id, after, wait)
            if entries:
                for entry in entries:
                    logged = Logged.of(entry)
                    yield logged
                    after = logged.seq
                    if logged.final:
                        return
                quiet_since = time.monotonic()
                continue
            # Quiet for a while: has the turn ended (a reader past its last event would otherwise wait until the
            # lease lapsed), or has the process running it died?
            current = await self._turns.get_turn(meta.turn_id)
            if current is None or (current.finished and after >= current.last_seq):
                return
            if not current.finished and not await self._leases.lease_alive(meta.turn_id):
                await self._lost.close(meta)  # its `error` event (or another reader's) is read next
                continue
            if time.monotonic() - quiet_since >= heartbeat:
                quiet_since = time.monotonic()
                yield HEARTBEAT

    async def close_lost_turns(self, *, limit: int = 100) -> int:
        """Close turns whose process died and that nobody resumed (the hot state lists those whose lease lapsed):
        their partial answers are stored as ``interrupted`` and their sessions freed. Returns how many it closed.
        Safe on every replica at once: closing a turn is claimed exactly once."""
        closed = 0
        for turn_id in await self._leases.lapsed_turns(limit=limit):
            meta = await self._turns.get_turn(turn_id)
            if meta is None:
                continue  # forgotten (its session deleted): nothing to store
            if meta.finished:
                # It ended but its release did not get through (Redis blinked): free its session now.
                await self._leases.release_session(meta.session_id, turn_id)
            elif not await self._leases.lease_alive(turn_id) and await self._lost.close(meta):
                closed += 1
        return closed

    async def cancel(self, identity: Identity, turn_id: str) -> bool:
        """Stop a turn (on whichever replica runs it). False if it had already finished."""
        meta = await self.turn_meta(identity, turn_id)
        if meta.finished:
            return False
        if not self._runner.cancel_local(turn_id):
            await self._leases.request_cancel(turn_id)
        return True

    async def get_session(self, identity: Identity, session_id: str) -> tuple[SessionRecord, list[MessageRecord]]:
        """A session and all its messages, if it is the caller's."""
        session = await self._owned_session(identity, session_id)
        return session, await self._store.list_messages(session.id)

    async def delete_session(self, identity: Identity, session_id: str) -> None:
        """Delete a session of the caller's, with its transcript and cached context."""
        session = await self._owned_session(identity, session_id)
        turn_ids = sorted({m.turn_id for m in await self._store.list_messages(session.id)})
        await self._store.delete_session(session.id)
        await self._context.clear_session(session.id)
        # Its answers must not be replayable from the turn logs (they live on for an hour after a turn).
        await self._turns.forget_turns(turn_ids)
        if self._on_session_deleted is not None:  # e.g. the session's running flow
            await self._on_session_deleted(session.id)

    async def hand_over(self, identity: Identity, session_id: str, note: str | None = None) -> Ticket:
        """The shopper's "talk to a person" button: queue the conversation for a person (or return the request
        already open). :class:`Conflict` while a turn runs in the session (its answer could contradict the
        handoff); :class:`InvalidInput` when this server has no people step."""
        if self._people is None:
            raise InvalidInput("this server does not hand conversations to people", code="handoff_unavailable")
        session = await self.owned_session(identity, session_id)
        marker = new_id("h")  # holds the session like a turn, so no turn starts while the handoff is made
        holder = await self._leases.acquire_session(session.id, marker, lease_seconds=self._lease)
        if holder is not None:
            raise Conflict(f"a turn is already running in this session ({holder}); wait for it or cancel it")
        try:
            records = await self._store.list_messages(session.id, last=8)
            ticket = await self._people.hand_over(
                session_id=session.id,
                turn_id=marker,
                reason_code="button",
                reason=(note or "").strip()[:500] or "shopper pressed the button",
                history=context_from_records(records),
                text=(note or "").strip()[:500],
            )
            if ticket.handoff.status in OPEN_STATES:
                await self._context.set_context(session.id, [], max_messages=0, ttl=0)  # see TurnRunner._finish
            return ticket
        finally:
            await self._leases.release_session(session.id, marker)

    async def transcript(self, session_id: str) -> list[MessageRecord]:
        """Every message of a session, for the desk (which checks who may read it)."""
        if not _SESSION_ID.match(session_id):
            raise NotFound("session not found")
        return await self._store.list_messages(session_id)

    async def owned_session(self, identity: Identity, session_id: str) -> SessionRecord:
        """The session if it is the caller's, else :class:`NotFound`."""
        return await self._owned_session(identity, session_id)

    async def _owned_session(self, identity: Identity, session_id: str) -> SessionRecord:
        session = await self._store.get_session(session_id) if _SESSION_ID.match(session_id) else None
        if session is None or session.user_id != identity.user_id:
            raise NotFound("session not found")
        return session

    async def shutdown(self, grace: float = 30.0) -> None:
        """Let running turns finish for up to ``grace`` seconds (``KEFU_SHUTDOWN_GRACE``), then stop the rest.

        Called once the server has stopped accepting requests (SIGTERM). A stopped turn keeps its partial answer
        as ``interrupted`` and ends its log with an ``error`` event, so readers on other replicas learn it at once.
        """
        if not self._tasks:
            return
        running = set(self._tasks)
        log.info("shutdown_waiting_for_turns", turns=len(running), grace_seconds=grace)
        _, pending = await asyncio.wait(running, timeout=grace) if grace > 0 else (set(), running)
        if pending:
            log.warning("shutdown_stopping_turns", turns=len(pending), grace_seconds=grace)
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=5.0)
