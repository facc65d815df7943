"""The retention sweep on its own: one process at a time, batches, conversations that came back to life."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from kefu.privacy.retention import JOB, Retention, RetentionPolicy
from kefu.store.base import HotState
from kefu.store.flowstate import FlowStates
from kefu.store.migrate import upgrade_database
from kefu.store.privacy import PrivacyStore
from kefu.store.redis import RedisHotState
from kefu.store.sql import SqlTranscriptStore, create_engine_for
from tests.store.conftest import HotStateFactory

T0 = datetime(2026, 1, 1, tzinfo=UTC)


Parts = tuple[SqlTranscriptStore, Retention, HotState]
POLICY = RetentionPolicy(anonymise_after=timedelta(hours=72), delete_after=timedelta(days=180))


def retention(store: PrivacyStore, hot: HotState, engine: AsyncEngine) -> Retention:
    return Retention(store, policy=POLICY, turns=hot, context=hot, flows=FlowStates(engine), locks=hot)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade_database(database_url)
    engine = create_engine_for(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def parts(engine: AsyncEngine, hot_factory: HotStateFactory) -> AsyncIterator[Parts]:
    transcripts = SqlTranscriptStore(engine)
    hot = hot_factory()
    yield transcripts, retention(PrivacyStore(engine), hot, engine), hot


async def test_anonymise_then_delete_by_age(parts: Parts) -> None:
    store, sweeper, _ = parts
    await store.start_session("s_old", "u1", "t_1", "电话 13800138000", T0)
    await store.start_session("s_new", "u1", "t_2", "电话 13900139000", T0 + timedelta(days=10))
    result = await sweeper.sweep(now=T0 + timedelta(days=5))
    assert result is not None and result.anonymised == 1 and result.deleted == 0
    assert (await store.list_messages("s_old"))[0].content == "电话 [手机号]"
    assert (await store.list_messages("s_new"))[0].content == "电话 13900139000"
    again = await sweeper.sweep(now=T0 + timedelta(days=5))
    assert again is not None and again.anonymised == 0  # done once, not every sweep
    # Active again after anonymisation: its new messages are anonymised in turn, later.
    await store.add_user_message("s_old", "t_3", "新号码 13700137000", T0 + timedelta(days=6), reset_context=False)
    later = await sweeper.sweep(now=T0 + timedelta(days=10))
    assert later is not None and later.anonymised == 1
    assert [m.content for m in await store.list_messages("s_old")] == ["电话 [手机号]", "新号码 [手机号]"]
    gone = await sweeper.sweep(now=T0 + timedelta(days=187))
    assert gone is not None and gone.deleted == 1
    assert await store.get_session("s_old") is None and await store.get_session("s_new") is not None


async def test_only_one_sweep_at_a_time(parts: Parts) -> None:
    store, sweeper, hot = parts
    await store.start_session("s_old", "u1", "t_1", "13800138000", T0)
    assert await hot.acquire_job(JOB, "another-replica", lease_seconds=60)
    assert await sweeper.sweep(now=T0 + timedelta(days=5)) is None
    assert (await store.list_messages("s_old"))[0].content == "13800138000"
    await hot.release_job(JOB, "another-replica")
    assert (await sweeper.sweep(now=T0 + timedelta(days=5))) is not None


async def test_two_replicas_sweeping_at_once_do_not_both_run(engine: AsyncEngine, hot_factory: HotStateFactory) -> None:
    hot_a = hot_factory()
    hot_b = hot_factory() if isinstance(hot_a, RedisHotState) else hot_a  # replicas share Redis, or one process
    transcripts = SqlTranscriptStore(engine)
    await transcripts.start_session("s_old", "u1", "t_1", "13800138000", T0)
    inside, go_on = asyncio.Event(), asyncio.Event()

    class HeldStore(PrivacyStore):
        """Replica A's store: its sweep stops inside, holding the lock, until told to go on."""

        async def idle_sessions(self, *args: Any, **kwargs: Any) -> list[str]:
            inside.set()
            await go_on.wait()
            return await super().idle_sessions(*args, **kwargs)

    replica_a = retention(HeldStore(engine), hot_a, engine)
    replica_b = retention(PrivacyStore(engine), hot_b, engine)
    now = T0 + timedelta(days=5)
    first = asyncio.create_task(replica_a.sweep(now=now))
    await asyncio.wait_for(inside.wait(), 10)
    assert await replica_b.sweep(now=now) is None  # A is sweeping: B does nothing
    go_on.set()
    done = await first
    assert done is not None and done.anonymised == 1
    later = await replica_b.sweep(now=now)  # the lock was released
    assert later is not None and later.anonymised == 0
    audit = await PrivacyStore(engine).audit_log()
    assert [(r.action, r.details["anonymised"]) for r in audit] == [("sweep", 0), ("sweep", 1)]


async def test_many_sessions_go_in_batches(parts: Parts) -> None:
    store, sweeper, _ = parts
    for i in range(230):
        await store.start_session(f"s_{i:03d}", "u", f"t_{i}", f"卡 6222021234567890128 #{i}", T0)
    result = await sweeper.sweep(now=T0 + timedelta(days=4))
    assert result is not None and result.anonymised == 230 and result.rows["messages"] == 230
