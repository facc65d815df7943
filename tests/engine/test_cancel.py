"""Guarantee: only an explicit cancel (or shutdown) stops a turn; what was said is kept as ``interrupted``."""

from __future__ import annotations

import asyncio

import pytest

from kefu.engine.events import ErrorEvent
from kefu.errors import NotFound
from tests.engine.conftest import ALICE, BOB, Engine
from tests.engine.fakes import FakeModel, assert_well_formed, eventually, texts


async def _has_delta(engine: Engine, turn_id: str) -> bool:
    return any(e.type == "delta" for e in await engine.hot.read(turn_id, 0, 0))


async def test_cancel_stops_a_running_turn_and_keeps_the_text_so_far(engine: Engine) -> None:
    never = asyncio.Event()
    model = FakeModel(["说到", "一半", never, "不会出现"], ["next answer"])
    a = engine.replica(model)
    handle = await a.chat.start_turn(ALICE, "hi")
    await eventually(lambda: _has_delta(engine, handle.turn_id), what="the first delta")
    await eventually(model.waiting.is_set, what="the model waiting for more")

    assert await a.chat.cancel(ALICE, handle.turn_id) is True
    events = await engine.follow_all(a, handle)
    assert_well_formed(events, handle.meta)
    error = events[-1].event
    assert isinstance(error, ErrorEvent) and (error.code, error.retryable) == ("cancelled", False)
    assert texts(events) == "说到一半"
    [answer] = await engine.answers(handle.session_id)
    assert (answer.content, answer.status) == ("说到一半", "interrupted")
    assert model.closed == 1  # the upstream stream was closed, not left running
    # The session is free again.
    again = await a.chat.start_turn(ALICE, "next", handle.session_id)
    assert texts(await engine.follow_all(a, again)) == "next answer"


async def test_cancel_before_any_text_stores_no_assistant_row(engine: Engine) -> None:
    model = FakeModel([asyncio.Event()])
    a = engine.replica(model)
    handle = await a.chat.start_turn(ALICE, "hi")
    await eventually(model.waiting.is_set, what="the model waiting for its first token")

    assert await a.chat.cancel(ALICE, handle.turn_id) is True
    events = await engine.follow_all(a, handle)
    assert [e.name for e in events] == ["session", "error"]
    assert events[-1].event == ErrorEvent("cancelled", "the turn was cancelled", retryable=False)
    messages = await engine.store.list_messages(handle.session_id)
    assert [m.role for m in messages] == ["user"]  # never a blank row


async def test_cancel_after_the_turn_finished_returns_false(engine: Engine) -> None:
    a = engine.replica(FakeModel(["done already"]))
    handle = await a.chat.start_turn(ALICE, "hi")
    events = await engine.follow_all(a, handle)
    assert events[-1].name == "done"

    assert await a.chat.cancel(ALICE, handle.turn_id) is False
    [answer] = await engine.answers(handle.session_id)
    assert (answer.content, answer.status) == ("done already", "complete")
    meta = await a.chat.turn_meta(ALICE, handle.turn_id)
    assert meta.last_seq == len(events)  # nothing appended after the end


async def test_cancel_through_another_replica_reaches_the_running_turn(engine: Engine) -> None:
    never = asyncio.Event()
    model = FakeModel(["partial", never])
    a = engine.replica(model)
    b = engine.replica(FakeModel())
    handle = await a.chat.start_turn(ALICE, "hi")
    await eventually(lambda: _has_delta(engine, handle.turn_id), what="the first delta")

    assert await b.chat.cancel(ALICE, handle.turn_id) is True  # b does not run it: it sets the lease's cancel flag
    events = await engine.follow_all(b, handle)  # a sees the flag at its next lease renewal
    assert_well_formed(events, handle.meta)
    assert events[-1].event == ErrorEvent("cancelled", "the turn was cancelled", retryable=False)
    [answer] = await engine.answers(handle.session_id)
    assert (answer.content, answer.status) == ("partial", "interrupted")
    assert model.closed == 1


async def test_another_users_cancel_is_not_found_and_the_turn_goes_on(engine: Engine) -> None:
    gate = asyncio.Event()
    a = engine.replica(FakeModel(["a", gate, "b"]))
    handle = await a.chat.start_turn(ALICE, "hi")
    with pytest.raises(NotFound):
        await a.chat.cancel(BOB, handle.turn_id)
    with pytest.raises(NotFound):
        await a.chat.turn_meta(BOB, handle.turn_id)
    gate.set()
    events = await engine.follow_all(a, handle)
    assert events[-1].name == "done" and texts(events) == "ab"


async def test_shutdown_stops_running_turns_keeping_what_was_said(engine: Engine) -> None:
    model = FakeModel(["before shutdown", asyncio.Event()])
    a = engine.replica(model)
    handle = await a.chat.start_turn(ALICE, "hi")
    await eventually(lambda: _has_delta(engine, handle.turn_id), what="the first delta")

    await asyncio.wait_for(a.chat.shutdown(grace=0.01), timeout=3)
    events = await engine.follow_all(a, handle)
    assert events[-1].event == ErrorEvent("shutdown", "the server is shutting down", retryable=True)
    [answer] = await engine.answers(handle.session_id)
    assert (answer.content, answer.status) == ("before shutdown", "interrupted")
