"""The HotState behaviour suite, run against MemoryHotState and (marked ``redis``) RedisHotState.

The ``hot`` / ``hot_factory`` fixtures are parametrised over both backends; memory-only checks are at the end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from kefu.store.base import ContextMessage, HotState, TurnMeta
from kefu.store.memory import MemoryHotState
from tests.store import eventually
from tests.store.conftest import HotStateFactory

M = ContextMessage
Advance = Callable[[float], Awaitable[None]]
ClockedFactory = Callable[..., tuple[HotState, Advance]]


@pytest.fixture
def clocked_factory(hot_factory: HotStateFactory, request: pytest.FixtureRequest) -> ClockedFactory:
    """Like ``hot_factory``, also returning how to let time pass for the store: a fake clock for memory; real
    waits for Redis, whose TTLs run on the server's clock."""
    if request.node.callspec.params["hot_factory"] != "memory":
        return lambda **kwargs: (hot_factory(**kwargs), asyncio.sleep)

    def make(**kwargs: object) -> tuple[HotState, Advance]:
        clock = FakeClock()

        async def advance(seconds: float) -> None:
            clock.now += seconds

        return hot_factory(clock=clock, **kwargs), advance

    return make


async def start(hot: HotState, turn_id: str = "t1", *, session_id: str = "s1", lease: float = 10.0) -> None:
    meta = TurnMeta(turn_id=turn_id, session_id=session_id, user_id="u1", created_at=time.time())
    await hot.create_turn(meta, owner="worker-a", lease_seconds=lease)


# --- turn log ---


async def test_create_turn_registers_meta(hot: HotState) -> None:
    created = time.time()
    await hot.create_turn(
        TurnMeta(turn_id="t1", session_id="s1", user_id="u1", created_at=created), owner="w", lease_seconds=10
    )
    meta = await hot.get_turn("t1")
    assert meta == TurnMeta(turn_id="t1", session_id="s1", user_id="u1", created_at=created, finished=False, last_seq=0)
    assert await hot.get_turn("nope") is None


async def test_seq_starts_at_one_without_gaps(hot: HotState) -> None:
    await start(hot)
    assert await hot.append("t1", [("session", '{"a":1}')]) == 1
    assert await hot.append("t1", [("delta", '{"text":"你"}'), ("delta", '{"text":"好"}')]) == 3
    assert await hot.append("t1", [("delta", '{"text":"!"}')]) == 4
    events = await hot.read("t1", 0, 0)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert [e.type for e in events] == ["session", "delta", "delta", "delta"]
    assert events[1].data == '{"text":"你"}'
    meta = await hot.get_turn("t1")
    assert meta is not None and meta.last_seq == 4 and not meta.finished


async def test_append_after_terminal_is_refused(hot: HotState) -> None:
    await start(hot)
    assert await hot.append("t1", [("delta", "{}"), ("done", '{"ok":true}')], final=True) == 2
    meta = await hot.get_turn("t1")
    assert meta is not None and meta.finished and meta.last_seq == 2
    assert await hot.append("t1", [("delta", "{}")]) is None
    assert await hot.append("t1", [("error", "{}")], final=True) is None
    assert [e.type for e in await hot.read("t1", 0, 0)] == ["delta", "done"]


async def test_error_is_terminal_too(hot: HotState) -> None:
    await start(hot)
    assert await hot.append("t1", [("error", '{"code":"x"}')], final=True) == 1
    assert await hot.append("t1", [("done", "{}")], final=True) is None


async def test_only_a_final_append_finishes_the_log(hot: HotState) -> None:
    await start(hot)
    # The store does not interpret event names: "done" without final=True is just an entry.
    assert await hot.append("t1", [("done", "{}")]) == 1
    assert await hot.append("t1", [("x", "{}")], final=True) == 2
    assert await hot.append("t1", [("y", "{}")]) is None


async def test_append_to_unknown_turn_is_refused(hot: HotState) -> None:
    assert await hot.append("ghost", [("delta", "{}")]) is None
    assert await hot.get_turn("ghost") is None


