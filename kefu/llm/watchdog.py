"""A lazy timer that bounds how long a stream may wait for its upstream (first token, then between chunks)."""

from __future__ import annotations

import asyncio


class Watchdog:
    """Cancels the consuming task when the upstream keeps us waiting too long.

    ``since`` is when the current wait started (the request start before the first content token; after it, the
    end of the last read that carried an event). ``waiting`` is true only while the stream awaits the upstream,
    never while it is suspended at a ``yield``, so a slow consumer is not blamed on the upstream. Per chunk this
    costs a couple of attribute writes; the timer re-arms only when it fires.
    """

    __slots__ = ("_baseline", "_handle", "_loop", "_task", "fired", "limit", "since", "waiting")

    def __init__(self, limit: float) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - async generators always run inside a task
            raise RuntimeError("stream() must run inside an asyncio task")
        self._task = task
        self._baseline = task.cancelling()
        self.fired = False
        self.waiting = True
        self.limit = limit
        self.since = self._loop.time()
        self._handle = self._loop.call_at(self.since + limit, self._fire)

    def now(self) -> float:
        """The loop's clock."""
        return self._loop.time()

    def restart(self, limit: float) -> None:
        """Start a new phase with another limit, counted from now."""
        self.limit = limit
        self.since = self._loop.time()
        self._handle.cancel()
        self._handle = self._loop.call_at(self.since + limit, self._fire)

    def _fire(self) -> None:
        now = self._loop.time()
        if self.waiting:
            due = self.since + self.limit
            if now >= due:
                self.fired = True
                self._task.cancel()
                return
        else:
            due = now + self.limit
        self._handle = self._loop.call_at(due, self._fire)

    def consume_cancel(self) -> bool:
        """True if the CancelledError being handled is ours alone (then it is absorbed)."""
        if not self.fired:
            return False
        self.fired = False
        return self._task.uncancel() <= self._baseline

    def stop(self) -> None:
        """Disarm."""
        self._handle.cancel()
