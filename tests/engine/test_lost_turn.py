"""Guarantee: if the process running a turn dies, readers learn it (its lease expires) and get an ``error`` event.

A "process" is a replica (ChatService + TurnRunner) on the shared hot state and store. It dies by missing its
lease: the fake clock of the hot state jumps past the lease, and an expired lease is never renewed again, so the
replica's turn task is a zombie that nobody hears from (as a dead process).
"""

from __future__ import annotations

import asyncio

from redis.exceptions import ConnectionError as RedisConnectionError

from kefu.engine.ending import LostTurns
from kefu.engine.events import ErrorEvent, Logged
from kefu.engine.history import CUT_OFF
from tests.engine.conftest import ALICE, HEARTBEAT, LEASE_SECONDS, Engine, Replica
from tests.engine.fakes import FakeModel, assert_well_formed, collect, eventually, texts

LOST = ErrorEvent("turn_lost", "the server answering this turn stopped; please ask again", retryable=True)


async def _start_and_die(engine: Engine, pieces: list[str]) -> tuple[Replica, FakeModel, asyncio.Event, str, str]:
    """Start a turn on a new replica, let ``pieces`` reach the log, then let that replica's lease lapse."""
    gate = asyncio.Event()
    model = FakeModel([*pieces, gate, "后半"])
    dying = engine.replica(model)
    handle = await dying.chat.start_turn(ALICE, "第一问")
    await eventually(model.waiting.is_set, what="the model mid-answer")
    want = "".join(pieces)
    await eventually(lambda: _logged_text(engine, handle.turn_id, want), what="the partial answer in the log")
    assert await engine.hot.lease_alive(handle.turn_id)
    engine.clock.advance(LEASE_SECONDS * 10)  # no renewal reached the hot state in time: the process is gone
    assert not await engine.hot.lease_alive(handle.turn_id)
    return dying, model, gate, handle.session_id, handle.turn_id


async def _logged_text(engine: Engine, turn_id: str, want: str) -> bool:
    return texts([Logged.of(e) for e in await engine.hot.read(turn_id, 0, 0)]) == want


def _calls_for(engine: Engine, turn_id: str) -> list[tuple[str, str, str]]:
    return [c for c in engine.store.answer_calls if c[0] == turn_id]


async def test_follower_on_another_replica_learns_the_turn_was_lost(engine: Engine) -> None:
    _, _, _, session_id, turn_id = await _start_and_die(engine, ["部分", "回答"])
    survivor = engine.replica(FakeModel())
    meta = await survivor.chat.turn_meta(ALICE, turn_id)
    assert not meta.finished

    events = await engine.follow_all(survivor, meta)
    assert_well_formed(events, meta)
    assert events[-1].event == LOST
    assert texts(events) == "部分回答"
    [answer] = await engine.answers(session_id)
    assert (answer.content, answer.status, answer.turn_id) == ("部分回答", "interrupted", turn_id)
    assert len(_calls_for(engine, turn_id)) == 1
    assert (await survivor.chat.turn_meta(ALICE, turn_id)).finished


async def test_lost_turn_releases_the_session_and_the_next_turn_sees_the_partial_answer(engine: Engine) -> None:
    _, _, _, session_id, turn_id = await _start_and_die(engine, ["部分"])
    # Keep the session lock past the lease (as a lock with a longer TTL would be), so only closing the lost
    # turn can free it.
    assert await engine.hot.acquire_session(session_id, turn_id, lease_seconds=600) is None
    survivor_model = FakeModel(["第二个回答"])
    survivor = engine.replica(survivor_model)
    events = await engine.follow_all(survivor, await survivor.chat.turn_meta(ALICE, turn_id))
    assert events[-1].event == LOST

    nxt = await survivor.chat.start_turn(ALICE, "第二问", session_id)
    assert texts(await engine.follow_all(survivor, nxt)) == "第二个回答"
    # The dead process never cached this turn in the context window: the next turn reloads it from SQL, and the
    # model is told the partial answer was cut off.
    [request] = survivor_model.requests
    assert [(m.role, m.content) for m in request.messages if m.role != "system"] == [
        ("user", "第一问"),
        ("assistant", "部分" + CUT_OFF),
        ("user", "第二问"),
    ]
    messages = await engine.store.list_messages(session_id)
    assert [(m.role, m.content, m.status) for m in messages] == [
        ("user", "第一问", "complete"),
        ("assistant", "部分", "interrupted"),
        ("user", "第二问", "complete"),
        ("assistant", "第二个回答", "complete"),
    ]