async def test_read_returns_existing_events_at_once(hot: HotState) -> None:
    await start(hot)
    await hot.append("t1", [("a", "1"), ("b", "2"), ("c", "3")])
    # A 60 s wait that must not be waited: events after 1 exist.
    events = await asyncio.wait_for(hot.read("t1", 1, 60), 10)
    assert [(e.seq, e.type) for e in events] == [(2, "b"), (3, "c")]


async def test_read_blocks_then_wakes_on_append(hot: HotState) -> None:
    await start(hot)
    await hot.append("t1", [("a", "1")])
    reader = asyncio.create_task(hot.read("t1", 1, 30))
    await asyncio.sleep(0.2)
    assert not reader.done()
    await hot.append("t1", [("b", "2"), ("done", "{}")], final=True)
    events = await asyncio.wait_for(reader, 10)
    assert [e.seq for e in events] == [2, 3]


async def test_read_timeout_returns_empty(hot: HotState) -> None:
    await start(hot)
    await hot.append("t1", [("a", "1")])
    assert await hot.read("t1", 1, 0.2) == []
    assert await hot.read("t1", 1, 0) == []


async def test_many_readers_all_wake(hot: HotState) -> None:
    await start(hot)
    readers = [asyncio.create_task(hot.read("t1", 0, 30)) for _ in range(20)]
    await asyncio.sleep(0.1)
    await hot.append("t1", [("a", "1")])
    results = await asyncio.wait_for(asyncio.gather(*readers), 10)
    assert all([e.seq for e in events] == [1] for events in results)


async def test_turn_log_expires_after_ttl(clocked_factory: ClockedFactory) -> None:
    hot, advance = clocked_factory(turn_log_ttl=1)
    await start(hot)
    await hot.append("t1", [("a", "1")])
    await advance(1.0)

    async def gone() -> bool:
        return await hot.get_turn("t1") is None

    await eventually(gone)
    assert await hot.append("t1", [("b", "2")]) is None


# --- leases and cancellation ---


async def test_lease_expires_when_not_renewed(clocked_factory: ClockedFactory) -> None:
    hot, advance = clocked_factory()
    await start(hot, lease=0.3)
    assert await hot.lease_alive("t1")
    await advance(0.3)

    async def dead() -> bool:
        return not await hot.lease_alive("t1")

    await eventually(dead)
    assert not await hot.lease_alive("never-created")


async def test_renewing_keeps_the_lease_and_only_for_its_owner(clocked_factory: ClockedFactory) -> None:
    hot, advance = clocked_factory()
    await start(hot, "t1", lease=1.0)
    await start(hot, "t2", session_id="s2", lease=1.0)
    for _ in range(15):  # 1.5 s, well past the 1 s lease
        await hot.renew_lease("t1", "s1", owner="worker-a", lease_seconds=1.0)
        await hot.renew_lease("t2", "s2", owner="someone-else", lease_seconds=1.0)
        await advance(0.1)
    assert await hot.lease_alive("t1")
    assert not await hot.lease_alive("t2")


async def test_renew_returns_cancel_flag(hot: HotState) -> None:
    await start(hot)
    assert await hot.renew_lease("t1", "s1", owner="worker-a", lease_seconds=10) is False
    await hot.request_cancel("t1")
    assert await hot.renew_lease("t1", "s1", owner="worker-a", lease_seconds=10) is True
    await start(hot, "t2")
    assert await hot.renew_lease("t2", "s1", owner="worker-a", lease_seconds=10) is False


async def test_renew_extends_the_session_lock_of_its_turn(clocked_factory: ClockedFactory) -> None:
    hot, advance = clocked_factory()
    await start(hot)
    assert await hot.acquire_session("s1", "t1", lease_seconds=0.5) is None
    await hot.renew_lease("t1", "s1", owner="worker-a", lease_seconds=30)
    await advance(0.6)  # past the lock's own 0.5 s
    assert await hot.acquire_session("s1", "t2", lease_seconds=10) == "t1"


# --- per-session lock ---


