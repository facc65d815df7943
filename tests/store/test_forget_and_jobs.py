"""Hot state for erasure and background jobs, on MemoryHotState and (marked ``redis``) RedisHotState: forgetting
turns, job locks; and the flow hot copy's ``forget``."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis.asyncio

from kefu.store.base import HotState, TurnMeta
from kefu.store.flowstate import FlowStates
from kefu.store.migrate import upgrade_database
from kefu.store.redis import RedisHotState
from kefu.store.sql import create_engine_for
from tests.store.conftest import HotStateFactory, delete_prefix


async def begin(hot: HotState, turn_id: str, session_id: str = "s1") -> None:
    meta = TurnMeta(turn_id=turn_id, session_id=session_id, user_id="u1", created_at=time.time())
    assert await hot.begin_turn(meta, [("session", "{}")], owner="w", lease_seconds=10) is None


async def test_forgotten_turns_cannot_be_read_or_appended(hot: HotState) -> None:
    await begin(hot, "t1")
    await hot.append("t1", [("delta", '{"text":"13800138000"}'), ("done", "{}")], final=True)
    await hot.release_session("s1", "t1")
    await begin(hot, "t2")  # still running
    await hot.request_cancel("t2")
    await begin(hot, "t3", session_id="s2")  # another conversation: kept

    assert await hot.forget_turns(["t1", "t2", "t_never"]) == 2
    assert await hot.get_turn("t1") is None and await hot.get_turn("t2") is None
    assert await hot.read("t1", 0, 0) == []
    assert await hot.append("t2", [("delta", "{}")]) is None  # the running turn's log is over
    assert not await hot.lease_alive("t2")
    assert not await hot.renew_lease("t2", "s1", owner="w", lease_seconds=10)  # its cancel flag went too
    assert (await hot.get_turn("t3")) is not None
    assert await hot.forget_turns([]) == 0


async def test_a_reader_waiting_on_a_forgotten_turn_stops_waiting(hot: HotState) -> None:
    await begin(hot, "t1")
    reader = asyncio.create_task(hot.read("t1", 1, 2.0))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await hot.forget_turns(["t1"])
    await hot.append("t1", [("delta", "{}")])  # refused: nothing reaches the reader
    assert await reader == []
    assert time.monotonic() - started < 2.5


async def test_a_job_lock_has_one_holder_who_can_extend_and_release_it(hot_factory: HotStateFactory) -> None:
    replica_a = hot_factory()
    # Two processes share Redis; in memory there is only one process.
    replica_b = hot_factory() if isinstance(replica_a, RedisHotState) else replica_a
    assert await replica_a.acquire_job("sweep", "a", lease_seconds=10)
    assert not await replica_b.acquire_job("sweep", "b", lease_seconds=10)
    assert await replica_a.acquire_job("sweep", "a", lease_seconds=10)  # extends
    assert await replica_b.acquire_job("other-job", "b", lease_seconds=10)  # locks are per job
    await replica_b.release_job("sweep", "b")  # not the holder: nothing happens
    assert not await replica_b.acquire_job("sweep", "b", lease_seconds=10)
    await replica_a.release_job("sweep", "a")
    assert await replica_b.acquire_job("sweep", "b", lease_seconds=10)


async def test_a_job_lock_of_a_holder_that_died_expires(hot: HotState) -> None:
    assert await hot.acquire_job("sweep", "dead", lease_seconds=0.05)
    await asyncio.sleep(0.1)
    assert await hot.acquire_job("sweep", "alive", lease_seconds=10)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def flow_redis(request: pytest.FixtureRequest) -> tuple[redis.asyncio.Redis | None, str]:
    prefix = f"kefutest:{uuid.uuid4().hex[:12]}"
    if request.param == "memory":
        return None, prefix
    url: str = request.getfixturevalue("redis_url")
    client = redis.asyncio.Redis.from_url(url)
    request.addfinalizer(lambda: asyncio.run(delete_prefix(url, prefix)))
    return client, prefix


async def test_flow_forget_drops_the_hot_copy_key_itself(
    database_url: str, flow_redis: tuple[redis.asyncio.Redis | None, str]
) -> None:
    client, prefix = flow_redis
    await upgrade_database(database_url)
    engine = create_engine_for(database_url)
    states = FlowStates(engine, redis=client, prefix=prefix, ttl=60)
    try:
        await states.clear("s_gone")  # leaves a "no flow" marker under a key naming the session
        if client is not None:
            assert await client.exists(f"{prefix}:flow:{{s_gone}}")
        else:
            assert "s_gone" in states._memory
        await states.forget("s_gone")
        if client is not None:
            assert [k async for k in client.scan_iter(f"{prefix}:*")] == []
        else:
            assert "s_gone" not in states._memory
    finally:
        await engine.dispose()
        if client is not None:
            await client.aclose()
