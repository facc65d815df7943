"""Guarantee: one turn at a time per session, sessions are their owner's only, and a new session exists at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kefu.errors import Conflict, InvalidInput, MessageTooLong, NotFound
from tests.engine.conftest import ALICE, BOB, SESSION_TTL, Engine
from tests.engine.fakes import FakeModel, eventually, texts


async def test_second_turn_in_a_session_with_a_running_turn_is_a_conflict(engine: Engine) -> None:
    gate = asyncio.Event()
    model = FakeModel(["first", gate, " answer"], ["second answer"])
    a = engine.replica(model)
    b = engine.replica(FakeModel(["never used"]))
    handle = await a.chat.start_turn(ALICE, "one")
    await eventually(model.waiting.is_set, what="the first turn mid-answer")

    with pytest.raises(Conflict):
        await a.chat.start_turn(ALICE, "two", handle.session_id)
    with pytest.raises(Conflict):  # another replica sees the same lock
        await b.chat.start_turn(ALICE, "two", handle.session_id)
    assert model.calls == 1 and b.model.calls == 0  # type: ignore[union-attr]

    gate.set()
    assert texts(await engine.follow_all(a, handle)) == "first answer"
    # The refused messages left no trace; the session takes the next one once the turn is over.
    nxt = await a.chat.start_turn(ALICE, "two", handle.session_id)
    assert texts(await engine.follow_all(a, nxt)) == "second answer"
    messages = await engine.store.list_messages(handle.session_id)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "one"),
        ("assistant", "first answer"),
        ("user", "two"),
        ("assistant", "second answer"),
    ]


async def test_turns_in_different_sessions_run_side_by_side(engine: Engine) -> None:
    gate = asyncio.Event()
    a = engine.replica(FakeModel(["x", gate]))
    first = await a.chat.start_turn(ALICE, "one")
    second = await a.chat.start_turn(ALICE, "two")  # a new session: no conflict
    assert first.session_id != second.session_id
    gate.set()
    for handle in (first, second):
        assert texts(await engine.follow_all(a, handle)) == "x"


async def test_foreign_or_unknown_session_is_not_found(engine: Engine) -> None:
    a = engine.replica(FakeModel(["alice's answer"]))
    handle = await a.chat.start_turn(ALICE, "secret")
    await engine.follow_all(a, handle)

    for session_id in (handle.session_id, "s_does_not_exist", "../etc/passwd", "x" * 65):
        with pytest.raises(NotFound):
            await a.chat.start_turn(BOB, "hi", session_id)
    with pytest.raises(NotFound):
        await a.chat.get_session(BOB, handle.session_id)
    with pytest.raises(NotFound):
        await a.chat.delete_session(BOB, handle.session_id)
    with pytest.raises(NotFound):
        await a.chat.turn_meta(BOB, handle.turn_id)
    # Nothing of Bob's reached Alice's session, and it is still there.
    session, messages = await a.chat.get_session(ALICE, handle.session_id)
    assert session.user_id == "alice"
    assert [m.content for m in messages] == ["secret", "alice's answer"]
    assert a.model.calls == 1  # type: ignore[union-attr]


async def test_new_sessions_row_exists_when_start_turn_returns(engine: Engine) -> None:
    engine.store.create_delay = 0.05  # a slow database: start_turn must still wait for the row
    gate = asyncio.Event()
    a = engine.replica(FakeModel(["hi", gate]))
    handle = await a.chat.start_turn(ALICE, "hello")

    row = await engine.store.inner.get_session(handle.session_id)
    assert row is not None and row.user_id == "alice"
    session, _ = await a.chat.get_session(ALICE, handle.session_id)  # usable at once, while the turn runs
    assert session.id == handle.session_id
    gate.set()
    assert texts(await engine.follow_all(a, handle)) == "hi"


async def test_derived_session_is_created_on_first_use_and_reused(engine: Engine) -> None:
    a = engine.replica(FakeModel(["one"], ["two"]))
    first = await a.chat.start_turn(ALICE, "q1", "s_derived", create_missing=True)
    await engine.follow_all(a, first)
    second = await a.chat.start_turn(ALICE, "q2", "s_derived", create_missing=True)
    await engine.follow_all(a, second)
    assert first.session_id == second.session_id == "s_derived"
    _, messages = await a.chat.get_session(ALICE, "s_derived")
    assert [m.content for m in messages] == ["q1", "one", "q2", "two"]
    with pytest.raises(NotFound):  # create_missing never hands over someone else's session
        await a.chat.start_turn(BOB, "q3", "s_derived", create_missing=True)


async def test_invalid_messages_are_refused_before_a_turn_starts(engine: Engine) -> None:
    model = FakeModel()
    a = engine.replica(model)
    with pytest.raises(InvalidInput):
        await a.chat.start_turn(ALICE, "   ")
    with pytest.raises(MessageTooLong):
        await a.chat.start_turn(ALICE, "字" * 4001)
    assert model.calls == 0


async def test_deleted_session_is_gone_for_its_owner(engine: Engine) -> None:
    a = engine.replica(FakeModel(["bye"]))
    handle = await a.chat.start_turn(ALICE, "hi")
    await engine.follow_all(a, handle)
    await a.chat.delete_session(ALICE, handle.session_id)
    with pytest.raises(NotFound):
        await a.chat.get_session(ALICE, handle.session_id)
    with pytest.raises(NotFound):
        await a.chat.start_turn(ALICE, "again", handle.session_id)
    assert await engine.hot.get_context(handle.session_id) is None


async def test_a_turn_in_an_active_session_starts_without_reading_the_session(engine: Engine) -> None:
    model = FakeModel(["one"], ["two"], ["three"])
    a = engine.replica(model)
    first = await a.chat.start_turn(ALICE, "q1")
    await engine.follow_all(a, first)
    reads = engine.store.session_reads
    second = await a.chat.start_turn(ALICE, "q2", first.session_id)
    assert texts(await engine.follow_all(a, second)) == "two"
    assert engine.store.session_reads == reads  # the cached window, owned by Alice, stood in for the SQL read
    assert [(m.role, m.content) for m in model.requests[-1].messages if m.role != "system"] == [
        ("user", "q1"),
        ("assistant", "one"),
        ("user", "q2"),
    ]
    with pytest.raises(NotFound):  # Alice's window is no pass for Bob
        await a.chat.start_turn(BOB, "q", first.session_id)


async def test_once_the_window_expires_the_session_is_read_from_sql_again(engine: Engine) -> None:
    model = FakeModel(["one"], ["two"])
    a = engine.replica(model)
    first = await a.chat.start_turn(ALICE, "q1")
    await engine.follow_all(a, first)
    engine.clock.advance(SESSION_TTL + 1)  # the cached window (and nothing in SQL) has expired
    reads = engine.store.session_reads
    second = await a.chat.start_turn(ALICE, "q2", first.session_id)
    assert texts(await engine.follow_all(a, second)) == "two"
    assert engine.store.session_reads == reads + 1
    # SQL says the session was active a moment ago (wall clock): the history is loaded, not reset.
    assert [m.content for m in model.requests[-1].messages if m.role != "system"] == ["q1", "one", "q2"]


async def test_a_turn_whose_done_was_seen_has_released_its_session_and_updated_its_context(engine: Engine) -> None:
    # A shopper who reads `done` from one replica may send the next message to another at once (CI caught the
    # lock still held then). Slow Redis-like writes make the window wide enough to hit every time.
    hot = engine.hot
    release, push = hot.release_session, hot.push_context

    async def slow_release(session_id: str, turn_id: str) -> None:
        await asyncio.sleep(0.05)
        await release(session_id, turn_id)

    async def slow_push(*args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0.05)
        await push(*args, **kwargs)

    hot.release_session = slow_release  # type: ignore[method-assign]
    hot.push_context = slow_push  # type: ignore[method-assign]
    a = engine.replica(FakeModel(["first answer"]))
    b_model = FakeModel(["second answer"])
    b = engine.replica(b_model)
    first = await a.chat.start_turn(ALICE, "one")
    await engine.follow_all(a, first)
    second = await a.chat.start_turn(ALICE, "two", first.session_id)  # the new session's lock is released too
    await engine.follow_all(a, second)

    third = await b.chat.start_turn(ALICE, "three", first.session_id)  # no Conflict
    assert texts(await engine.follow_all(b, third)) == "second answer"
    seen = [(m.role, m.content) for m in b_model.requests[0].messages if m.role != "system"]
    assert seen == [
        ("user", "one"),
        ("assistant", "first answer"),
        ("user", "two"),
        ("assistant", "first answer"),
        ("user", "three"),
    ]