async def test_session_lock_is_exclusive_and_names_its_holder(hot: HotState) -> None:
    assert await hot.acquire_session("s1", "t1", lease_seconds=10) is None
    assert await hot.acquire_session("s1", "t2", lease_seconds=10) == "t1"
    assert await hot.acquire_session("s1", "t1", lease_seconds=10) is None  # the holder again: still its
    assert await hot.acquire_session("s2", "t3", lease_seconds=10) is None  # other sessions are independent


async def test_only_the_holder_releases(hot: HotState) -> None:
    assert await hot.acquire_session("s1", "t1", lease_seconds=10) is None
    await hot.release_session("s1", "t2")
    assert await hot.acquire_session("s1", "t3", lease_seconds=10) == "t1"
    await hot.release_session("s1", "t1")
    assert await hot.acquire_session("s1", "t3", lease_seconds=10) is None


async def test_expired_lock_can_be_taken_by_another_turn(clocked_factory: ClockedFactory) -> None:
    hot, advance = clocked_factory()
    assert await hot.acquire_session("s1", "t1", lease_seconds=0.3) is None
    await advance(0.3)

    async def taken() -> bool:
        return await hot.acquire_session("s1", "t2", lease_seconds=10) is None

    await eventually(taken)
    assert await hot.acquire_session("s1", "t1", lease_seconds=10) == "t2"
    await hot.release_session("s1", "t1")  # the old holder's late release must not free t2's lock
    assert await hot.acquire_session("s1", "t3", lease_seconds=10) == "t2"


async def test_begin_turn_takes_the_lock_registers_the_turn_and_appends(hot: HotState) -> None:
    created = time.time()
    meta = TurnMeta(turn_id="t1", session_id="s1", user_id="u1", created_at=created)
    assert await hot.begin_turn(meta, [("session", '{"a":1}')], owner="worker-a", lease_seconds=10) is None
    assert await hot.get_turn("t1") == TurnMeta(
        turn_id="t1", session_id="s1", user_id="u1", created_at=created, finished=False, last_seq=1
    )
    assert [(e.seq, e.type, e.data) for e in await hot.read("t1", 0, 0)] == [(1, "session", '{"a":1}')]
    assert await hot.lease_alive("t1")
    assert await hot.acquire_session("s1", "t2", lease_seconds=10) == "t1"
    assert await hot.append("t1", [("delta", "{}")]) == 2  # appends continue the log
    assert await hot.renew_lease("t1", "s1", owner="worker-a", lease_seconds=10) is False
    await hot.release_session("s1", "t1")
    assert await hot.acquire_session("s1", "t2", lease_seconds=10) is None


async def test_a_turn_that_never_released_its_session_holds_it_after_its_lock_lapsed(
    clocked_factory: ClockedFactory,
) -> None:
    hot, advance = clocked_factory()
    dead = TurnMeta(turn_id="t1", session_id="s1", user_id="u1", created_at=time.time())
    assert await hot.begin_turn(dead, [("session", "{}")], owner="worker-a", lease_seconds=0.3) is None
    await advance(0.3)  # its process died: lock and lease lapse, and nothing released the session

    async def lapsed() -> bool:
        return not await hot.lease_alive("t1")

    await eventually(lapsed)
    nxt = TurnMeta(turn_id="t2", session_id="s1", user_id="u1", created_at=time.time())
    assert await hot.begin_turn(nxt, [("session", "{}")], owner="worker-b", lease_seconds=10) == "t1"
    assert await hot.get_turn("t2") is None  # no trace of the refused turn
    assert await hot.acquire_session("s1", "h1", lease_seconds=10) is None  # plain locks (handoffs) do not wait
    await hot.release_session("s1", "h1")
    await hot.release_session("s1", "t1")  # closing the dead turn releases it
    assert await hot.begin_turn(nxt, [("session", "{}")], owner="worker-b", lease_seconds=10) is None
    await hot.release_session("s1", "t2")
    later = TurnMeta(turn_id="t3", session_id="s1", user_id="u1", created_at=time.time())
    assert await hot.begin_turn(later, [], owner="worker-b", lease_seconds=10) is None  # released: free


