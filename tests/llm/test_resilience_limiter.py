"""Upstream concurrency limits: the queue, its timeout, AIMD, and the cap seen at a real mock upstream."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import pytest

from kefu.errors import UpstreamError
from kefu.llm.resilience import AdaptiveLimiter, LimiterConfig, RetryPolicy, UpstreamQueueTimeout
from kefu.obs.metrics import Metrics
from tests.llm.conftest import MOCK_ARGS, Upstream, start_upstream
from tests.llm.test_resilience import (
    Chain,
    collect,
    finish_of,
    make_chain,
    requests,
    sample,
    secondary,
    secondary_process,
    until,
)

__all__ = ["make_chain", "secondary", "secondary_process"]  # fixtures, re-exported for this module


@pytest.fixture(scope="module")
def capped() -> Iterator[Upstream]:
    """A mock that answers 429 (no Retry-After) above 2 concurrent answers."""
    up = start_upstream(*MOCK_ARGS, "--max-concurrency", "2")
    yield up
    up.stop()


async def test_limiter_holds_concurrency_under_burst(upstream: Upstream, make_chain: Chain) -> None:
    upstream.script(*[{"ttft": 0.15}] * 12)
    metrics = Metrics()
    chain = make_chain(upstream, limits=LimiterConfig(max_concurrency=3, queue_timeout=3.0), metrics=metrics)
    results = await asyncio.gather(*(collect(chain) for _ in range(12)))
    assert all(finish_of(events).model == "primary-chat" for events in results)
    stats = upstream.stats()
    assert stats["max_active"] == 3  # the limit was used, and never exceeded
    assert stats["requests"] == 12
    assert sample(metrics, "kefu_upstream_in_flight", upstream=chain.name) == 0
    assert sample(metrics, "kefu_upstream_queue_wait_seconds_count", upstream=chain.name) == 12


async def test_limiter_aimd_lowers_limit_on_429s(capped: Upstream, make_chain: Chain) -> None:
    capped.reset()
    capped.script(*[{"ttft": 0.3}] * 2)
    metrics = Metrics()
    chain = make_chain(
        capped,
        policy=RetryPolicy(max_retries=0, turn_deadline=5.0),
        limits=LimiterConfig(max_concurrency=8, min_concurrency=1),
        metrics=metrics,
    )
    results = await asyncio.gather(*(collect(chain) for _ in range(8)), return_exceptions=True)
    rejected = [r for r in results if isinstance(r, UpstreamError)]
    assert len(rejected) == 6 and capped.stats()["over_capacity"] == 6
    limiter = chain.limiters[0]
    # One cut for one burst (8 x 0.7), not six; the two answers that got through then add 1/limit each.
    assert 5.6 <= limiter.limit < 6.0
    assert sample(metrics, "kefu_upstream_concurrency_limit", upstream=chain.name) == pytest.approx(limiter.limit)


async def test_limiter_with_limit_at_cap_avoids_429s(capped: Upstream, make_chain: Chain) -> None:
    capped.reset()
    capped.script(*[{"ttft": 0.1}] * 8)
    chain = make_chain(capped, limits=LimiterConfig(max_concurrency=2, queue_timeout=3.0))
    results = await asyncio.gather(*(collect(chain) for _ in range(8)))
    assert len(results) == 8
    stats = capped.stats()
    assert stats["over_capacity"] == 0 and stats["max_active"] == 2


async def test_limiter_queue_timeout_fails_over(upstream: Upstream, secondary: Upstream, make_chain: Chain) -> None:
    upstream.script({"ttft": 1.5})
    chain = make_chain(upstream, secondary, limits=LimiterConfig(max_concurrency=1, queue_timeout=0.2))
    slow = asyncio.create_task(collect(chain))
    await until(lambda: chain.limiters[0].in_flight == 1)  # the slow turn holds the only slot
    events = await collect(chain)
    assert finish_of(events).model == "backup-chat"
    assert finish_of(await slow).model == "primary-chat"
    assert requests(upstream) == 1


async def test_limiter_queue_timeout_error_is_retryable() -> None:
    limiter = AdaptiveLimiter("up", LimiterConfig(max_concurrency=1, queue_timeout=0.05))
    held = await limiter.acquire()
    with pytest.raises(UpstreamQueueTimeout) as exc:
        await limiter.acquire()
    assert exc.value.retryable and exc.value.code == "upstream_queue_timeout"
    assert limiter.queued == 0
    held.release()
    held.release()  # idempotent
    assert limiter.in_flight == 0


async def test_limiter_full_queue_rejects_at_once() -> None:
    limiter = AdaptiveLimiter("up", LimiterConfig(max_concurrency=1, max_queue=1, queue_timeout=5))
    held = await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    with pytest.raises(UpstreamQueueTimeout):
        await limiter.acquire()
    held.release()
    (await waiter).release()
    assert (limiter.in_flight, limiter.queued) == (0, 0)


async def test_limiter_hands_slots_over_in_fifo_order() -> None:
    limiter = AdaptiveLimiter("up", LimiterConfig(max_concurrency=1, queue_timeout=5))
    held = await limiter.acquire()
    order: list[int] = []

    async def take(n: int) -> None:
        permit = await limiter.acquire()
        order.append(n)
        permit.release()

    tasks = [asyncio.create_task(take(n)) for n in range(3)]
    await asyncio.sleep(0)
    held.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]


async def test_limiter_aimd_cuts_once_per_generation_and_grows_back() -> None:
    clock = [0.0]
    limiter = AdaptiveLimiter("up", LimiterConfig(max_concurrency=10, min_concurrency=2), clock=lambda: clock[0])
    old = await limiter.acquire()
    clock[0] = 1.0
    limiter.on_overload(old)
    assert limiter.limit == pytest.approx(7.0)
    limiter.on_overload(old)  # same generation: no second cut
    assert limiter.limit == pytest.approx(7.0)
    for _ in range(10):
        clock[0] += 1
        newer = await limiter.acquire()
        limiter.on_overload(newer)
        newer.release()
    assert limiter.limit == 2.0 and limiter.capacity == 2  # the floor
    limiter.on_success()
    assert limiter.limit == pytest.approx(2.5)
    for _ in range(200):
        limiter.on_success()
    assert limiter.limit == 10.0  # back to the configured maximum, never above
    assert math.isclose(limiter.limit, 10.0)
    old.release()


async def test_limiter_fixed_when_not_adaptive() -> None:
    limiter = AdaptiveLimiter("up", LimiterConfig(max_concurrency=10, adaptive=False))
    permit = await limiter.acquire()
    limiter.on_overload(permit)
    assert limiter.limit == 10.0
    permit.release()


async def test_limiter_fail_fast_refuses_when_expected_wait_exceeds_timeout() -> None:
    clock = [0.0]
    config = LimiterConfig(max_concurrency=1, queue_timeout=5.0)
    limiter = AdaptiveLimiter("up", config, clock=lambda: clock[0])
    first = await limiter.acquire()
    clock[0] = 2.0
    first.release()  # a slot is held about 2 s
    held = await limiter.acquire()
    queued = [asyncio.create_task(limiter.acquire()) for _ in range(2)]  # expected waits 2 s and 4 s: admitted
    await asyncio.sleep(0)
    assert limiter.queued == 2 and limiter.expected_wait() == pytest.approx(6.0)
    with pytest.raises(UpstreamQueueTimeout) as exc:
        await limiter.acquire()  # would wait about 6 s > 5 s: refused now, not after 5 s
    assert "expected wait" in exc.value.message
    patient = AdaptiveLimiter("up", LimiterConfig(max_concurrency=1, queue_timeout=0.05, fail_fast=False))
    patient.hold_time = 100.0
    await patient.acquire()
    start = asyncio.get_running_loop().time()
    with pytest.raises(UpstreamQueueTimeout):
        await patient.acquire()
    assert asyncio.get_running_loop().time() - start >= 0.04  # without fail_fast it waited
    for task in queued:
        task.cancel()
    await asyncio.gather(*queued, return_exceptions=True)
    held.release()
    assert (limiter.in_flight, limiter.queued) == (0, 0)