async def test_followers_racing_to_close_a_lost_turn_store_its_answer_once(engine: Engine) -> None:
    _, _, _, session_id, turn_id = await _start_and_die(engine, ["抢", "答"])
    b, c = engine.replica(FakeModel()), engine.replica(FakeModel())
    meta = await b.chat.turn_meta(ALICE, turn_id)

    seen = await asyncio.gather(
        engine.follow_all(b, meta), engine.follow_all(c, meta), engine.follow_all(b, meta, after=1)
    )
    assert seen[0] == seen[1] and seen[2] == seen[0][1:]
    assert_well_formed(seen[0], meta)
    assert [e.name for e in seen[0]].count("error") == 1 and seen[0][-1].event == LOST
    assert _calls_for(engine, turn_id) == [(turn_id, "抢答", "interrupted")]
    assert [(a.content, a.status) for a in await engine.answers(session_id)] == [("抢答", "interrupted")]


async def test_only_one_of_two_concurrent_closes_claims_the_lost_turn(engine: Engine) -> None:
    _, _, _, _, turn_id = await _start_and_die(engine, ["一次"])
    lost = LostTurns(store=engine.store, turns=engine.hot, locks=engine.hot, context=engine.hot)
    meta = await engine.hot.get_turn(turn_id)
    assert meta is not None

    claims = await asyncio.gather(lost.close(meta), lost.close(meta), lost.close(meta))
    assert sorted(claims) == [False, False, True]
    assert _calls_for(engine, turn_id) == [(turn_id, "一次", "interrupted")]
    entries = await engine.hot.read(turn_id, 0, 0)
    assert [e.type for e in entries] == ["session", "delta", "error"]


async def test_lost_turn_without_text_leaves_no_assistant_row(engine: Engine) -> None:
    _, _, _, session_id, turn_id = await _start_and_die(engine, [])
    survivor = engine.replica(FakeModel())
    events = await engine.follow_all(survivor, await survivor.chat.turn_meta(ALICE, turn_id))
    assert [e.name for e in events] == ["session", "error"] and events[-1].event == LOST
    assert await engine.answers(session_id) == []
    assert [m.role for m in await engine.store.list_messages(session_id)] == ["user"]


async def test_the_zombie_cannot_add_to_or_replace_a_turn_closed_as_lost(engine: Engine) -> None:
    dying, model, gate, session_id, turn_id = await _start_and_die(engine, ["僵尸"])
    survivor = engine.replica(FakeModel())
    meta = await survivor.chat.turn_meta(ALICE, turn_id)
    closed = await engine.follow_all(survivor, meta)
    assert closed[-1].event == LOST

    gate.set()  # the "dead" process wakes up and finishes its answer
    await eventually(lambda: model.closed == 1 and dying.active_turns() == 0, what="the zombie's turn to end")
    assert await engine.follow_all(survivor, meta) == closed  # nothing was appended after turn_lost
    assert [(a.content, a.status) for a in await engine.answers(session_id)] == [("僵尸", "interrupted")]


async def test_a_live_lease_is_never_taken_for_a_lost_turn(engine: Engine) -> None:
    gate = asyncio.Event()
    a = engine.replica(FakeModel(["活着", gate, "！"]))
    b = engine.replica(FakeModel())
    handle = await a.chat.start_turn(ALICE, "hi")
    checks: list[bool] = []
    lease_alive = engine.hot.lease_alive

    async def counted(turn_id: str) -> bool:
        alive = await lease_alive(turn_id)
        checks.append(alive)
        return alive

    engine.hot.lease_alive = counted  # type: ignore[method-assign]
    follower = asyncio.create_task(collect(b.chat.follow(handle.meta, 0, heartbeat=HEARTBEAT)))
    await eventually(lambda: len(checks) >= 3, what="the follower checking the lease while the turn is quiet")
    gate.set()
    events = await follower
    assert all(checks)
    assert events[-1].name == "done" and texts(events) == "活着！"
    assert [c[2] for c in _calls_for(engine, handle.turn_id)] == ["complete"]