async def test_lapsed_turns_are_listed_until_they_release_their_session(clocked_factory: ClockedFactory) -> None:
    hot, advance = clocked_factory()
    for turn_id, lease in (("dead", 0.3), ("forgotten", 0.3), ("running", 30.0)):
        meta = TurnMeta(turn_id=turn_id, session_id=f"s-{turn_id}", user_id="u1", created_at=time.time())
        assert await hot.begin_turn(meta, [("session", "{}")], owner="worker-a", lease_seconds=lease) is None
    assert await hot.lapsed_turns(limit=10) == []
    await advance(0.3)  # the process of the first two died; the third keeps renewing

    async def lapsed() -> bool:
        return not await hot.lease_alive("dead") and not await hot.lease_alive("forgotten")

    await eventually(lapsed)
    assert await hot.renew_lease("running", "s-running", owner="worker-a", lease_seconds=30) is False
    assert sorted(await hot.lapsed_turns(limit=10)) == ["dead", "forgotten"]
    assert len(await hot.lapsed_turns(limit=1)) == 1
    await hot.forget_turns(["forgotten"])  # its session was deleted
    assert await hot.lapsed_turns(limit=10) == ["dead"]
    await hot.release_session("s-dead", "dead")  # closed (as lost)
    assert await hot.lapsed_turns(limit=10) == []


async def test_clearing_a_session_forgets_its_unended_turn(clocked_factory: ClockedFactory) -> None:
    hot, advance = clocked_factory()
    dead = TurnMeta(turn_id="t1", session_id="s1", user_id="u1", created_at=time.time())
    assert await hot.begin_turn(dead, [], owner="worker-a", lease_seconds=0.3) is None
    await advance(0.3)

    async def lapsed() -> bool:
        return not await hot.lease_alive("t1")

    await eventually(lapsed)
    await hot.clear_session("s1")  # the session was deleted: nothing of it waits for its dead turn
    nxt = TurnMeta(turn_id="t2", session_id="s1", user_id="u1", created_at=time.time())
    assert await hot.begin_turn(nxt, [], owner="worker-b", lease_seconds=10) is None


async def test_begin_turn_in_a_locked_session_leaves_no_trace(hot: HotState) -> None:
    assert await hot.acquire_session("s1", "t1", lease_seconds=10) is None
    meta = TurnMeta(turn_id="t2", session_id="s1", user_id="u1", created_at=time.time())
    assert await hot.begin_turn(meta, [("session", "{}")], owner="worker-a", lease_seconds=10) == "t1"
    assert await hot.get_turn("t2") is None
    assert not await hot.lease_alive("t2")
    assert await hot.read("t2", 0, 0) == []
    assert await hot.acquire_session("s1", "t3", lease_seconds=10) == "t1"  # the holder keeps its lock


async def test_begin_turn_is_reentrant_for_the_lock_holder_and_without_events(hot: HotState) -> None:
    assert await hot.acquire_session("s1", "t1", lease_seconds=10) is None
    meta = TurnMeta(turn_id="t1", session_id="s1", user_id="u1", created_at=time.time())
    assert await hot.begin_turn(meta, [], owner="worker-a", lease_seconds=10) is None
    got = await hot.get_turn("t1")
    assert got is not None and got.last_seq == 0 and not got.finished
    assert await hot.append("t1", [("session", "{}"), ("done", "{}")], final=True) == 2


# --- context cache ---


async def test_context_set_get_push_and_trim(hot: HotState) -> None:
    assert await hot.get_context("s1") is None
    await hot.set_context("s1", [], max_messages=4, ttl=60)
    assert await hot.get_context("s1") == []
    await hot.push_context("s1", [M("user", "问1"), M("assistant", "答1")], max_messages=4, ttl=60)
    await hot.push_context("s1", [M("user", "q2"), M("assistant", "a2"), M("user", "q3")], max_messages=4, ttl=60)
    assert await hot.get_context("s1") == [
        M("assistant", "答1"),
        M("user", "q2"),
        M("assistant", "a2"),
        M("user", "q3"),
    ]
    await hot.set_context("s1", [M("user", str(i)) for i in range(5)], max_messages=3, ttl=60)
    assert await hot.get_context("s1") == [M("user", "2"), M("user", "3"), M("user", "4")]
    await hot.push_context("s1", [M("user", "x")], max_messages=0, ttl=60)
    assert await hot.get_context("s1") == []


