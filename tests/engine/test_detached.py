"""Guarantee: a turn runs detached from its readers; readers only read its log (and the question is stored first)."""

from __future__ import annotations

import asyncio

from tests.engine.conftest import ALICE, HEARTBEAT, Engine
from tests.engine.fakes import FakeModel, assert_well_formed, collect, eventually, texts


async def test_reader_that_stops_following_does_not_stop_the_turn(engine: Engine) -> None:
    gate = asyncio.Event()
    model = FakeModel(["你好", gate, "，世界", "！"])
    a = engine.replica(model)
    handle = await a.chat.start_turn(ALICE, "hi")

    # The first reader takes the session event and the first delta, then goes away (closes its iterator).
    early = await collect(a.chat.follow(handle.meta, 0, heartbeat=HEARTBEAT), limit=2)
    assert [e.name for e in early] == ["session", "delta"]
    assert model.waiting.is_set() and model.closed == 0  # the upstream stream is still open
    gate.set()

    events = await engine.follow_all(a, handle)
    assert_well_formed(events, handle.meta)
    assert events[-1].name == "done"
    assert texts(events) == "你好，世界！"
    assert events[: len(early)] == early
    assert model.calls == 1
    [answer] = await engine.answers(handle.session_id)
    assert (answer.content, answer.status, answer.turn_id) == ("你好，世界！", "complete", handle.turn_id)


async def test_every_event_reaches_a_late_reader_exactly_once_in_order(engine: Engine) -> None:
    gates = [asyncio.Event() for _ in range(4)]
    pieces = ["一", "二", "三", "四", "五"]
    model = FakeModel([pieces[0], gates[0], pieces[1], gates[1], pieces[2], gates[2], pieces[3], gates[3], pieces[4]])
    a = engine.replica(model)
    handle = await a.chat.start_turn(ALICE, "count")
    for i, gate in enumerate(gates):  # one delta event per piece: wait for each to be logged before the next
        await eventually(lambda i=i: _logged(engine, handle.turn_id, i + 2), what=f"delta {i + 1}")
        gate.set()

    events = await engine.follow_all(a, handle)
    assert_well_formed(events, handle.meta)
    assert [e.name for e in events] == ["session", "delta", "delta", "delta", "delta", "delta", "done"]
    assert [e.event.text for e in events[1:-1]] == pieces  # type: ignore[union-attr]


async def test_caller_that_goes_away_while_the_session_row_is_written_does_not_stop_the_turn(engine: Engine) -> None:
    engine.store.create_delay = 0.05  # start_turn waits for the new session's row: go away during that wait
    model = FakeModel(["still ", "answered"])
    a = engine.replica(model)
    started = asyncio.create_task(a.chat.start_turn(ALICE, "hi"))
    await eventually(lambda: model.calls == 1, what="the upstream call")
    started.cancel()
    await asyncio.gather(started, return_exceptions=True)
    assert started.cancelled()

    await eventually(lambda: len(engine.store.answer_calls) == 1, what="the stored answer")
    [(turn_id, content, status)] = engine.store.answer_calls
    assert (content, status) == ("still answered", "complete")
    meta = await a.chat.turn_meta(ALICE, turn_id)
    events = await engine.follow_all(a, meta)
    assert_well_formed(events, meta)
    assert events[-1].name == "done"
    messages = await engine.store.list_messages(meta.session_id)
    assert [(m.role, m.content) for m in messages] == [("user", "hi"), ("assistant", "still answered")]


async def test_question_is_durable_before_any_answer_text_is_logged(engine: Engine) -> None:
    gate = asyncio.Event()
    deltas_when_stored: list[int] = []

    async def before_user_write(turn_id: str) -> None:
        await gate.wait()
        entries = await engine.hot.read(turn_id, 0, 0)
        deltas_when_stored.append(sum(e.type == "delta" for e in entries))

    model = FakeModel(["first"], ["fast answer"])
    a = engine.replica(model)
    first = await a.chat.start_turn(ALICE, "hi")  # a new session: returns once session and question are stored
    await engine.follow_all(a, first)
    engine.store.on_user_message = before_user_write
    handle = await a.chat.start_turn(ALICE, "again", first.session_id)  # the question's write now overlaps
    await eventually(lambda: model.closed == 2, what="the whole answer from the model")
    gate.set()  # only now may the question be stored

    events = await engine.follow_all(a, handle)
    assert deltas_when_stored == [0]  # the answer waited for the question, though the model was done
    assert texts(events) == "fast answer"
    messages = await engine.store.list_messages(handle.session_id)
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]


async def test_new_session_is_returned_with_its_question_stored(engine: Engine) -> None:
    a = engine.replica(FakeModel([asyncio.Event()]))  # the answer never comes
    handle = await a.chat.start_turn(ALICE, "在吗")
    messages = await engine.store.list_messages(handle.session_id)
    assert [(m.role, m.content) for m in messages] == [("user", "在吗")]
    await a.chat.cancel(ALICE, handle.turn_id)


async def _logged(engine: Engine, turn_id: str, last_seq: int) -> bool:
    meta = await engine.hot.get_turn(turn_id)
    return meta is not None and meta.last_seq >= last_seq