async def test_zombie_finishing_while_its_lost_turn_is_being_closed_does_not_store_it_complete(
    engine: Engine,
) -> None:
    dying, model, gate, session_id, turn_id = await _start_and_die(engine, ["僵尸"])
    closer_storing = asyncio.Event()
    zombie_ended = asyncio.Event()
    zombie_writes: list[tuple[str, str]] = []

    async def on_answer(_: str, text: str, status: str) -> None:
        if status == "interrupted" and text == "僵尸":  # the reader closing the lost turn
            closer_storing.set()
            await asyncio.wait_for(zombie_ended.wait(), 5)  # the zombie finishes first, if it can
        else:
            zombie_writes.append((text, status))

    engine.store.on_answer = on_answer
    survivor = engine.replica(FakeModel())
    meta = await survivor.chat.turn_meta(ALICE, turn_id)
    reader = asyncio.create_task(engine.follow_all(survivor, meta))
    await asyncio.wait_for(closer_storing.wait(), 3)  # turn_lost is in the log; its answer not yet stored
    gate.set()  # the stalled process wakes up now and finishes its answer
    await eventually(lambda: model.closed == 1 and dying.active_turns() == 0, what="the zombie's turn to end")
    zombie_ended.set()
    events = await reader

    assert zombie_writes == []  # it learnt its turn was closed elsewhere and stored nothing
    assert events[-1].event == LOST and texts(events) == "僵尸"
    [answer] = await engine.answers(session_id)
    assert (answer.content, answer.status) == ("僵尸", "interrupted")  # what the readers were told


async def test_a_lost_turn_nobody_resumes_is_closed_by_the_sweeper(engine: Engine) -> None:
    """Regression: nobody followed the dead turn, so its partial answer was never stored."""
    _, _, _, session_id, turn_id = await _start_and_die(engine, ["说了", "一半"])
    survivor = engine.replica(FakeModel())
    assert await engine.answers(session_id) == []
    assert await survivor.chat.close_lost_turns() == 1
    [answer] = await engine.answers(session_id)
    assert (answer.content, answer.status, answer.turn_id) == ("说了一半", "interrupted", turn_id)
    meta = await survivor.chat.turn_meta(ALICE, turn_id)
    assert meta.finished
    assert await survivor.chat.close_lost_turns() == 0  # once


async def test_the_sweeper_leaves_running_and_answered_turns_alone(engine: Engine) -> None:
    gate = asyncio.Event()
    model = FakeModel(["还在说", gate, "完"])
    a = engine.replica(model)
    running = await a.chat.start_turn(ALICE, "问题")
    await eventually(model.waiting.is_set, what="the model mid-answer")
    assert await a.chat.close_lost_turns() == 0
    gate.set()
    assert (await engine.follow_all(a, running))[-1].name == "done"
    assert await a.chat.close_lost_turns() == 0
    [answer] = await engine.answers(running.session_id)
    assert answer.status == "complete" and answer.content == "还在说完"


async def test_the_sweeper_frees_the_session_of_a_turn_whose_release_failed(engine: Engine) -> None:
    a = engine.replica(FakeModel(["答"]))
    release = engine.hot.release_session

    async def blip(session_id: str, turn_id: str) -> None:
        raise RedisConnectionError("Connection reset by peer")

    engine.hot.release_session = blip  # type: ignore[method-assign]
    handle = await a.chat.start_turn(ALICE, "问")
    assert (await engine.follow_all(a, handle))[-1].name == "error"
    engine.hot.release_session = release  # type: ignore[method-assign]
    engine.clock.advance(LEASE_SECONDS * 10)
    assert await engine.hot.lapsed_turns(limit=10) == [handle.turn_id]  # finished, and still holding its session

    assert await a.chat.close_lost_turns() == 0  # nothing to close: it had ended
    assert await engine.hot.lapsed_turns(limit=10) == []
    [answer] = await engine.answers(handle.session_id)
    assert (answer.content, answer.status) == ("答", "complete")  # stored before the release failed


async def test_the_next_question_closes_a_dead_turn_nobody_resumed_and_comes_after_its_answer(engine: Engine) -> None:
    """Regression: the next turn took the lapsed lock and answered without the dead exchange; the partial answer
    was stored (by the sweeper, if at all) after the next question."""
    _, _, _, session_id, turn_id = await _start_and_die(engine, ["半句"])  # its lock lapsed with its lease
    survivor_model = FakeModel(["第二个回答"])
    survivor = engine.replica(survivor_model)

    nxt = await survivor.chat.start_turn(ALICE, "第二问", session_id)
    assert texts(await engine.follow_all(survivor, nxt)) == "第二个回答"
    assert (await survivor.chat.turn_meta(ALICE, turn_id)).finished  # closed, with its error event
    messages = await engine.store.list_messages(session_id)
    assert [(m.role, m.content, m.status) for m in messages] == [
        ("user", "第一问", "complete"),
        ("assistant", "半句", "interrupted"),
        ("user", "第二问", "complete"),
        ("assistant", "第二个回答", "complete"),
    ]
    [request] = survivor_model.requests
    assert [(m.role, m.content) for m in request.messages if m.role != "system"] == [
        ("user", "第一问"),
        ("assistant", "半句" + CUT_OFF),
        ("user", "第二问"),
    ]
