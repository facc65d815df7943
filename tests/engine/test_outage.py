"""The database or Redis going away under a running turn: the turn stops asking the model for text nobody can be
shown, ends with a retryable ``store_unavailable`` error, and keeps an honest transcript."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import sqlalchemy.exc
from redis.exceptions import ConnectionError as RedisConnectionError

from kefu.engine.events import ErrorEvent
from tests.engine.conftest import ALICE, Engine
from tests.engine.fakes import FakeModel, collect, eventually, texts


def _db_down() -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("INSERT INTO messages …", {}, ConnectionRefusedError(111, "refused"))


async def test_a_turn_log_that_fails_mid_answer_stops_the_model_and_keeps_the_text(engine: Engine) -> None:
    gate = asyncio.Event()
    model = FakeModel(["一", gate, "二", asyncio.Event()])  # the rest would take for ever: only stopping ends it
    a = engine.replica(model)
    handle = await a.chat.start_turn(ALICE, "说吧")
    await eventually(model.waiting.is_set, what="the model after its first piece")

    async def redis_down(turn_id: str, events: Sequence[tuple[str, str]], *, final: bool = False) -> int | None:
        raise RedisConnectionError("Connection refused")

    engine.hot.append = redis_down  # type: ignore[method-assign]
    gate.set()
    await eventually(lambda: a.active_turns() == 0, what="the turn to end")

    assert model.closed == 1  # the model's stream was closed, not left running
    [answer] = await engine.answers(handle.session_id)
    # What was said before the outage at least (text the output step still held back when it stopped may be lost).
    assert answer.status == "interrupted" and answer.content.startswith("一")


async def test_a_question_that_cannot_be_stored_ends_the_turn_at_once_with_a_retryable_error(engine: Engine) -> None:
    model = FakeModel(["第一个回答"], ["不该出现", asyncio.Event()])
    a = engine.replica(model)
    first = await a.chat.start_turn(ALICE, "在吗")
    await engine.follow_all(a, first)

    async def database_down(_: str) -> None:
        raise _db_down()

    engine.store.on_user_message = database_down  # the cached window lets the turn start without SQL
    handle = await a.chat.start_turn(ALICE, "还在吗", first.session_id)
    events = await collect(a.chat.follow(handle.meta, 0, heartbeat=0.02))

    assert events[-1].event == ErrorEvent("store_unavailable", events[-1].event.message, retryable=True)  # type: ignore[union-attr]
    assert texts(events) == ""  # no answer to a question that is not stored
    assert model.closed == 2
    messages = await engine.store.list_messages(first.session_id)
    assert [(m.role, m.content) for m in messages] == [("user", "在吗"), ("assistant", "第一个回答")]


async def test_history_that_cannot_be_loaded_is_a_retryable_store_error(engine: Engine) -> None:
    a = engine.replica(FakeModel(["第一个回答"], ["第二个回答"]))
    first = await a.chat.start_turn(ALICE, "在吗")
    await engine.follow_all(a, first)
    await engine.hot.set_context(first.session_id, [], max_messages=0, ttl=0)  # no cached window: load from SQL
    list_messages = engine.store.inner.list_messages

    async def down(*args: object, **kwargs: object) -> object:
        raise _db_down()

    engine.store.inner.list_messages = down  # type: ignore[method-assign,assignment]
    handle = await a.chat.start_turn(ALICE, "还在吗", first.session_id)
    events = await engine.follow_all(a, handle)
    engine.store.inner.list_messages = list_messages  # type: ignore[method-assign]

    error = events[-1].event
    assert isinstance(error, ErrorEvent) and (error.code, error.retryable) == ("store_unavailable", True)
