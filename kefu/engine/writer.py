"""Coalesce answer text into turn-log events: the first piece at once, then at most one write per interval.

Per-token writes burn CPU (and a Redis round trip each) at high concurrency. The producer only appends to a
buffer; one writer task drains it. While a write is in flight and until the next tick of the ``interval`` grid
after it (:func:`kefu.ticks.sleep_until_tick`, shared by every turn and by the model client's paced reads), new
text piles up and goes out as one ``delta`` event, so the first token is never delayed and later ones by at
most ``interval`` plus one write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from kefu.engine.events import DeltaEvent, encode
from kefu.ticks import sleep_until_tick, wake

AppendFn = Callable[[list[tuple[str, str]]], Awaitable[int | None]]


class DeltaWriter:
    """Buffers text and writes it to the turn log in coalesced ``delta`` events."""

    def __init__(
        self,
        append: AppendFn,
        *,
        interval: float,
        before_first: Awaitable[object] | None = None,
        on_first: Callable[[], None] | None = None,
        on_failure: Callable[[], object] | None = None,
    ) -> None:
        self._append = append
        self._interval = interval
        self._before_first = before_first
        self._on_first = on_first
        self._on_failure = on_failure
        self._buffer: list[str] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._pause: asyncio.Future[None] | None = None  # the wait for the next tick, cut short by close()
        self.text_parts: list[str] = []  # everything accepted, for the stored answer
        self.written_chars = 0  # what reached the turn log (and so possibly the user)
        self.refused = False  # the log was finished under us (turn declared lost)
        # The question could not be stored or the log written (the rest of the text is kept, not shown).
        self.failed: Exception | None = None

    def start(self, *, before_first: Awaitable[object] | None = None) -> None:
        """Start the writer task (``before_first`` here, instead of in the constructor, when it starts later)."""
        if before_first is not None:
            self._before_first = before_first
        self._task = asyncio.create_task(self._run())

    def write(self, text: str) -> None:
        """Queue answer text (never blocks)."""
        self._buffer.append(text)
        self.text_parts.append(text)
        self._wake.set()

    @property
    def text(self) -> str:
        """All the text accepted so far."""
        return "".join(self.text_parts)

    async def close(self) -> None:
        """Flush what is buffered and stop the writer."""
        self._closing = True
        self._wake.set()
        if self._pause is not None:
            wake(self._pause)  # the rest of the answer goes out now, not at the next tick
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        first = True
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._buffer:
                if first:
                    first = False
                    # The user's message must be durable before any answer text reaches the user.
                    if self._before_first is not None:
                        try:
                            await self._before_first
                        except Exception as exc:  # no answer text may be shown for a question not stored
                            self._fail(exc)
                            return
                    if self._on_first is not None:
                        self._on_first()
                chunk = "".join(self._buffer)
                self._buffer.clear()
                try:
                    appended = await self._append([encode(DeltaEvent(chunk))])
                except Exception as exc:  # the log is unreachable (Redis down): the turn stores what it has
                    self._fail(exc)
                    return
                if appended is None:
                    self.refused = True
                    return
                self.written_chars += len(chunk)
            if self._closing and not self._buffer:
                return
            if not self._closing and self._interval > 0:
                self._pause = asyncio.get_running_loop().create_future()
                try:
                    await sleep_until_tick(self._interval, self._pause)
                finally:
                    self._pause = None

    def _fail(self, exc: Exception) -> None:
        self.failed = exc
        if self._on_failure is not None:
            self._on_failure()
