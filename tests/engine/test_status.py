"""Guarantee: the answer is stored once with an honest status, and a broken turn ends with an ``error`` event."""

from __future__ import annotations

import asyncio

import pytest

from kefu.engine.events import DoneEvent, ErrorEvent
from kefu.llm.base import Usage
from tests.engine.conftest import ALICE, Engine
from tests.engine.fakes import FakeModel, Script, assert_well_formed, broken, eventually, texts


async def test_normal_finish_is_stored_complete_with_a_done_event(engine: Engine) -> None:
    model = FakeModel(Script(["您好", "，请问", Usage(12, 3, 15)], finish="stop", model="fake-7"))
    a = engine.replica(model)
    handle = await a.chat.start_turn(ALICE, "在吗")
    events = await engine.follow_all(a, handle)

    assert_well_formed(events, handle.meta)
    done = events[-1].event
    assert isinstance(done, DoneEvent)
    assert (done.turn_id, done.finish_reason, done.source, done.model) == (handle.turn_id, "stop", "llm", "fake-7")
    assert done.usage is not None and done.usage["completion_tokens"] == 3
    messages = await engine.store.list_messages(handle.session_id)
    assert [(m.role, m.content, m.status) for m in messages] == [
        ("user", "在吗", "complete"),
        ("assistant", "您好，请问", "complete"),
    ]
    assert (messages[1].source, messages[1].model, messages[1].prompt_tokens) == ("llm", "fake-7", 12)
    assert model.calls == 1


@pytest.mark.parametrize("reason", ["length", "content_filter"])
async def test_stream_cut_by_the_model_is_stored_interrupted(engine: Engine, reason: str) -> None:
    a = engine.replica(FakeModel(Script(["一半的", "回答"], finish=reason)))
    handle = await a.chat.start_turn(ALICE, "讲个长故事")
    events = await engine.follow_all(a, handle)

    done = events[-1].event
    assert isinstance(done, DoneEvent) and done.finish_reason == reason
    [answer] = await engine.answers(handle.session_id)
    assert (answer.content, answer.status) == ("一半的回答", "interrupted")


async def test_upstream_error_after_text_is_an_error_event_and_keeps_the_partial_text(engine: Engine) -> None:
    model = FakeModel(["已经说了", "一部分", broken()])
    a = engine.replica(model)
    handle = await a.chat.start_turn(ALICE, "讲讲你们的新品")
    events = await engine.follow_all(a, handle)

    assert_well_formed(events, handle.meta)
    error = events[-1].event
    assert isinstance(error, ErrorEvent)
    assert (error.code, error.retryable) == ("upstream_stream_broken", True)
    assert "done" not in [e.name for e in events]
    assert texts(events) == "已经说了一部分"
    [answer] = await engine.answers(handle.session_id)
    assert (answer.content, answer.status) == ("已经说了一部分", "interrupted")
    assert model.calls == 1  # never retried (nor replaced) once text reached the log


async def test_upstream_error_before_any_text_answers_with_the_fallback_apology(engine: Engine) -> None:
    # DESIGN.md: when no model can answer before the first token, the bot apologises and offers a human
    # ("never an empty bubble"); the answer is a complete `fallback` answer, not an error.
    model = FakeModel([broken("connection reset")])
    a = engine.replica(model)
    handle = await a.chat.start_turn(ALICE, "讲讲你们的新品")
    events = await engine.follow_all(a, handle)

    assert_well_formed(events, handle.meta)
    done = events[-1].event
    assert isinstance(done, DoneEvent) and (done.source, done.handoff_offered) == ("fallback", True)
    [answer] = await engine.answers(handle.session_id)
    assert answer.status == "complete" and answer.source == "fallback"
    assert answer.content == texts(events) and answer.content.strip()
    assert model.calls == 1


async def test_no_model_and_no_knowledge_base_is_an_error_event_and_no_assistant_row(engine: Engine) -> None:
    a = engine.replica(None)
    handle = await a.chat.start_turn(ALICE, "讲讲你们的新品")
    events = await engine.follow_all(a, handle)

    assert [e.name for e in events] == ["session", "error"]
    error = events[-1].event
    assert isinstance(error, ErrorEvent) and (error.code, error.retryable) == ("llm_not_configured", False)
    messages = await engine.store.list_messages(handle.session_id)
    assert [(m.role, m.content) for m in messages] == [("user", "讲讲你们的新品")]  # never a blank assistant row
    assert engine.store.answer_calls == []


async def test_a_store_that_cannot_save_the_answer_still_ends_the_log_with_an_error(engine: Engine) -> None:
    engine.store.fail_answers = True
    a = engine.replica(FakeModel(["lost ", "answer"]))
    handle = await a.chat.start_turn(ALICE, "讲讲你们的新品")
    events = await engine.follow_all(a, handle)

    assert_well_formed(events, handle.meta)
    error = events[-1].event
    assert isinstance(error, ErrorEvent) and (error.code, error.retryable) == ("internal_error", True)
    assert "done" not in [e.name for e in events]
    # Tried when the turn finished and once more when ending it anyway; storing is once per turn, so that is safe.
    assert [c[1] for c in engine.store.answer_calls] == ["lost answer", "lost answer"]
    # The turn is over: the session takes the next message.
    engine.store.fail_answers = False
    again = await a.chat.start_turn(ALICE, "again", handle.session_id)
    assert (await engine.follow_all(a, again))[-1].name == "done"


async def test_follower_that_joined_before_the_failure_gets_the_error_too(engine: Engine) -> None:
    gate = asyncio.Event()
    a = engine.replica(FakeModel(["part", gate, broken()]))
    handle = await a.chat.start_turn(ALICE, "讲讲你们的新品")
    follower = asyncio.create_task(engine.follow_all(a, handle))
    await eventually(lambda: a.model.waiting.is_set(), what="the model mid-answer")  # type: ignore[union-attr]
    gate.set()
    events = await follower
    assert [e.name for e in events] == ["session", "delta", "error"]
    [answer] = await engine.answers(handle.session_id)
    assert (answer.content, answer.status) == ("part", "interrupted")
