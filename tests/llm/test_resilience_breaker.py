"""Circuit breakers: error-ratio trips, 429 trips, half-open probes, and state shared through real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
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
Advance = Callable[[float], Awaitable[None]]


class Clock:
    """A hand-driven monotonic clock for the breaker stores (open periods pass without waiting)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def redis_store_factory(redis_url: str) -> AsyncIterator[Callable[..., RedisBreakerStore]]:
    """RedisBreakerStores on one unique prefix (two of them act as two replicas); keys deleted afterwards."""
    prefix = f"kefu-test-{uuid.uuid4().hex[:10]}"
    stores: list[RedisBreakerStore] = []

    def make(cache_ttl: float = 1.0, clock: Callable[[], float] = time.monotonic) -> RedisBreakerStore:
        client: Redis = Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        store = RedisBreakerStore(client, prefix, cache_ttl=cache_ttl, clock=clock)
        stores.append(store)
        return store

    yield make
    await _drop_prefix(redis_url, prefix)
    for store in stores:
        await store.aclose()


@pytest.fixture(params=["memory", "redis"])
async def any_store(request: pytest.FixtureRequest) -> AsyncIterator[tuple[BreakerStore, Advance]]:
    """Each breaker store implementation (Redis on a unique prefix), and how to let time pass for it: a fake
    clock in memory; real waits for Redis, whose scripts read Redis' own clock."""
    if request.param == "memory":
        clock = Clock()
        yield MemoryBreakerStore(clock), clock.advance
        return
    redis_url: str = request.getfixturevalue("redis_url")
    prefix = f"kefu-test-{uuid.uuid4().hex[:10]}"
    store = RedisBreakerStore.from_url(redis_url, prefix)
    yield store, asyncio.sleep
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
    clock = Clock()
    chain = make_chain(upstream, policy=NO_RETRY, breaker=TIGHT, store=MemoryBreakerStore(clock), metrics=metrics)
    for _ in range(4):
        with pytest.raises(UpstreamStatusError):
            await collect(chain)
    assert sample(metrics, "kefu_upstream_breaker_state", upstream=chain.name) == State.OPEN
    start = time.monotonic()
    with pytest.raises(AllUpstreamsUnavailable):
        await collect(chain)
    assert time.monotonic() - start < 0.5
    assert requests(upstream) == 4  # the open breaker kept the fifth turn away from the upstream
    clock.now += 0.3
    with pytest.raises(AllUpstreamsUnavailable):
        await collect(chain)  # still within the 0.4 s open period
    clock.now += 0.15
    assert finish_of(await collect(chain)).model == "primary-chat"  # the half-open probe
    assert sample(metrics, "kefu_upstream_breaker_state", upstream=chain.name) == State.CLOSED
    assert finish_of(await collect(chain)).model == "primary-chat"
    assert requests(upstream) == 6


async def test_breaker_failed_probe_reopens(upstream: Upstream, make_chain: Chain) -> None:
    upstream.script(*[{"fail": "500"}] * 5)
    clock = Clock()
    chain = make_chain(upstream, policy=NO_RETRY, breaker=TIGHT, store=MemoryBreakerStore(clock))
    for _ in range(4):
        with pytest.raises(UpstreamStatusError):
            await collect(chain)
    clock.now += 0.45
    with pytest.raises(UpstreamStatusError):
        await collect(chain)  # the probe fails
    clock.now += 0.3
    with pytest.raises(AllUpstreamsUnavailable):
        await collect(chain)  # open again, for another 0.4 s
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
    clock = Clock()
    chain = make_chain(upstream, policy=NO_RETRY, store=MemoryBreakerStore(clock))
    with pytest.raises(UpstreamStatusError):
        await collect(chain)
    clock.now += 0.45
    with pytest.raises(AllUpstreamsUnavailable):
        await collect(chain)
    clock.now += 0.1  # past the Retry-After (an error-ratio trip would stay open for 10 s)
    assert finish_of(await collect(chain)).model == "primary-chat"
    assert requests(upstream) == 2


async def test_breaker_store_half_open_admits_limited_probes(any_store: tuple[BreakerStore, Advance]) -> None:
    store, advance = any_store
    key = "http://up|model"
    assert (await store.admit(key, max_probes=2, probe_lease=5)).verdict is Verdict.ALLOWED
    opened = await store.trip(key, 0.2)
    assert opened.state is State.OPEN and 0.1 < opened.retry_in <= 0.2 + 1e-6  # clock arithmetic in floats
    denied = await store.admit(key, max_probes=2, probe_lease=5)
    assert denied.verdict is Verdict.DENIED and denied.state is State.OPEN
    await advance(0.25)
    verdicts = [(await store.admit(key, max_probes=2, probe_lease=5)).verdict for _ in range(3)]
    assert verdicts == [Verdict.PROBE, Verdict.PROBE, Verdict.DENIED]
    await store.release_probe(key)
    assert (await store.admit(key, max_probes=2, probe_lease=5)).verdict is Verdict.PROBE
    await store.reset(key)
    assert (await store.admit(key, max_probes=2, probe_lease=5)).verdict is Verdict.ALLOWED


async def test_breaker_store_trip_keeps_the_later_end(any_store: tuple[BreakerStore, Advance]) -> None:
    store, _ = any_store
    await store.trip("k", 5.0)
    shorter = await store.trip("k", 0.1)
    assert shorter.retry_in > 4.0


async def test_breaker_shared_through_redis_between_replicas(
    upstream: Upstream, make_chain: Chain, redis_store_factory: Callable[..., RedisBreakerStore]
) -> None:
    # The open period is Redis time (real); the replicas' local caches of it run on a fake clock.
    upstream.script({}, {"fail": "429", "retry_after": 0.5})
    clock = Clock()
    replica_a = make_chain(upstream, policy=NO_RETRY, store=redis_store_factory(cache_ttl=0.2, clock=clock))
    replica_b = make_chain(upstream, policy=NO_RETRY, store=redis_store_factory(cache_ttl=0.2, clock=clock))
    assert finish_of(await collect(replica_b)).model == "primary-chat"  # B has seen the breaker closed
    with pytest.raises(UpstreamStatusError):
        await collect(replica_a)  # A gets the 429 and opens the breaker for 0.5 s
    tripped = start = time.monotonic()
    clock.now += 0.25  # B's cached "closed" expires
    with pytest.raises(AllUpstreamsUnavailable):
        await collect(replica_b)
    assert time.monotonic() - start < 0.5
    assert requests(upstream) == 2  # B never reached the upstream while A's breaker was open
    await asyncio.sleep(max(0.0, tripped + 0.55 - time.monotonic()))  # Redis' open period ends
    clock.now += 0.6  # and so does B's cached "open"
    assert finish_of(await collect(replica_b)).model == "primary-chat"  # B's probe closes it for both
    clock.now += 0.25  # A's cached "open" expires
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
