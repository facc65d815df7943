"""FlowStates: a session's running flow in SQL with a hot copy (memory or Redis), and handoff requests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio

from kefu.store.desk import DeskStore, HandoffRecord, SessionTxn
from kefu.store.flowstate import FlowStates
from kefu.store.migrate import upgrade_database
from kefu.store.sql import SqlTranscriptStore, create_engine_for
from tests.store.conftest import delete_prefix


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def hot_redis(request: pytest.FixtureRequest) -> AsyncIterator[tuple[redis.asyncio.Redis | None, str]]:
    """No Redis (in-process hot copy), or a real Redis client with a unique key prefix."""
    prefix = f"kefutest:{uuid.uuid4().hex[:12]}"
    if request.param == "memory":
        yield None, prefix
        return
    url: str = request.getfixturevalue("redis_url")
    client = redis.asyncio.Redis.from_url(url)
    yield client, prefix
    await client.aclose()
    await delete_prefix(url, prefix)


@pytest.fixture
async def setup(
    database_url: str, hot_redis: tuple[redis.asyncio.Redis | None, str]
) -> AsyncIterator[tuple[SqlTranscriptStore, str, redis.asyncio.Redis | None, str]]:
    await upgrade_database(database_url)
    store = SqlTranscriptStore(create_engine_for(database_url))
    yield store, database_url, *hot_redis
    await store.aclose()


def _states(database_url: str, client: redis.asyncio.Redis | None, prefix: str) -> FlowStates:
    return FlowStates(create_engine_for(database_url), redis=client, prefix=prefix, ttl=60)


async def test_flowstate_round_trip_survives_a_new_process(setup: tuple) -> None:  # type: ignore[type-arg]
    store, url, client, prefix = setup
    await store.create_session("s_one", "alice", datetime.now(UTC))
    states = _states(url, client, prefix)
    assert await states.get("s_one") is None
    snapshot = {"flow": "order_status", "step": 2, "slots": {"order_id": "DD20261105002"}}
    await states.put("s_one", "alice", "order_status", snapshot)
    assert await states.get("s_one") == snapshot
    await states.aclose()
    # A restarted process has an empty in-process copy (and, here, a Redis copy it may not trust blindly).
    fresh = _states(url, None, prefix + "x")
    assert await fresh.get("s_one") == snapshot
    snapshot["step"] = 3
    await fresh.put("s_one", "alice", "order_status", snapshot)
    assert (await fresh.get("s_one") or {})["step"] == 3
    await fresh.clear("s_one")
    assert await fresh.get("s_one") is None
    await fresh.aclose()
    again = _states(url, None, prefix + "y")
    assert await again.get("s_one") is None
    await again.aclose()


async def test_deleting_the_session_deletes_its_flow_and_handoffs(setup: tuple) -> None:  # type: ignore[type-arg]
    store, url, client, prefix = setup
    await store.create_session("s_two", "bob", datetime.now(UTC))
    states = _states(url, client, prefix)
    await states.put("s_two", "bob", "return_request", {"step": 1})
    desk = DeskStore(create_engine_for(url))

    async def ask(txn: SessionTxn) -> HandoffRecord:
        return await desk.new_handoff(
            txn,
            turn_id="t_1",
            flow="human",
            reason="asked",
            reason_code="shopper_asked",
            summary={"order_id": "X1"},
            context={},
        )

    record, events = await desk.in_session("s_two", ask)
    assert record.id.startswith("ho_") and record.status == "queued" and events == []
    listed = await desk.handoffs(statuses=("queued",))
    assert [(h.id, h.summary, h.flow) for h in listed] == [(record.id, {"order_id": "X1"}, "human")]
    assert await store.delete_session("s_two")
    assert await desk.handoffs() == []
    await desk.aclose()
    await states.clear("s_two")  # what ChatService does on delete: the hot copy goes too
    cold = _states(url, None, prefix + "z")
    assert await cold.get("s_two") is None
    await cold.aclose()
    await states.aclose()
