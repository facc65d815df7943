"""Circuit breakers: error-ratio trips, 429 trips, half-open probes, and state shared through real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from kefu.errors import UpstreamStatusError
from kefu.llm.resilience import (
    AllUpstreamsUnavailable,
    BreakerConfig,
    BreakerStore,
    MemoryBreakerStore,
    RedisBreakerStore,
    ResilientModel,
    RetryPolicy,
    State,
    Verdict,
)
from kefu.obs.metrics import Metrics
from tests.llm.conftest import Upstream
from tests.llm.test_resilience import Chain, collect, finish_of, make_chain, requests, sample

__all__ = ["make_chain"]  # the fixture, re-exported for this module

NO_RETRY = RetryPolicy(max_retries=0, turn_deadline=5.0)
TIGHT = BreakerConfig(window=10.0, min_volume=4, error_ratio=0.5, open_seconds=0.4, half_open_probes=1)


@pytest.fixture
async def redis_store_factory(redis_url: str) -> AsyncIterator[Callable[..., RedisBreakerStore]]:
    """RedisBreakerStores on one unique prefix (two of them act as two replicas); keys deleted afterwards."""
    prefix = f"kefu-test-{uuid.uuid4().hex[:10]}"
    stores: list[RedisBreakerStore] = []

    def make(cache_ttl: float = 1.0) -> RedisBreakerStore:
        store = RedisBreakerStore.from_url(redis_url, prefix, cache_ttl=cache_ttl)
        stores.append(store)
        return store

    yield make
    await _drop_prefix(redis_url, prefix)
    for store in stores:
        await store.aclose()


@pytest.fixture(params=["memory", "redis"])
async def any_store(request: pytest.FixtureRequest) -> AsyncIterator[BreakerStore]:
    """Each breaker store implementation (Redis on a unique prefix)."""
    if request.param == "memory":
        yield MemoryBreakerStore()
        return
    redis_url: str = request.getfixturevalue("redis_url")
    prefix = f"kefu-test-{uuid.uuid4().hex[:10]}"
    store = RedisBreakerStore.from_url(redis_url, prefix)
    yield store
    await _drop_prefix(redis_url, prefix)
    await store.aclose()


async def _drop_prefix(redis_url: str, prefix: str) -> None:
    cleanup = Redis.from_url(redis_url)
    keys = [key async for key in cleanup.scan_iter(match=f"{prefix}:*")]
    if keys:
        await cleanup.delete(*keys)
    await cleanup.aclose()


async def test_breaker_503_burst_opens_then_half_open_probe_closes(upstream: Upstream, make_chain: Chain) -> None:
    upstream.script(*[{"fail": "503"}] * 4)
    metrics = Metrics()
    chain = make_chain(upstream, policy=NO_RETRY, breaker=TIGHT, metrics=metrics)
    for _ in range(4):
        with pytest.raises(UpstreamStatusError):
            await collect(chain)
    assert sample(metrics, "kefu_upstream_breaker_state", upstream=chain.name) == State.OPEN
    start = time.monotonic()
    with pytest.raises(AllUpstreamsUnavailable):
        await collect(chain)
    assert time.monotonic() - start < 0.5
    assert requests(upstream) == 4  # the open breaker kept the fifth turn away from the upstream
    await asyncio.sleep(0.45)
    assert finish_of(await collect(chain)).model == "primary-chat"  # the half-open probe
    assert sample(metrics, "kefu_upstream_breaker_state", upstream=chain.name) == State.CLOSED
    assert finish_of(await collect(chain)).model == "primary-chat"
    assert requests(upstream) == 6


async def test_breaker_failed_probe_reopens(upstream: Upstream, make_chain: Chain) -> None:
    upstream.script(*[{"fail": "500"}] * 5)
    chain = make_chain(upstream, policy=NO_RETRY, breaker=TIGHT)
    for _ in range(4):
        with pytest.raises(UpstreamStatusError):
            await collect(chain)
    await asyncio.sleep(0.45)
    with pytest.raises(UpstreamStatusError):
        await collect(chain)  # the probe fails
    with pytest.raises(AllUpstreamsUnavailable):
        await collect(chain)
    assert requests(upstream) == 5


async def test_breaker_below_min_volume_stays_closed(upstream: Upstream, make_chain: Chain) -> None:
    upstream.script(*[{"fail": "503"}] * 3)
    chain = make_chain(upstream, policy=NO_RETRY, breaker=TIGHT)
    for _ in range(3):
        with pytest.raises(UpstreamStatusError):
            await collect(chain)
    assert finish_of(await collect(chain)).model == "primary-chat"


async def test_breaker_429_with_retry_after_opens_at_once(upstream: Upstream, make_chain: Chain) -> None:
    upstream.script({"fail": "429", "retry_after": 0.5})
    chain = make_chain(upstream, policy=NO_RETRY)
    with pytest.raises(UpstreamStatusError):
        await collect(chain)
    with pytest.raises(AllUpstreamsUnavailable):
        await collect(chain)
    await asyncio.sleep(0.55)
    assert finish_of(await collect(chain)).model == "primary-chat"
    assert requests(upstream) == 2


async def test_breaker_store_half_open_admits_limited_probes(any_store: BreakerStore) -> None:
    store = any_store
    key = "http://up|model"
    assert (await store.admit(key, max_probes=2, probe_lease=5)).verdict is Verdict.ALLOWED
    opened = await store.trip(key, 0.2)
    assert opened.state is State.OPEN and 0.1 < opened.retry_in <= 0.2 + 1e-6  # clock arithmetic in floats
    denied = await store.admit(key, max_probes=2, probe_lease=5)
    assert denied.verdict is Verdict.DENIED and denied.state is State.OPEN
    await asyncio.sleep(0.25)
    verdicts = [(await store.admit(key, max_probes=2, probe_lease=5)).verdict for _ in range(3)]
    assert verdicts == [Verdict.PROBE, Verdict.PROBE, Verdict.DENIED]
    await store.release_probe(key)
    assert (await store.admit(key, max_probes=2, probe_lease=5)).verdict is Verdict.PROBE
    await store.reset(key)
    assert (await store.admit(key, max_probes=2, probe_lease=5)).verdict is Verdict.ALLOWED


async def test_breaker_store_trip_keeps_the_later_end(any_store: BreakerStore) -> None:
    store = any_store
    await store.trip("k", 5.0)
    shorter = await store.trip("k", 0.1)
    assert shorter.retry_in > 4.0


async def test_breaker_shared_through_redis_between_replicas(
    upstream: Upstream, make_chain: Chain, redis_store_factory: Callable[..., RedisBreakerStore]
) -> None:
    upstream.script({}, {"fail": "429", "retry_after": 1.0})
    replica_a = make_chain(upstream, policy=NO_RETRY, store=redis_store_factory(cache_ttl=0.2))
    replica_b = make_chain(upstream, policy=NO_RETRY, store=redis_store_factory(cache_ttl=0.2))
    assert finish_of(await collect(replica_b)).model == "primary-chat"  # B has seen the breaker closed
    with pytest.raises(UpstreamStatusError):
        await collect(replica_a)  # A gets the 429 and opens the breaker for 1 s
    await asyncio.sleep(0.25)  # B's cached "closed" expires
    start = time.monotonic()
    with pytest.raises(AllUpstreamsUnavailable):
        await collect(replica_b)
    assert time.monotonic() - start < 0.5
    assert requests(upstream) == 2  # B never reached the upstream while A's breaker was open
    await asyncio.sleep(0.8)
    assert finish_of(await collect(replica_b)).model == "primary-chat"  # B's probe closes it for both
    await asyncio.sleep(0.25)
    assert finish_of(await collect(replica_a)).model == "primary-chat"


async def test_breaker_redis_outage_falls_back_to_memory() -> None:
    from tests.support import free_port

    store = RedisBreakerStore.from_url(f"redis://127.0.0.1:{free_port()}/0", "kefu-test")
    try:
        start = time.monotonic()
        assert (await store.admit("k", max_probes=1, probe_lease=5)).allowed
        await store.trip("k", 5.0)
        assert not (await store.admit("k", max_probes=1, probe_lease=5)).allowed
        assert time.monotonic() - start < 3.0
    finally:
        await store.aclose()


async def test_breaker_resilient_model_uses_given_store(upstream: Upstream, make_chain: Chain) -> None:
    store = MemoryBreakerStore()
    chain: ResilientModel = make_chain(upstream, store=store)
    await chain.breakers[0].trip(5.0)
    assert not (await store.admit(chain.breakers[0].key, max_probes=1, probe_lease=1)).allowed
    with pytest.raises(AllUpstreamsUnavailable):
        await collect(chain)
    assert requests(upstream) == 0


async def test_breaker_redis_store_caches_state_between_round_trips(
    redis_store_factory: Callable[..., RedisBreakerStore],
) -> None:
    store = redis_store_factory(cache_ttl=1.0)
    calls = 0
    script = store._admit

    async def counting(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await script(**kwargs)

    store._admit = counting
    for _ in range(100):
        assert (await store.admit("k", max_probes=1, probe_lease=5)).allowed
    assert calls == 1  # a closed breaker is not asked about on every request
    await store.trip("k", 5.0)
    for _ in range(100):
        assert not (await store.admit("k", max_probes=1, probe_lease=5)).allowed
    assert calls == 1  # the trip's own answer is cached too