async def test_window_keeps_its_owner_through_pushes_and_trims(hot: HotState) -> None:
    assert await hot.get_window("s1") is None
    await hot.set_context("s1", [M("user", "q1")], max_messages=2, ttl=60, owner="alice")
    await hot.push_context("s1", [M("assistant", "a1"), M("user", "q2"), M("assistant", "a2")], max_messages=2, ttl=60)
    window = await hot.get_window("s1")
    assert window is not None and window.owner == "alice"
    assert window.messages == [M("user", "q2"), M("assistant", "a2")]
    await hot.set_context("s1", [], max_messages=2, ttl=60)  # cached without an owner: no fast path for anyone
    window = await hot.get_window("s1")
    assert window is not None and (window.owner, window.messages) == ("", [])


async def test_push_without_cached_window_caches_nothing(hot: HotState) -> None:
    await hot.push_context("s1", [M("user", "q"), M("assistant", "a")], max_messages=10, ttl=60)
    assert await hot.get_context("s1") is None


async def test_context_expires_after_ttl(clocked_factory: ClockedFactory) -> None:
    hot, advance = clocked_factory()
    await hot.set_context("s1", [M("user", "q")], max_messages=10, ttl=1)
    assert await hot.get_context("s1") == [M("user", "q")]
    await advance(1.0)

    async def expired() -> bool:
        return await hot.get_context("s1") is None

    await eventually(expired)


async def test_push_refreshes_ttl(clocked_factory: ClockedFactory) -> None:
    hot, advance = clocked_factory()
    await hot.set_context("s1", [M("user", "q")], max_messages=10, ttl=1)
    await hot.push_context("s1", [M("assistant", "a")], max_messages=10, ttl=60)
    await advance(1.1)  # past the first ttl (whole seconds in Redis)
    assert await hot.get_context("s1") == [M("user", "q"), M("assistant", "a")]


async def test_clear_session_forgets_context_and_lock(hot: HotState) -> None:
    await hot.set_context("s1", [M("user", "q")], max_messages=10, ttl=60)
    assert await hot.acquire_session("s1", "t1", lease_seconds=60) is None
    await hot.clear_session("s1")
    assert await hot.get_context("s1") is None
    assert await hot.acquire_session("s1", "t2", lease_seconds=60) is None


async def test_ping(hot: HotState) -> None:
    await hot.ping()


# --- memory only ---


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_sweep_bounds_growth() -> None:
    clock = FakeClock()
    hot = MemoryHotState(turn_log_ttl=60, sweep_interval=10, clock=clock)
    for i in range(100):
        await start(hot, f"t{i}", session_id=f"s{i}", lease=5)
        await hot.append(f"t{i}", [("delta", "{}"), ("done", "{}")], final=True)
        await hot.acquire_session(f"s{i}", f"t{i}", lease_seconds=5)
        await hot.request_cancel(f"t{i}")
        await hot.set_context(f"s{i}", [M("user", "q")], max_messages=5, ttl=30)
    clock.now += 61
    await start(hot, "fresh")  # any write may sweep
    assert await hot.get_turn("t0") is None
    assert set(hot._turns) == {"fresh"}
    assert set(hot._leases) == {"fresh"}
    assert not hot._cancels and not hot._locks and not hot._contexts


async def test_memory_lease_uses_monotonic_clock() -> None:
    clock = FakeClock()
    hot = MemoryHotState(clock=clock)
    await start(hot, lease=5)
    clock.now += 4
    assert await hot.renew_lease("t1", "s1", owner="worker-a", lease_seconds=5) is False
    clock.now += 4
    assert await hot.lease_alive("t1")
    clock.now += 2
    assert not await hot.lease_alive("t1")
