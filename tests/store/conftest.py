"""Fixtures for the store tests.

Real services come from the root conftest: ``redis_url`` and ``postgres_db`` (a throwaway database per test)
skip when the service is unreachable and fail under ``CI=true``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from kefu.store.base import HotState
from kefu.store.memory import MemoryHotState
from kefu.store.migrate import upgrade_database
from kefu.store.redis import RedisHotState
from kefu.store.sql import SqlTranscriptStore, create_engine_for

HotStateFactory = Callable[..., HotState]


@pytest.fixture
def postgres_url(postgres_db: str) -> str:
    """An empty PostgreSQL database of this test's own (so ``alembic_version`` is never shared)."""
    return postgres_db


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file in the test's tmp dir, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'db' / 'kefu.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def transcript(database_url: str) -> AsyncIterator[SqlTranscriptStore]:
    """A migrated, empty :class:`SqlTranscriptStore` (on every database of ``database_url``)."""
    await upgrade_database(database_url)
    store = SqlTranscriptStore(create_engine_for(database_url))
    yield store
    await store.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def hot_factory(request: pytest.FixtureRequest) -> AsyncIterator[HotStateFactory]:
    """Makes HotState instances of one backend; Redis ones share a unique key prefix, deleted afterwards."""
    backend: str = request.param
    url: str = request.getfixturevalue("redis_url") if backend == "redis" else ""
    prefix = f"kefutest:{uuid.uuid4().hex[:12]}"
    created: list[HotState] = []

    def make(**kwargs: Any) -> HotState:
        state: HotState = (
            MemoryHotState(**kwargs) if backend == "memory" else RedisHotState.from_url(url, prefix, **kwargs)
        )
        created.append(state)
        return state

    yield make
    for state in created:
        await state.aclose()
    if backend == "redis":
        await delete_prefix(url, prefix)


async def delete_prefix(url: str, prefix: str) -> None:
    """Delete every Redis key under ``prefix``."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def hot(hot_factory: HotStateFactory) -> HotState:
    return hot_factory()
