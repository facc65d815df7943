"""ResilientModel over real loopback HTTP: retries, fallback chain, deadline, cancellation.

Two mock upstreams run as processes: the session ``upstream`` (primary, model ``primary-chat``) and a module
``secondary`` (model ``backup-chat``). Timings are scaled down through constructor parameters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from kefu.errors import UpstreamError, UpstreamProtocolError, UpstreamStatusError
from kefu.llm.auth import StaticKey
from kefu.llm.base import ChatModel, Finish, ModelEvent, TextDelta
from kefu.llm.openai_compat import OpenAICompatModel
from kefu.llm.resilience import (
    AllUpstreamsUnavailable,
    BreakerConfig,
    BreakerStore,
    LimiterConfig,
    ResilientModel,
    RetryPolicy,
    Route,
    UpstreamDeadlineExceeded,
)
from kefu.obs.metrics import Metrics
from tests.llm.conftest import MOCK_ARGS, Upstream, ask, start_upstream
from tests.support import free_port

FAST = RetryPolicy(max_retries=2, backoff_base=0.02, backoff_cap=0.1, retry_after_cap=2.0, turn_deadline=5.0)
MODEL_NAMES = ("primary-chat", "backup-chat", "third-chat")
Chain = Callable[..., ResilientModel]


@pytest.fixture(scope="module")
def secondary_process() -> Iterator[Upstream]:
    up = start_upstream(*MOCK_ARGS)
    yield up
    up.stop()


@pytest.fixture
def secondary(secondary_process: Upstream) -> Upstream:
    """A second mock upstream (the fallback), reset."""
    secondary_process.reset()
    return secondary_process


def dead_url() -> str:
    """An address where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
async def make_chain() -> AsyncIterator[Chain]:
    """Build ResilientModels over mock upstreams (given as Upstream or base URL); closed after the test."""
    made: list[ResilientModel] = []

    def make(
        *targets: Upstream | str,
        policy: RetryPolicy = FAST,
        breaker: BreakerConfig | None = None,
        limits: LimiterConfig | None = None,
        store: BreakerStore | None = None,
        metrics: Metrics | None = None,
        first_token_timeout: float = 2.0,
    ) -> ResilientModel:
        routes = []
        for index, target in enumerate(targets):
            url = target.url if isinstance(target, Upstream) else target
            model = OpenAICompatModel(
                url + "/v1",
                MODEL_NAMES[index],
                StaticKey("sk-test"),
                connect_timeout=1.0,
                first_token_timeout=first_token_timeout,
                idle_timeout=2.0,
            )
            routes.append(Route(model, key=f"{url}|{MODEL_NAMES[index]}"))
        chain = ResilientModel(
            routes,
            policy=policy,
            breaker=breaker or BreakerConfig(),
            limits=limits or LimiterConfig(queue_timeout=2.0),
            store=store,
            metrics=metrics or Metrics(),
        )
        made.append(chain)
        return chain

    yield make
    for chain in made:
        await chain.aclose()


async def collect(model: ChatModel, text: str = "你好") -> list[ModelEvent]:
    return [event async for event in model.stream(ask(text))]


def finish_of(events: list[ModelEvent]) -> Finish:
    last = events[-1]
    assert isinstance(last, Finish)
    return last


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def requests(up: Upstream) -> int:
    count: int = up.stats()["requests"]
    return count


