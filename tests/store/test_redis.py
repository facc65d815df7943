"""RedisHotState specifics: readers in another process (XREAD), the producer's mirror, key layout, scripts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from redis.crc import key_slot

from kefu.store.base import ContextMessage, TurnMeta
from kefu.store.redis import RedisHotState
from tests.store import eventually
from tests.store.conftest import delete_prefix

pytestmark = pytest.mark.redis


class Pair:
    """Two RedisHotState instances on one prefix: ``producer`` runs turns, ``other`` plays another process."""

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self.producer = RedisHotState.from_url(url, prefix, mirror_grace=0.2)
        self.other = RedisHotState.from_url(url, prefix)
        self.raw = redis.asyncio.Redis.from_url(url)

    async def aclose(self) -> None:
        await self.producer.aclose()
        await self.other.aclose()
        await self.raw.aclose()


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[Pair]:
    prefix = f"kefutest:{uuid.uuid4().hex[:12]}"
    states = Pair(redis_url, prefix)
    yield states
    await states.aclose()
    await delete_prefix(redis_url, prefix)


async def start(state: RedisHotState, turn_id: str = "t1") -> None:
    meta = TurnMeta(turn_id=turn_id, session_id="s1", user_id="u1", created_at=time.time())
    await state.create_turn(meta, owner="worker-a", lease_seconds=10)


async def test_reader_in_another_process_follows_by_xread(pair: Pair) -> None:
    await start(pair.producer)
    await pair.producer.append("t1", [("session", "{}"), ("delta", '{"text":"a"}')])
    assert [e.seq for e in await pair.other.read("t1", 0, 0)] == [1, 2]
    assert [e.seq for e in await pair.other.read("t1", 1, 30)] == [2]  # resume after a seq
    assert await pair.other.read("t1", 2, 0.3) == []  # BLOCK times out

    reader = asyncio.create_task(pair.other.read("t1", 2, 30))
    await asyncio.sleep(0.2)
    assert not reader.done()
    await pair.producer.append("t1", [("delta", '{"text":"b"}'), ("done", "{}")], final=True)
    events = await asyncio.wait_for(reader, 10)
    assert [(e.seq, e.type, e.data) for e in events] == [(3, "delta", '{"text":"b"}'), (4, "done", "{}")]
    meta = await pair.other.get_turn("t1")
    assert meta is not None and meta.finished and meta.last_seq == 4


async def test_other_process_can_close_a_lost_turn(pair: Pair) -> None:
    await start(pair.producer)
    await pair.producer.append("t1", [("delta", "{}")])
    assert await pair.other.append("t1", [("error", '{"code":"turn_lost"}')], final=True) == 2
    # The producer, if it wakes up again, is refused and its in-process readers see the same log as Redis.
    assert await pair.producer.append("t1", [("delta", "{}")]) is None
    assert [e.type for e in await pair.producer.read("t1", 0, 0)] == ["delta", "error"]


async def test_producer_serves_its_own_readers_from_the_mirror(pair: Pair) -> None:
    await start(pair.producer)
    await pair.producer.append("t1", [("a", "1"), ("b", "2")])
    await pair.raw.delete(f"{pair.prefix}:turn:{{t1}}:log")  # only the mirror has the events now
    assert [e.seq for e in await pair.producer.read("t1", 0, 0)] == [1, 2]
    assert await pair.other.read("t1", 0, 0) == []


async def test_mirror_is_dropped_after_the_turn_finishes(pair: Pair) -> None:
    await start(pair.producer)
    await pair.producer.append("t1", [("a", "1"), ("done", "{}")], final=True)
    assert [e.seq for e in await pair.producer.read("t1", 0, 0)] == [1, 2]
    await pair.raw.delete(f"{pair.prefix}:turn:{{t1}}:log")

    async def served_from_redis() -> bool:
        return await pair.producer.read("t1", 0, 0) == []

    await eventually(served_from_redis)


async def test_keys_of_a_turn_and_of_a_session_share_one_slot(pair: Pair) -> None:
    await start(pair.producer)
    await pair.producer.append("t1", [("a", "1")])
    await pair.producer.request_cancel("t1")
    await pair.producer.acquire_session("s1", "t1", lease_seconds=10)
    await pair.producer.set_context("s1", [ContextMessage("user", "q")], max_messages=5, ttl=60)
    keys = sorted([k.decode() async for k in pair.raw.scan_iter(match=f"{pair.prefix}:*")])
    assert keys == sorted(
        [f"{pair.prefix}:turn:{{t1}}:{part}" for part in ("meta", "log", "lease", "cancel")]
        + [f"{pair.prefix}:session:{{s1}}:{part}" for part in ("lock", "ctx")]
    )
    assert len({key_slot(k.encode()) for k in keys if ":turn:" in k}) == 1
    assert len({key_slot(k.encode()) for k in keys if ":session:" in k}) == 1


async def test_turn_keys_carry_the_log_ttl(redis_url: str) -> None:
    prefix = f"kefutest:{uuid.uuid4().hex[:12]}"
    state = RedisHotState.from_url(redis_url, prefix, turn_log_ttl=120)
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        await start(state)
        await state.append("t1", [("a", "1")])
        for part in ("meta", "log"):
            ttl = await raw.pttl(f"{prefix}:turn:{{t1}}:{part}")
            assert 0 < ttl <= 120_000
    finally:
        await state.aclose()
        await raw.aclose()
        await delete_prefix(redis_url, prefix)


async def test_retried_append_is_applied_once(pair: Pair) -> None:
    await start(pair.producer)
    keys = [f"{pair.prefix}:turn:{{t1}}:meta", f"{pair.prefix}:turn:{{t1}}:log"]
    args: list[str | int] = [60_000, 0, "token-1", "delta", '{"text":"a"}']
    # What redis-py does when a reply is lost and it sends the same EVALSHA again.
    assert await pair.producer._append(keys=keys, args=args) == 1
    assert await pair.producer._append(keys=keys, args=args) == 1
    assert await pair.raw.xlen(keys[1]) == 1
    assert await pair.producer._append(keys=keys, args=[60_000, 0, "token-2", "delta", "{}"]) == 2


async def test_scripts_survive_a_script_cache_flush(pair: Pair) -> None:
    await start(pair.producer)
    await pair.producer.acquire_session("s1", "t1", lease_seconds=10)
    await pair.raw.script_flush()
    await pair.other.request_cancel("t1")
    assert await pair.producer.renew_lease("t1", "s1", owner="worker-a", lease_seconds=10) is True
    assert await pair.producer.append("t1", [("a", "1")]) == 1
    assert await pair.other.acquire_session("s1", "t2", lease_seconds=10) == "t1"


async def test_blocked_readers_do_not_starve_commands(pair: Pair, redis_url: str) -> None:
    await start(pair.producer)
    # A command pool of 2 connections: 50 blocked XREADs on it would leave none for PING.
    small = redis.asyncio.Redis.from_pool(
        redis.asyncio.BlockingConnectionPool.from_url(redis_url, max_connections=2, timeout=2)
    )
    reader_state = RedisHotState(small, pair.prefix)
    try:
        readers = [asyncio.create_task(reader_state.read("t1", 0, 30)) for _ in range(50)]
        await asyncio.sleep(0.3)
        await asyncio.wait_for(reader_state.ping(), 5)
        assert await reader_state.lease_alive("t1")
        await pair.producer.append("t1", [("a", "1")])
        results = await asyncio.wait_for(asyncio.gather(*readers), 15)
        assert all([e.seq for e in events] == [1] for events in results)
    finally:
        await reader_state.aclose()
        await small.aclose()


def test_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ValueError):
        RedisHotState(redis.asyncio.Redis(), prefix="bad{prefix}")


async def test_begin_turn_mirrors_its_events_and_survives_a_script_flush(pair: Pair) -> None:
    await pair.raw.script_flush()  # e.g. a Redis restart: the scripts are loaded again and the call retried
    meta = TurnMeta(turn_id="t1", session_id="s1", user_id="u1", created_at=time.time())
    assert await pair.producer.begin_turn(meta, [("session", "{}")], owner="worker-a", lease_seconds=10) is None
    await pair.producer.append("t1", [("delta", '{"text":"a"}')])
    assert [e.seq for e in await pair.other.read("t1", 0, 0)] == [1, 2]  # in Redis for other processes
    await pair.raw.delete(f"{pair.prefix}:turn:{{t1}}:log")
    assert [e.seq for e in await pair.producer.read("t1", 0, 0)] == [1, 2]  # and mirrored for its own readers
    keys = sorted([k.decode() async for k in pair.raw.scan_iter(match=f"{pair.prefix}:*")])
    assert keys == sorted(
        [f"{pair.prefix}:turn:{{t1}}:{p}" for p in ("meta", "lease")]
        + [f"{pair.prefix}:session:{{s1}}:{p}" for p in ("lock", "turn")]
        + [f"{pair.prefix}:running-turns"]
    )


async def test_redis_busy_pool_makes_commands_wait_instead_of_failing(redis_url: str) -> None:
    # Three times more concurrent turn starts than connections: each must wait for a connection, not fail with
    # MaxConnectionsError (which used to end turns mid-way under a burst).
    prefix = f"kefu-test-{uuid.uuid4().hex[:8]}"
    state = RedisHotState.from_url(redis_url, prefix, max_connections=4, pool_timeout=10)
    try:
        metas = [
            TurnMeta(turn_id=f"t_{i}", session_id=f"s_{i}", user_id="u", created_at=time.time()) for i in range(12)
        ]
        holders = await asyncio.gather(
            *(state.begin_turn(m, [("session", "{}")], owner="me", lease_seconds=10) for m in metas)
        )
        assert holders == [None] * 12
        for meta in metas:
            assert [e.type for e in await state.read(meta.turn_id, 0, 0)] == ["session"]
    finally:
        await state.aclose()
        await delete_prefix(redis_url, prefix)


async def test_a_refused_turn_is_not_listed_as_running(pair: Pair) -> None:
    assert await pair.producer.acquire_session("s1", "t1", lease_seconds=10) is None
    meta = TurnMeta(turn_id="t2", session_id="s1", user_id="u1", created_at=time.time())
    assert await pair.producer.begin_turn(meta, [("session", "{}")], owner="worker-a", lease_seconds=10) == "t1"
    assert await pair.raw.zrange(f"{pair.prefix}:running-turns", 0, -1) == []
