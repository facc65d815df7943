"""Guarantee: resuming a turn's events is exactly-once: ``after=k`` yields exactly the events after ``k``."""

from __future__ import annotations

import asyncio

from kefu.engine.events import Logged
from tests.engine.conftest import ALICE, HEARTBEAT, Engine
from tests.engine.fakes import FakeModel, assert_well_formed, collect, eventually, texts


async def _last_seq(engine: Engine, turn_id: str) -> int:
    meta = await engine.hot.get_turn(turn_id)
    assert meta is not None
    return meta.last_seq


async def _step_through(engine: Engine, turn_id: str, gates: list[asyncio.Event], first: int = 2) -> None:
    """Open ``gates`` one by one, each once the delta before it is in the log (so each piece is one event)."""
    for i, gate in enumerate(gates):
        await eventually(lambda i=i: _at_least(engine, turn_id, first + i), what=f"seq {first + i}")
        gate.set()


async def _at_least(engine: Engine, turn_id: str, seq: int) -> bool:
    return await _last_seq(engine, turn_id) >= seq


async def test_follow_after_k_yields_exactly_the_events_after_k(engine: Engine) -> None:
    gates = [asyncio.Event() for _ in range(3)]
    a = engine.replica(FakeModel(["a", gates[0], "b", gates[1], "c", gates[2], "d"]))
    handle = await a.chat.start_turn(ALICE, "hi")
    await _step_through(engine, handle.turn_id, gates)
    full = await engine.follow_all(a, handle)
    assert_well_formed(full, handle.meta)
    assert len(full) == 6  # session, 4 deltas, done

    meta = await a.chat.turn_meta(ALICE, handle.turn_id)
    assert meta.finished and meta.last_seq == len(full)
    for k in range(len(full) + 1):
        assert await engine.follow_all(a, meta, after=k) == full[k:], f"after={k}"


async def test_mid_stream_joiner_and_reader_from_start_see_the_same_events(engine: Engine) -> None:
    gates = [asyncio.Event() for _ in range(4)]
    a = engine.replica(FakeModel(["你", gates[0], "好", gates[1], "世", gates[2], "界", gates[3], "！"]))
    b = engine.replica(FakeModel())  # another replica on the same hot state
    handle = await a.chat.start_turn(ALICE, "hi")
    from_start = asyncio.create_task(engine.follow_all(a, handle))

    await _step_through(engine, handle.turn_id, gates[:2])
    await eventually(lambda: _at_least(engine, handle.turn_id, 4), what="three deltas")
    k = await _last_seq(engine, handle.turn_id)
    assert k == 4
    meta = await b.chat.turn_meta(ALICE, handle.turn_id)
    assert not meta.finished
    joiner = asyncio.create_task(engine.follow_all(b, meta))  # replays 1..k, then follows live
    resumer = asyncio.create_task(engine.follow_all(b, meta, after=k))  # Last-Event-ID: <turn>:k
    await _step_through(engine, handle.turn_id, gates[2:], first=k)

    first, joined, resumed = await asyncio.gather(from_start, joiner, resumer)
    assert_well_formed(first, handle.meta)
    assert texts(first) == "你好世界！"
    assert joined == first
    assert resumed == first[k:]
    assert [e.seq for e in resumed] == list(range(k + 1, len(first) + 1))


async def test_resume_after_each_seq_while_live_never_repeats_or_skips(engine: Engine) -> None:
    # A flaky client: reads one event, drops, resumes after the last seq it got, over and over.
    gates = [asyncio.Event() for _ in range(3)]
    a = engine.replica(FakeModel(["1", gates[0], "2", gates[1], "3", gates[2], "4"]))
    handle = await a.chat.start_turn(ALICE, "hi")
    got: list[Logged] = []
    release = asyncio.create_task(_step_through(engine, handle.turn_id, gates))
    while not (got and got[-1].final):
        meta = await a.chat.turn_meta(ALICE, handle.turn_id)
        after = got[-1].seq if got else 0
        got += await collect(a.chat.follow(meta, after, heartbeat=HEARTBEAT), limit=1)
    await release
    assert_well_formed(got, handle.meta)
    assert texts(got) == "1234"


async def test_follow_after_the_end_ends_once_the_turn_is_finished(engine: Engine) -> None:
    gate = asyncio.Event()
    a = engine.replica(FakeModel(["x", gate]))
    handle = await a.chat.start_turn(ALICE, "hi")
    meta = await a.chat.turn_meta(ALICE, handle.turn_id)  # taken while the turn runs
    follower = asyncio.create_task(collect(a.chat.follow(meta, 99, heartbeat=HEARTBEAT), timeout=0.5))
    gate.set()
    assert (await engine.follow_all(a, handle))[-1].name == "done"
    engine.clock.advance(60)  # even with the turn's lease long gone
    assert await follower == []


async def test_a_follower_past_the_last_event_stops_when_the_turn_ends(engine: Engine) -> None:
    """Regression: it used to wait until the finished turn's lease lapsed (with Redis, KEFU_TURN_LEASE_SECONDS)."""
    gate = asyncio.Event()
    a = engine.replica(FakeModel(["a", gate, "b"]))
    handle = await a.chat.start_turn(ALICE, "hi")
    await eventually(lambda: _at_least(engine, handle.turn_id, 2), what="the first delta")
    # Keep the lease alive well past the end, as a longer lease would: only the end of the turn may stop the reader.
    await engine.hot.renew_lease(handle.turn_id, handle.session_id, owner=a.owner, lease_seconds=600)
    beyond = asyncio.create_task(collect(a.chat.follow(handle.meta, 99, heartbeat=HEARTBEAT)))
    gate.set()
    events = await asyncio.wait_for(beyond, 5)
    assert [e for e in events if e is not None] == []
