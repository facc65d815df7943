"""Storage protocols. The engine only talks to these; implementations live beside them.

Two kinds of state:

* :class:`TranscriptStore` — durable: sessions and their messages, in SQL (SQLite or PostgreSQL).
* :class:`HotState` — short-lived coordination state, in process memory (single process) or in Redis (shared by
  every worker and replica). Callers use its narrow parts: :class:`TurnLog` (turn registration and event log),
  :class:`TurnLeases` (turn leases, cancel flags, per-session locks), :class:`ContextCache` (the cached
  context window) and :class:`JobLocks` (one process at a time for background jobs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeAlias

MessageStatus: TypeAlias = Literal["complete", "interrupted", "failed"]
MessageRole: TypeAlias = Literal["user", "assistant", "agent"]  # agent: a person on the shop's team


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A conversation owned by one user."""

    id: str
    user_id: str
    created_at: datetime
    last_active_at: datetime
    context_started_at: datetime
    handoff_state: str = "bot"  # who answers: bot | queued | agent | closed (kefu.handoff)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One stored message. Assistant rows carry status, source, model and token usage."""

    id: int
    session_id: str
    turn_id: str
    role: MessageRole
    content: str
    status: MessageStatus
    created_at: datetime
    source: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    author: str | None = None  # an agent's display name (role ``agent``)
    moderation: str | None = None  # what content moderation did, ``<action>:<category>`` (kefu.moderation)


class TranscriptStore(Protocol):
    """Durable sessions and messages.

    All datetimes are timezone-aware UTC. Ownership checks are the caller's job: ``get_session``
    returns the record whoever owns it.
    """

    async def create_session(self, session_id: str, user_id: str, now: datetime) -> SessionRecord:
        """Create a session; if ``session_id`` exists already, return the existing record unchanged."""
        ...

    async def start_session(
        self, session_id: str, user_id: str, turn_id: str, content: str, now: datetime
    ) -> MessageRecord:
        """Create a new session with the user's first message, in one transaction (one write on a new
        conversation's path instead of two). Raises :class:`kefu.errors.Conflict` (and writes nothing) if
        ``session_id`` exists already."""
        ...

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """The session, or None if it does not exist (or was deleted)."""
        ...

    async def add_user_message(
        self, session_id: str, turn_id: str, content: str, now: datetime, *, reset_context: bool
    ) -> MessageRecord:
        """Store the user's message of a turn and mark the session active at ``now``.

        With ``reset_context`` the session's ``context_started_at`` becomes ``now`` (the sliding TTL expired,
        earlier messages are no longer sent to the model). One transaction. Raises :class:`kefu.errors.NotFound`
        if the session does not exist (e.g. deleted meanwhile).
        """
        ...

    async def add_assistant_message(
        self,
        session_id: str,
        turn_id: str,
        content: str,
        status: MessageStatus,
        now: datetime,
        *,
        source: str | None,
        model: str | None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        moderation: str | None = None,
    ) -> bool:
        """Store the answer of a turn exactly once.

        Returns False (and changes nothing) when an assistant message for ``turn_id`` already exists or the
        session no longer exists.
        """
        ...

    async def mark_message(self, turn_id: str, role: MessageRole, mark: str) -> bool:
        """Record what content moderation did to a stored message (``<action>:<category>``); False if there is
        no such message (yet)."""
        ...

    async def list_messages(
        self, session_id: str, *, since: datetime | None = None, last: int | None = None
    ) -> list[MessageRecord]:
        """Messages in chronological order; ``since`` keeps those created at or after it, ``last`` the newest N."""
        ...

    async def delete_session(self, session_id: str) -> bool:
        """Delete the session and its messages. False if it did not exist."""
        ...

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        ...

    async def aclose(self) -> None:
        """Dispose of the connection pool."""
        ...


@dataclass(frozen=True, slots=True)
class TurnMeta:
    """Who a turn belongs to; kept as long as its log."""

    turn_id: str
    session_id: str
    user_id: str
    created_at: float
    finished: bool = False
    last_seq: int = 0


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of a turn log: its sequence number, the event's name and its payload as JSON text.

    The store does not interpret events; the engine (``kefu.engine.events``) gives them their types.
    """

    seq: int
    type: str
    data: str


@dataclass(frozen=True, slots=True)
class ContextMessage:
    """A message of the cached context window."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class ContextWindow:
    """A cached context window and the user whose session it is (``""`` when it was cached without one)."""

    owner: str
    messages: list[ContextMessage]


