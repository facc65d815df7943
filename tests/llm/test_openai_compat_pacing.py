"""Paced reads (``read_pace``): the same events, fewer reads, timeouts and connection reuse intact."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson

from kefu.errors import IdleTimeout
from kefu.llm.base import Finish, ModelEvent, TextDelta, Usage
from kefu.llm.mock import wire
from kefu.llm.openai_compat import OpenAICompatModel
from tests.llm.conftest import ask, collect

Make = Callable[..., OpenAICompatModel]


def directive(**step: object) -> str:
    return f"[[mock:{orjson.dumps(step).decode()}]]"


def text_of(events: list[ModelEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_openai_compat_paced_stream_gives_the_same_events(make_model: Make) -> None:
    question = "pace " + directive(tokens=60, chunk_chars=2, tps=600)
    plain = await collect(make_model(), ask(question))
    paced = await collect(make_model(read_pace=0.03), ask(question))
    assert text_of(paced) == text_of(plain) == wire.answer_text("pace", 60)
    assert [type(e) for e in paced if not isinstance(e, TextDelta)] == [Usage, Finish]
    assert paced[-1] == plain[-1]


async def test_openai_compat_paced_reads_gather_chunks_per_tick(make_model: Make) -> None:
    # 40 one-character chunks at 200/s (~0.2 s): unpaced, each arrives in its own read; paced at 0.1 s, the
    # chunks that arrive between ticks are read together.
    loop = asyncio.get_running_loop()
    model = make_model(read_pace=0.1)
    arrivals: list[float] = []
    started = time.monotonic()
    async for event in model.stream(ask("tick " + directive(tokens=40, chunk_chars=1, tps=200))):
        if isinstance(event, TextDelta):
            arrivals.append(loop.time())
    elapsed = time.monotonic() - started
    assert len(arrivals) == 40
    reads = 1 + sum(1 for a, b in zip(arrivals, arrivals[1:], strict=False) if b - a > 0.002)
    assert reads <= elapsed / 0.1 + 3, (reads, elapsed)


async def test_openai_compat_paced_stall_is_still_an_idle_timeout(make_model: Make) -> None:
    model = make_model(idle_timeout=0.3, read_pace=0.05)
    events: list[ModelEvent] = []
    started = time.monotonic()
    try:
        async for event in model.stream(ask(directive(fail="stall_mid", after_chunks=2, seconds=5))):
            events.append(event)
    except IdleTimeout:
        pass
    else:  # pragma: no cover - the assertion below explains
        raise AssertionError("the stalled stream ended without IdleTimeout")
    assert len([e for e in events if isinstance(e, TextDelta)]) == 2
    assert time.monotonic() - started < 2.0


async def test_openai_compat_paced_streams_leave_the_pooled_connection_usable(make_model: Make) -> None:
    # A paused socket handed back to the pool would stall the next stream on it (first-token timeout).
    model = make_model(read_pace=0.03, first_token_timeout=2.0)
    for i in range(4):
        question = f"again{i} " + directive(tokens=20, chunk_chars=2, tps=400)
        events = await collect(model, ask(question))
        assert text_of(events) == wire.answer_text(f"again{i}", 20)
    assert len(model._clients) == 1
