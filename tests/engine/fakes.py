"""Test doubles for engine tests: a scriptable chat model, a fake clock, a spying store, and waiting helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kefu.engine.events import Logged
from kefu.errors import UpstreamError
from kefu.llm.base import ChatRequest, Finish, ModelEvent, TextDelta, ToolCall, Usage
from kefu.store.base import MessageRecord, MessageStatus, SessionRecord, TranscriptStore, TurnMeta

# A step of a scripted stream: text to yield, a gate to wait on, an error to raise, or usage to report.
Step = str | asyncio.Event | BaseException | Usage


@dataclass
class Script:
    """One scripted model stream: its steps in order, then a ``Finish`` with ``finish`` as the reason."""

    steps: Sequence[Step]
    finish: str = "stop"
    model: str = "fake-1"
    tool_calls: tuple[ToolCall, ...] = ()  # functions the model calls (with ``finish="tool_calls"``)


class FakeModel:
    """A :class:`kefu.llm.base.ChatModel` that plays scripts: one per call, the last one repeated.

    ``calls`` counts ``stream`` calls; ``waiting`` is set while a stream waits on a gate; ``closed`` counts
    streams that ended (normally, by an error, or closed early).
    """

    def __init__(self, *scripts: Script | Sequence[Step], name: str = "fake", model: str = "fake-1") -> None:
        self._scripts = [s if isinstance(s, Script) else Script(list(s)) for s in scripts] or [Script(["ok"])]
        self._name = name
        self._model = model
        self.calls = 0
        self.closed = 0
        self.requests: list[ChatRequest] = []
        self.waiting = asyncio.Event()

    @property
    def name(self) -> str:
        return self._name

    @property
    def model(self) -> str:
        return self._model

    def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        script = self._scripts[min(self.calls, len(self._scripts) - 1)]
        self.calls += 1
        self.requests.append(request)
        return self._play(script)

    async def _play(self, script: Script) -> AsyncIterator[ModelEvent]:
        try:
            for step in script.steps:
                if isinstance(step, str):
                    yield TextDelta(step)
                elif isinstance(step, asyncio.Event):
                    self.waiting.set()
                    try:
                        await step.wait()
                    finally:
                        self.waiting.clear()
                elif isinstance(step, BaseException):
                    raise step
                else:
                    yield step
            yield Finish(reason=script.finish, model=script.model, tool_calls=script.tool_calls)
        finally:
            self.closed += 1

    async def aclose(self) -> None:
        return None


def broken(message: str = "upstream went away") -> UpstreamError:
    """An upstream failure as a provider client raises it."""
    return UpstreamError(message, code="upstream_stream_broken", retryable=True)


class FakeClock:
    """A monotonic clock that only moves when told to (for :class:`MemoryHotState`'s leases and expiry)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class SpyStore:
    """Wraps a real :class:`TranscriptStore`: counts answer writes, and can fail, slow or hold writes."""

    inner: TranscriptStore
    fail_answers: bool = False
    create_delay: float = 0.0
    on_user_message: Callable[[str], Awaitable[None]] | None = None  # runs (with the turn id) before the write
    on_answer: Callable[[str, str, MessageStatus], Awaitable[None]] | None = None  # (turn id, text, status), before
    answer_calls: list[tuple[str, str, MessageStatus]] = field(default_factory=list)
    session_reads: int = 0

    async def get_session(self, session_id: str) -> SessionRecord | None:
        self.session_reads += 1
        return await self.inner.get_session(session_id)

    async def create_session(self, session_id: str, user_id: str, now: datetime) -> SessionRecord:
        if self.create_delay:
            await asyncio.sleep(self.create_delay)  # a slow database, not a wait for a result
        return await self.inner.create_session(session_id, user_id, now)

    async def start_session(
        self, session_id: str, user_id: str, turn_id: str, content: str, now: datetime
    ) -> MessageRecord:
        if self.create_delay:
            await asyncio.sleep(self.create_delay)  # a slow database, not a wait for a result
        if self.on_user_message is not None:
            await self.on_user_message(turn_id)
        return await self.inner.start_session(session_id, user_id, turn_id, content, now)

    async def add_user_message(
        self, session_id: str, turn_id: str, content: str, now: datetime, *, reset_context: bool
    ) -> MessageRecord:
        if self.on_user_message is not None:
            await self.on_user_message(turn_id)
        return await self.inner.add_user_message(session_id, turn_id, content, now, reset_context=reset_context)

    async def add_assistant_message(
        self, session_id: str, turn_id: str, content: str, status: MessageStatus, now: datetime, **kwargs: Any
    ) -> bool:
        self.answer_calls.append((turn_id, content, status))
        if self.on_answer is not None:
            await self.on_answer(turn_id, content, status)
        if self.fail_answers:
            raise RuntimeError("database is down")
        return await self.inner.add_assistant_message(session_id, turn_id, content, status, now, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def eventually(
    check: Callable[[], bool] | Callable[[], Awaitable[bool]], *, timeout: float = 3.0, what: str = ""
) -> None:
    """Wait until ``check()`` is true (polling the loop), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        await asyncio.sleep(0.002)


async def collect(
    follow: AsyncIterator[Logged | None], *, timeout: float = 3.0, limit: int | None = None
) -> list[Logged]:
    """The events a ``follow`` iterator yields (heartbeats dropped) until it ends, or the first ``limit``."""
    out: list[Logged] = []
    async with asyncio.timeout(timeout):
        async for item in follow:
            if item is None:
                continue
            out.append(item)
            if limit is not None and len(out) >= limit:
                break
    aclose = getattr(follow, "aclose", None)
    if aclose is not None:
        await aclose()
    return out


def texts(events: Sequence[Logged]) -> str:
    """The answer text carried by the ``delta`` events."""
    return "".join(e.event.text for e in events if e.name == "delta")  # type: ignore[union-attr]


def assert_well_formed(events: Sequence[Logged], meta: TurnMeta | None = None) -> None:
    """seqs 1..n without gaps, ``session`` first, exactly one terminal event, and it is last."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].name == "session"
    if meta is not None:
        first = events[0].event
        assert (first.session_id, first.turn_id) == (meta.session_id, meta.turn_id)  # type: ignore[union-attr]
    assert [e.final for e in events].count(True) == 1 and events[-1].final
    assert all(e.name == "delta" for e in events[1:-1])
