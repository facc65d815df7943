""":class:`MemoryHotState`: turn logs, leases, locks and the context cache in process memory.

For a single process (no ``KEFU_REDIS_URL``). Everything expires like its Redis counterpart; expired
entries are dropped when touched and by a sweep that runs at most every ``sweep_interval`` seconds from a
write, so memory stays bounded without a background task.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from kefu.store.base import ContextMessage, ContextWindow, LogEntry, TurnMeta


class LocalTurnLog:
    """The events of one turn held in this process, waking waiting readers on every append.

    Holds seqs ``base + 1 …``; :class:`MemoryHotState` keeps whole logs in it, the Redis store a mirror of
    the turns its process produces. A waiting reader costs one future and one timer (no task, no event object
    per append): this is on the path of every frame a client receives.
    """

    __slots__ = ("_waiters", "base", "events", "finished")

    def __init__(self, base: int = 0) -> None:
        self.base = base
        self.events: list[LogEntry] = []
        self.finished = False
        self._waiters: list[asyncio.Future[bool]] = []

    @property
    def last_seq(self) -> int:
        return self.base + len(self.events)

    def extend(self, events: Sequence[tuple[str, str]], *, finished: bool) -> int:
        """Add events with the next seqs; return the last seq."""
        seq = self.base + len(self.events)
        append = self.events.append
        for event_type, data in events:
            seq += 1
            append(LogEntry(seq, event_type, data))
        self.finished = finished
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(True)
        return seq

    async def read(self, after: int, timeout: float) -> list[LogEntry]:
        """Events with ``seq > after`` (``after >= base``), waiting up to ``timeout`` for the first.

        A finished log makes readers wait the full timeout too, like ``XREAD``, so a caller looping past
        the end cannot spin; only a closing :meth:`extend` wakes them early.
        """
        if self.base + len(self.events) <= after and timeout > 0:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[bool] = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_later(timeout, _time_out, waiter)
            try:
                woken = await waiter
            except BaseException:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                raise
            finally:
                timer.cancel()
            if not woken:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                return []
        return self.events[max(after - self.base, 0) :]


def _time_out(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


@dataclass(slots=True)
class _Turn:
    meta: TurnMeta
    expires_at: float
    log: LocalTurnLog = field(default_factory=LocalTurnLog)


@dataclass(slots=True)
class _Expiring:
    value: str
    expires_at: float


@dataclass(slots=True)
class _Context:
    messages: list[ContextMessage]
    expires_at: float
    owner: str = ""


class MemoryHotState:
    """:class:`~kefu.store.base.HotState` in process memory; the embedded, single-process choice."""

    def __init__(
        self,
        *,
        turn_log_ttl: int = 3600,
        sweep_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.turn_log_ttl = turn_log_ttl
        self._sweep_interval = sweep_interval
        self._clock = clock
        self._turns: dict[str, _Turn] = {}
        self._leases: dict[str, _Expiring] = {}
        self._cancels: dict[str, _Expiring] = {}
        self._locks: dict[str, _Expiring] = {}
        self._unended: dict[str, _Expiring] = {}  # session -> the turn that began in it and has not released it
        self._contexts: dict[str, _Context] = {}
        self._jobs: dict[str, _Expiring] = {}
        self._next_sweep = clock() + sweep_interval

    # --- turn log ---

    async def create_turn(self, meta: TurnMeta, *, owner: str, lease_seconds: float) -> None:
        self._register(meta, owner, lease_seconds, self._now_and_sweep())

    async def begin_turn(
        self, meta: TurnMeta, events: Sequence[tuple[str, str]], *, owner: str, lease_seconds: float
    ) -> str | None:
        now = self._now_and_sweep()
        lock, unended = self._locks.get(meta.session_id), self._unended.get(meta.session_id)
        if (lock is None or lock.expires_at <= now) and unended is not None and unended.expires_at > now:
            if unended.value != meta.turn_id:
                return unended.value  # it began, its lock lapsed and it never ended: its process died
        holder = self._take_lock(meta.session_id, meta.turn_id, lease_seconds, now)
        if holder is not None:
            return holder
        self._unended[meta.session_id] = _Expiring(meta.turn_id, now + self.turn_log_ttl)
        turn = self._register(meta, owner, lease_seconds, now)
        if events:
            turn.log.extend(events, finished=False)
        return None

    def _register(self, meta: TurnMeta, owner: str, lease_seconds: float, now: float) -> _Turn:
        turn = _Turn(meta=replace(meta, finished=False, last_seq=0), expires_at=now + self.turn_log_ttl)
        self._turns[meta.turn_id] = turn
        self._cancels.pop(meta.turn_id, None)
        self._leases[meta.turn_id] = _Expiring(owner, now + lease_seconds)
        return turn

    async def get_turn(self, turn_id: str) -> TurnMeta | None:
        turn = self._live_turn(turn_id)
        if turn is None:
            return None
        return replace(turn.meta, last_seq=turn.log.last_seq, finished=turn.log.finished)

    async def append(self, turn_id: str, events: Sequence[tuple[str, str]], *, final: bool = False) -> int | None:
        now = self._now_and_sweep()
        turn = self._live_turn(turn_id)
        if turn is None or turn.log.finished:
            return None
        seq = turn.log.extend(events, finished=final)
        turn.expires_at = now + self.turn_log_ttl
        return seq

    async def read(self, turn_id: str, after: int, timeout: float) -> list[LogEntry]:
        turn = self._live_turn(turn_id)
        if turn is None:
            # Like XREAD on a missing stream: wait, then look once more.
            await asyncio.sleep(timeout)
            turn = self._live_turn(turn_id)
            return [] if turn is None else await turn.log.read(after, 0)
        return await turn.log.read(after, timeout)

    async def forget_turns(self, turn_ids: Sequence[str]) -> int:
        forgotten = 0
        for turn_id in turn_ids:
            turn = self._turns.pop(turn_id, None)
            if turn is not None:
                forgotten += 1
                if not turn.log.finished:
                    turn.log.extend((), finished=True)  # wakes its readers, who then find nothing
            self._leases.pop(turn_id, None)
            self._cancels.pop(turn_id, None)
        return forgotten

    # --- leases and cancellation ---

    async def renew_lease(self, turn_id: str, session_id: str, *, owner: str, lease_seconds: float) -> bool:
        now = self._now_and_sweep()
        lease = self._leases.get(turn_id)
        if lease is not None and lease.expires_at > now and lease.value == owner:
            lease.expires_at = now + lease_seconds
        lock = self._locks.get(session_id)
        if lock is not None and lock.expires_at > now and lock.value == turn_id:
            lock.expires_at = now + lease_seconds
        cancel = self._cancels.get(turn_id)
        return cancel is not None and cancel.expires_at > now

    async def lease_alive(self, turn_id: str) -> bool:
        lease = self._leases.get(turn_id)
        return lease is not None and lease.expires_at > self._clock()

    async def lapsed_turns(self, *, limit: int) -> list[str]:
        now = self._clock()
        lapsed: list[tuple[float, str]] = []
        for unended in self._unended.values():
            if unended.expires_at <= now or self._live_turn(unended.value) is None:
                continue
            lease = self._leases.get(unended.value)
            if lease is None or lease.expires_at <= now:
                lapsed.append((lease.expires_at if lease is not None else 0.0, unended.value))
        return [turn_id for _, turn_id in sorted(lapsed)[:limit]]

    async def request_cancel(self, turn_id: str) -> None:
        now = self._now_and_sweep()
        self._cancels[turn_id] = _Expiring("1", now + self.turn_log_ttl)

    # --- per-session lock ---

    async def acquire_session(self, session_id: str, turn_id: str, *, lease_seconds: float) -> str | None:
        return self._take_lock(session_id, turn_id, lease_seconds, self._now_and_sweep())

    def _take_lock(self, session_id: str, turn_id: str, lease_seconds: float, now: float) -> str | None:
        """Lock the session for ``turn_id``; the holder's turn id if another turn has it."""
        lock = self._locks.get(session_id)
        if lock is not None and lock.expires_at > now and lock.value != turn_id:
            return lock.value
        self._locks[session_id] = _Expiring(turn_id, now + lease_seconds)
        return None

    async def release_session(self, session_id: str, turn_id: str) -> None:
        unended = self._unended.get(session_id)
        if unended is not None and unended.value == turn_id:
            del self._unended[session_id]
        lock = self._locks.get(session_id)
        if lock is not None and lock.value == turn_id:
            del self._locks[session_id]

    # --- background job locks ---

    async def acquire_job(self, name: str, holder: str, *, lease_seconds: float) -> bool:
        now = self._now_and_sweep()
        lock = self._jobs.get(name)
        if lock is not None and lock.expires_at > now and lock.value != holder:
            return False
        self._jobs[name] = _Expiring(holder, now + lease_seconds)
        return True

    async def release_job(self, name: str, holder: str) -> None:
        lock = self._jobs.get(name)
        if lock is not None and lock.value == holder:
            del self._jobs[name]

    # --- context cache ---

    async def get_context(self, session_id: str) -> list[ContextMessage] | None:
        window = await self.get_window(session_id)
        return None if window is None else window.messages

    async def get_window(self, session_id: str) -> ContextWindow | None:
        context = self._contexts.get(session_id)
        if context is None:
            return None
        if context.expires_at <= self._clock():
            del self._contexts[session_id]
            return None
        return ContextWindow(context.owner, list(context.messages))

    async def push_context(
        self, session_id: str, messages: Sequence[ContextMessage], *, max_messages: int, ttl: int
    ) -> None:
        """Append to the cached window; a no-op when nothing is cached (the caller reloads it from SQL)."""
        now = self._now_and_sweep()
        context = self._contexts.get(session_id)
        if context is None or context.expires_at <= now:
            self._contexts.pop(session_id, None)
            return
        context.messages.extend(messages)
        del context.messages[: max(len(context.messages) - max_messages, 0)]
        context.expires_at = now + ttl

    async def set_context(
        self, session_id: str, messages: Sequence[ContextMessage], *, max_messages: int, ttl: int, owner: str = ""
    ) -> None:
        now = self._now_and_sweep()
        kept = list(messages)[-max_messages:] if max_messages > 0 else []
        self._contexts[session_id] = _Context(kept, now + ttl, owner)

    async def clear_session(self, session_id: str) -> None:
        self._contexts.pop(session_id, None)
        self._locks.pop(session_id, None)
        self._unended.pop(session_id, None)

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        self._turns.clear()
        self._leases.clear()
        self._cancels.clear()
        self._locks.clear()
        self._unended.clear()
        self._contexts.clear()
        self._jobs.clear()

    # --- expiry ---

    def _live_turn(self, turn_id: str) -> _Turn | None:
        turn = self._turns.get(turn_id)
        if turn is not None and turn.expires_at <= self._clock():
            del self._turns[turn_id]
            return None
        return turn

    def _now_and_sweep(self) -> float:
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + self._sweep_interval
            self._sweep(now)
        return now

    def _sweep(self, now: float) -> None:
        tables = (self._turns, self._leases, self._cancels, self._locks, self._unended, self._contexts, self._jobs)
        for table in tables:
            expired = [key for key, entry in table.items() if entry.expires_at <= now]
            for key in expired:
                del table[key]
