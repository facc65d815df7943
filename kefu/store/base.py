"""Storage protocols. The engine only talks to these; implementations live beside them.

Two kinds of state:

* :class:`TranscriptStore` — durable: sessions and their messages, in SQL (SQLite or PostgreSQL).
* :class:`HotState` — short-lived coordination state: turn logs, turn leases, per-session locks, cancel
  flags and the cached context window. In process memory (single process) or in Redis (shared by every
  worker and replica).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeAlias

MessageStatus: TypeAlias = Literal["complete", "interrupted", "failed"]
MessageRole: TypeAlias = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A conversation owned by one user."""

    id: str
    user_id: str
    created_at: datetime
    last_active_at: datetime
    context_started_at: datetime


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


class TranscriptStore(Protocol):
    """Durable sessions and messages.

    All datetimes are timezone-aware UTC. Ownership checks are the caller's job: ``get_session``
    returns the record whoever owns it.
    """

    async def create_session(self, session_id: str, user_id: str, now: datetime) -> SessionRecord:
        """Create a session; if ``session_id`` exists already, return the existing record unchanged."""
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
    ) -> bool:
        """Store the answer of a turn exactly once.

        Returns False (and changes nothing) when an assistant message for ``turn_id`` already exists or the
        session no longer exists.
        """
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
class LogEvent:
    """One entry of a turn log. ``data`` is the event payload already serialised as JSON text."""

    seq: int
    type: str
    data: str


@dataclass(frozen=True, slots=True)
class ContextMessage:
    """A message of the cached context window."""

    role: str
    content: str


# Event types that end a turn log. Nothing can be appended after one of them.
TERMINAL_EVENTS = frozenset({"done", "error"})


class HotState(Protocol):
    """Coordination state for turns. Every method is one round trip to the backing store.

    Turn log semantics: sequence numbers start at 1 and have no gaps. Once an event of a type in
    :data:`TERMINAL_EVENTS` is appended the log is finished and further appends are refused (return None).
    Logs and metadata expire ``turn_log_ttl`` seconds after their last write.
    """

    async def create_turn(self, meta: TurnMeta, *, owner: str, lease_seconds: float) -> None:
        """Register a new turn (meta + an empty log) and take its lease for ``owner``."""
        ...

    async def begin_turn(
        self, meta: TurnMeta, events: Sequence[tuple[str, str]], *, owner: str, lease_seconds: float
    ) -> str | None:
        """Start a turn in one round trip: take the session lock for it, then register it and append ``events``.

        The same as :meth:`acquire_session` (``lease_seconds``), then :meth:`create_turn` and :meth:`append`.
        Returns None on success; if another turn holds the session lock, returns that turn's id and leaves no
        trace of this one (no meta, log or lease).
        """
        ...

    async def get_turn(self, turn_id: str) -> TurnMeta | None:
        """The turn's metadata (``finished`` and ``last_seq`` current), or None if unknown/expired."""
        ...

    async def append(self, turn_id: str, events: Sequence[tuple[str, str]]) -> int | None:
        """Append ``(type, json_data)`` events atomically; return the last seq, or None if the log is finished.

        A terminal event must be the last of ``events``.
        """
        ...

    async def read(self, turn_id: str, after: int, timeout: float) -> list[LogEvent]:
        """Events with ``seq > after`` in order; waits up to ``timeout`` seconds for the first one.

        Returns an empty list on timeout. Returns what exists at once if anything does.
        """
        ...

    async def renew_lease(self, turn_id: str, session_id: str, *, owner: str, lease_seconds: float) -> bool:
        """Extend the turn lease and the session lock held by ``owner``; return True if cancel was requested."""
        ...

    async def lease_alive(self, turn_id: str) -> bool:
        """True while the process running the turn keeps renewing its lease."""
        ...

    async def request_cancel(self, turn_id: str) -> None:
        """Ask the owner of the turn to stop it (seen by its next ``renew_lease``)."""
        ...

    async def acquire_session(self, session_id: str, turn_id: str, *, lease_seconds: float) -> str | None:
        """Take the per-session turn lock for ``turn_id``. Returns None on success, else the holder's turn id."""
        ...

    async def release_session(self, session_id: str, turn_id: str) -> None:
        """Release the lock if ``turn_id`` still holds it."""
        ...

    async def get_context(self, session_id: str) -> list[ContextMessage] | None:
        """The cached context window, or None when nothing is cached (expired or never set)."""
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
        self, session_id: str, messages: Sequence[ContextMessage], *, max_messages: int, ttl: int
    ) -> None:
        """Replace the cached context window (used after loading it from SQL)."""
        ...

    async def clear_session(self, session_id: str) -> None:
        """Forget the cached context and lock of a deleted session."""
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