class TurnLog(Protocol):
    """Turn registration and the turn's event log. Every method is one round trip to the backing store.

    Sequence numbers start at 1 and have no gaps. Once an append marked ``final`` is made the log is finished
    and further appends are refused (return None). Logs and metadata expire ``turn_log_ttl`` seconds after
    their last write.
    """

    async def begin_turn(
        self, meta: TurnMeta, events: Sequence[tuple[str, str]], *, owner: str, lease_seconds: float
    ) -> str | None:
        """Start a turn in one round trip: take the session lock for it, register it, take its lease for
        ``owner`` and append ``events`` (``(type, json)`` pairs; they never finish the log).

        Returns None on success; if another turn holds the session, returns that turn's id and leaves no trace of
        this one (no meta, log or lease). A turn holds its session from its start until it releases it
        (:meth:`TurnLeases.release_session`), even once its lock lapsed (its process died): the caller closes such
        a turn first, so its answer is stored before the next question.
        """
        ...

    async def get_turn(self, turn_id: str) -> TurnMeta | None:
        """The turn's metadata (``finished`` and ``last_seq`` current), or None if unknown/expired."""
        ...

    async def append(self, turn_id: str, events: Sequence[tuple[str, str]], *, final: bool = False) -> int | None:
        """Append ``(type, json)`` events atomically; return the last seq, or None if the log is finished.

        ``final`` finishes the log with this batch.
        """
        ...

    async def read(self, turn_id: str, after: int, timeout: float) -> list[LogEntry]:
        """Entries with ``seq > after`` in order; waits up to ``timeout`` seconds for the first one.

        Returns an empty list on timeout. Returns what exists at once if anything does.
        """
        ...

    async def forget_turns(self, turn_ids: Sequence[str]) -> int:
        """Delete every trace of these turns at once (metadata, log, lease, cancel flag), so that a deleted or
        erased conversation cannot be replayed from its turn logs until they expire. A running turn's next
        append is refused, as for a finished log. Returns how many of the turns still existed."""
        ...


class TurnLeases(Protocol):
    """Who runs a turn (its lease), cancel requests, and the per-session lock of the running turn."""

    async def renew_lease(self, turn_id: str, session_id: str, *, owner: str, lease_seconds: float) -> bool:
        """Extend the turn lease and the session lock held by ``owner``; return True if cancel was requested."""
        ...

    async def lease_alive(self, turn_id: str) -> bool:
        """True while the process running the turn keeps renewing its lease."""
        ...

    async def lapsed_turns(self, *, limit: int) -> list[str]:
        """Ids of turns begun (``begin_turn``) whose lease lapsed and that have not released their session: their
        process died or stalled, and nobody closed them yet. Oldest lapse first, at most ``limit``; a turn stays
        listed until it releases its session (or its log expires), so the caller checks each."""
        ...

    async def request_cancel(self, turn_id: str) -> None:
        """Ask the owner of the turn to stop it (seen by its next ``renew_lease``)."""
        ...

    async def acquire_session(self, session_id: str, turn_id: str, *, lease_seconds: float) -> str | None:
        """Take the per-session turn lock for ``turn_id``. Returns None on success, else the holder's turn id."""
        ...

    async def release_session(self, session_id: str, turn_id: str) -> None:
        """Release the lock if ``turn_id`` still holds it, and the session from the turn (see ``begin_turn``)."""
        ...


class ContextCache(Protocol):
    """The cached window of a session's recent messages (what the model is sent as history)."""

    async def get_context(self, session_id: str) -> list[ContextMessage] | None:
        """The cached context window, or None when nothing is cached (expired or never set)."""
        ...

    async def get_window(self, session_id: str) -> ContextWindow | None:
        """The cached context window with its owner. A window is cached only for a session active within its TTL
        (the session TTL), by turns whose owner was checked: a window owned by the caller lets a turn start
        without reading the session from SQL."""
        ...

    async def push_context(
        self, session_id: str, messages: Sequence[ContextMessage], *, max_messages: int, ttl: int
    ) -> None:
        """Append to the cached context window, keep the newest ``max_messages``, (re)set its TTL.

        Does nothing when no window is cached: appending to an expired window would cache a partial history.
        The engine loads the window from SQL and calls :meth:`set_context` on a miss.
        """
        ...

    async def set_context(
        self, session_id: str, messages: Sequence[ContextMessage], *, max_messages: int, ttl: int, owner: str = ""
    ) -> None:
        """Replace the cached context window of ``owner``'s session (used after loading it from SQL); a ``ttl`` of 0
        drops it. :meth:`push_context` keeps the owner."""
        ...

    async def clear_session(self, session_id: str) -> None:
        """Forget the cached context and lock of a deleted session."""
        ...


class JobLocks(Protocol):
    """One lock per named background job, so that one process at a time runs it (e.g. the retention sweep)."""

    async def acquire_job(self, name: str, holder: str, *, lease_seconds: float) -> bool:
        """Take the job's lock for ``holder`` for ``lease_seconds``; its holder calling again extends it. False
        while another holder has it."""
        ...

    async def release_job(self, name: str, holder: str) -> None:
        """Release the lock if ``holder`` still holds it."""
        ...


class HotState(TurnLog, TurnLeases, ContextCache, JobLocks, Protocol):
    """All short-lived coordination state, as one backend (memory or Redis) provides it.

    Callers depend on the narrow protocols above; only the runtime that builds the backend holds this.
    """

    async def create_turn(self, meta: TurnMeta, *, owner: str, lease_seconds: float) -> None:
        """Register a new turn (meta + an empty log) and take its lease for ``owner`` (no session lock)."""
        ...

    async def ping(self) -> None:
        """Raise if the backing store cannot be reached."""
        ...

    async def aclose(self) -> None:
        """Release connections and background tasks."""
        ...


def meta_to_dict(meta: TurnMeta) -> dict[str, Any]:
    """Plain-dict form of :class:`TurnMeta` (for Redis hashes and debugging)."""
    return {
        "turn_id": meta.turn_id,
        "session_id": meta.session_id,
        "user_id": meta.user_id,
        "created_at": meta.created_at,
        "finished": meta.finished,
        "last_seq": meta.last_seq,
    }