async def until(check: Callable[[], bool], *, within: float = 5.0) -> None:
    """Poll ``check`` (yielding to the loop between tries) until it holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within}s")
        await asyncio.sleep(0.01)


async def test_resilient_429_with_retry_after_waits_then_succeeds(upstream: Upstream, make_chain: Chain) -> None:
    upstream.script({"fail": "429", "retry_after": 0.6}, {})
    metrics = Metrics()
    chain = make_chain(upstream, metrics=metrics)
    start = time.monotonic()
    events = await collect(chain)
    elapsed = time.monotonic() - start
    assert finish_of(events).model == "primary-chat"
    assert any(isinstance(e, TextDelta) for e in events)
    assert 0.6 <= elapsed < 2.0  # the server's Retry-After, not the 20 ms backoff
    assert requests(upstream) == 2
    assert sample(metrics, "kefu_upstream_retries_total", upstream=chain.name, code="upstream_rate_limited") == 1
    assert sample(metrics, "kefu_upstream_breaker_state", upstream=chain.name) == 0  # the probe closed it again


async def test_resilient_retry_after_over_cap_fails_over_without_waiting(
    upstream: Upstream, secondary: Upstream, make_chain: Chain
) -> None:
    upstream.script({"fail": "429", "retry_after": 30})
    chain = make_chain(upstream, secondary)
    start = time.monotonic()
    events = await collect(chain)
    assert time.monotonic() - start < 1.0
    assert finish_of(events).model == "backup-chat"
    assert requests(upstream) == 1 and requests(secondary) == 1


async def test_resilient_503s_exhaust_retries_then_secondary_answers(
    upstream: Upstream, secondary: Upstream, make_chain: Chain
) -> None:
    upstream.script({"fail": "503"}, {"fail": "503"}, {"fail": "503"}, {})
    metrics = Metrics()
    chain = make_chain(upstream, secondary, metrics=metrics)
    events = await collect(chain)
    finish = finish_of(events)
    assert finish.model == "backup-chat"
    assert chain.name.endswith("primary-chat") and chain.model == "primary-chat"
    assert requests(upstream) == 3  # first try + max_retries
    assert requests(secondary) == 1
    assert sample(metrics, "kefu_upstream_failovers_total", upstream=chain.name, code="upstream_overloaded") == 1


async def test_resilient_primary_unreachable_secondary_answers(secondary: Upstream, make_chain: Chain) -> None:
    chain = make_chain(dead_url(), secondary)
    events = await collect(chain)
    assert finish_of(events).model == "backup-chat"
    assert "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_resilient_all_breakers_open_raises_at_once(
    upstream: Upstream, secondary: Upstream, make_chain: Chain
) -> None:
    upstream.script({"fail": "429", "retry_after": 30})
    secondary.script({"fail": "429", "retry_after": 30})
    chain = make_chain(upstream, secondary)
    with pytest.raises(UpstreamStatusError) as first:
        await collect(chain)
    assert first.value.status_code == 429  # the last real error, so metrics keep the cause
    start = time.monotonic()
    with pytest.raises(AllUpstreamsUnavailable) as exc:
        await collect(chain)
    assert time.monotonic() - start < 0.5
    assert exc.value.retryable and exc.value.code == "all_upstreams_unavailable"
    assert requests(upstream) == 1 and requests(secondary) == 1  # nobody was asked the second time


async def test_resilient_cut_after_first_token_propagates_without_retry(
    upstream: Upstream, secondary: Upstream, make_chain: Chain
) -> None:
    upstream.script({"fail": "cut", "after_chunks": 2})
    chain = make_chain(upstream, secondary)
    seen: list[ModelEvent] = []
    with pytest.raises(UpstreamProtocolError):
        async for event in chain.stream(ask("你好")):
            seen.append(event)
    assert [e for e in seen if isinstance(e, TextDelta)]
    assert requests(upstream) == 1 and requests(secondary) == 0
    assert chain.limiters[0].in_flight == 0


async def test_resilient_silent_primary_fails_over_within_first_token_timeout(
    upstream: Upstream, secondary: Upstream, make_chain: Chain
) -> None:
    upstream.script({"fail": "stall", "seconds": 5})
    chain = make_chain(upstream, secondary, first_token_timeout=0.4)
    start = time.monotonic()
    events = await collect(chain)
    elapsed = time.monotonic() - start
    assert finish_of(events).model == "backup-chat"
    assert 0.4 <= elapsed < 1.4
    assert requests(upstream) == 1  # a silent route is not asked again


@pytest.mark.parametrize("status", ["400", "422"])
async def test_resilient_bad_request_raises_without_retry(
    status: str, upstream: Upstream, secondary: Upstream, make_chain: Chain
) -> None:
    upstream.script({"fail": status})
    chain = make_chain(upstream, secondary)
    with pytest.raises(UpstreamStatusError) as exc:
        await collect(chain)
    assert exc.value.status_code == int(status)
    assert requests(upstream) == 1 and requests(secondary) == 0


async def test_resilient_402_fails_over_counts_and_alerts_once(
    upstream: Upstream, secondary: Upstream, make_chain: Chain
) -> None:
    upstream.script({"fail": "402"}, {"fail": "402"})
    metrics = Metrics()
    chain = make_chain(upstream, secondary, metrics=metrics)
    with capture_logs() as logs:
        for _ in range(2):
            assert finish_of(await collect(chain)).model == "backup-chat"
    assert requests(upstream) == 2  # once per turn, never retried
    assert sample(metrics, "kefu_upstream_insufficient_balance_total", upstream=chain.name) == 2
    alerts = [entry for entry in logs if entry["event"] == "upstream_balance_exhausted"]
    assert len(alerts) == 1 and alerts[0]["log_level"] == "error"
    assert "sk-test" not in str(alerts[0])


async def test_resilient_401_fails_over_without_retry(
    upstream: Upstream, secondary: Upstream, make_chain: Chain
) -> None:
    upstream.script({"fail": "401"})
    chain = make_chain(upstream, secondary)
    assert finish_of(await collect(chain)).model == "backup-chat"
    assert requests(upstream) == 1


async def test_resilient_deadline_bounds_retries(upstream: Upstream, make_chain: Chain) -> None:
    upstream.script(*[{"fail": "503"}] * 10)
    policy = RetryPolicy(max_retries=10, backoff_base=0.3, backoff_cap=0.3, turn_deadline=0.8)
    chain = make_chain(upstream, policy=policy)
    start = time.monotonic()
    with pytest.raises(UpstreamError):
        await collect(chain)
    assert time.monotonic() - start < 1.2
    assert 2 <= requests(upstream) <= 4  # a sleep that would overrun the deadline is not taken


async def test_resilient_deadline_cuts_a_slow_first_token(upstream: Upstream, make_chain: Chain) -> None:
    upstream.script({"ttft": 3})
    chain = make_chain(upstream, policy=RetryPolicy(turn_deadline=0.5), first_token_timeout=5.0)
    start = time.monotonic()
    with pytest.raises(UpstreamDeadlineExceeded):
        await collect(chain)
    assert time.monotonic() - start < 1.0
    assert chain.limiters[0].in_flight == 0


async def test_resilient_closing_the_stream_releases_permit_and_upstream(upstream: Upstream, make_chain: Chain) -> None:
    upstream.script({"tps": 20, "tokens": 200, "chunk_chars": 1})
    chain = make_chain(upstream)
    stream = chain.stream(ask("你好"))
    first = await anext(stream)
    assert isinstance(first, TextDelta)
    assert chain.limiters[0].in_flight == 1
    await stream.aclose()  # type: ignore[attr-defined]
    assert chain.limiters[0].in_flight == 0
    for _ in range(50):
        stats = upstream.stats()
        if stats["disconnects"] == 1:
            break
        await asyncio.sleep(0.05)
    assert stats["disconnects"] == 1 and stats["active"] == 0


async def test_resilient_cancelled_task_releases_queued_and_running_permits(
    upstream: Upstream, make_chain: Chain
) -> None:
    upstream.script({"ttft": 2}, {"ttft": 2})
    chain = make_chain(upstream, limits=LimiterConfig(max_concurrency=1, queue_timeout=5.0))
    tasks = [asyncio.create_task(collect(chain)) for _ in range(2)]
    limiter = chain.limiters[0]
    await until(lambda: limiter.queued == 1 and upstream.stats()["active"] == 1)  # one at the upstream, one queued
    assert (limiter.in_flight, limiter.queued) == (1, 1)
    for task in tasks:
        task.cancel()
    results: list[Any] = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert (limiter.in_flight, limiter.queued) == (0, 0)
    await until(lambda: upstream.stats()["active"] == 0, within=1.0)  # the upstream saw the cancel, long before 2 s
