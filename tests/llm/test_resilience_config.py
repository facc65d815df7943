"""Retry policy rules, ``KEFU_LLM_FALLBACKS`` parsing and :func:`build_chat_model`."""

from __future__ import annotations

import random

import pytest

from kefu.config import Settings
from kefu.errors import (
    ConfigError,
    FirstTokenTimeout,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
)
from kefu.llm.base import Finish, TextDelta
from kefu.llm.factory import build_chat_model
from kefu.llm.resilience import (
    Action,
    MemoryBreakerStore,
    RedisBreakerStore,
    ResilientModel,
    RetryPolicy,
    UpstreamQueueTimeout,
    parse_fallbacks,
)
from kefu.obs.metrics import Metrics
from tests.llm.conftest import Upstream, ask
from tests.support import free_port


def status(code: int, retry_after: float | None = None) -> UpstreamStatusError:
    return UpstreamStatusError(f"HTTP {code}", status_code=code, retry_after=retry_after)


@pytest.mark.parametrize(
    ("error", "action"),
    [
        (status(400), Action.RAISE),
        (status(422), Action.RAISE),
        (status(401), Action.FAILOVER),
        (status(402), Action.FAILOVER),
        (status(404), Action.FAILOVER),
        (status(408), Action.RETRY),
        (status(429), Action.RETRY),
        (status(500), Action.RETRY),
        (status(502), Action.RETRY),
        (status(503), Action.RETRY),
        (status(504), Action.RETRY),
        (UpstreamConnectError("refused"), Action.RETRY),
        (UpstreamConnectError("bad scheme", retryable=False), Action.FAILOVER),
        (FirstTokenTimeout("silent"), Action.FAILOVER),
        (UpstreamProtocolError("broken"), Action.FAILOVER),
        (UpstreamQueueTimeout("busy"), Action.FAILOVER),
    ],
)
def test_policy_classifies_errors(error: UpstreamError, action: Action) -> None:
    assert RetryPolicy().classify(error) is action


def test_policy_backoff_is_jittered_exponential_and_capped() -> None:
    policy = RetryPolicy(max_retries=10, backoff_base=0.5, backoff_cap=8.0)
    rng = random.Random(1)
    for retry, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 8.0)]:
        delays = [policy.delay(retry, status(503), rng) for _ in range(50)]
        assert all(d is not None and 0.75 * ceiling <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_policy_honours_retry_after_up_to_cap_and_retry_budget() -> None:
    policy = RetryPolicy(max_retries=2, retry_after_cap=5.0)
    rng = random.Random(1)
    assert policy.delay(0, status(429, retry_after=3.0), rng) == 3.0
    assert policy.delay(0, status(429, retry_after=30.0), rng) is None  # fail over instead of waiting
    assert policy.delay(2, status(503), rng) is None  # budget spent


def test_fallbacks_parse_entries_with_optional_fields() -> None:
    raw = (
        '[{"base_url": "https://a.example/v1", "api_key": "sk-a", "model": "m-a"},'
        ' {"base_url": "http://b.local:8000/v1", "model": "m-b", "name": "local", "first_token_timeout": 12,'
        ' "max_concurrency": 4}]'
    )
    first, second = parse_fallbacks(raw)
    assert first.base_url == "https://a.example/v1" and first.model == "m-a"
    assert first.api_key is not None and first.api_key.get_secret_value() == "sk-a"
    assert "sk-a" not in repr(first)
    assert second.api_key is None and second.name == "local"
    assert second.first_token_timeout == 12.0 and second.max_concurrency == 4
    assert parse_fallbacks("") == [] and parse_fallbacks("[]") == []


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"base_url": "x"}', "JSON array"),
        ('[{"base_url": "https://a/v1", "model": "ok", "api_key": "sk-secret-1"}, "x"]', "entry 2"),
        ('[{"base_url": "https://a/v1", "api_key": "sk-secret-1"}]', "'model' is required"),
        ('[{"base_url": "ftp://a", "model": "m", "api_key": "sk-secret-1"}]', "entry 1 (model 'm'): base_url"),
        ('[{"base_url": "https://a", "model": "m", "apikey": "sk-secret-1"}]', "unknown keys ['apikey']"),
        ('[{"base_url": "https://a", "model": "m", "idle_timeout": -1}]', "idle_timeout must be"),
        ('[{"base_url": "https://a", "model": "m", "max_concurrency": 0}]', "max_concurrency must be"),
    ],
)
def test_fallbacks_reject_bad_entries_naming_them(raw: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_fallbacks(raw)
    assert fragment in exc.value.message
    assert "KEFU_LLM_FALLBACKS" in exc.value.message
    assert "sk-secret-1" not in exc.value.message


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def test_factory_returns_none_without_any_upstream() -> None:
    assert build_chat_model(_settings(), Metrics()) is None


async def test_factory_rejects_bad_fallbacks_with_config_error() -> None:
    with pytest.raises(ConfigError):
        build_chat_model(_settings(llm_api_key="sk", llm_fallbacks='[{"model": "x"}]'), Metrics())


async def test_factory_builds_chain_primary_first_with_memory_store() -> None:
    settings = _settings(
        llm_api_key="sk",
        llm_base_url="https://api.deepseek.com",
        llm_model="deepseek-chat",
        llm_fallbacks='[{"base_url": "https://b.example/v1", "api_key": "sk-b", "model": "b-model", "name": "b"}]',
        llm_max_concurrency=7,
    )
    model = build_chat_model(settings, Metrics())
    assert isinstance(model, ResilientModel)
    try:
        assert model.name == "api.deepseek.com/deepseek-chat" and model.model == "deepseek-chat"
        assert model.labels == ("api.deepseek.com/deepseek-chat", "b")
        assert model.breakers[0].key == "https://api.deepseek.com|deepseek-chat"
        assert [limiter.limit for limiter in model.limiters] == [7.0, 7.0]
        assert isinstance(model._store, MemoryBreakerStore)
    finally:
        await model.aclose()


async def test_factory_shares_breakers_through_redis_when_configured() -> None:
    settings = _settings(llm_api_key="sk", redis_url="redis://127.0.0.1:1/0", redis_prefix="tenant-a")
    model = build_chat_model(settings, Metrics())
    assert isinstance(model, ResilientModel)
    try:
        store = model._store
        assert isinstance(store, RedisBreakerStore)
        assert store.redis_key("k").startswith("tenant-a:breaker:{")
    finally:
        await model.aclose()


async def test_factory_chain_fails_over_from_dead_primary(upstream: Upstream) -> None:
    settings = _settings(
        llm_api_key="sk",
        llm_base_url=f"http://127.0.0.1:{free_port()}/v1",
        llm_model="dead-chat",
        llm_fallbacks=f'[{{"base_url": "{upstream.url}/v1", "model": "backup-chat"}}]',
        llm_retry_backoff_base=0.01,
    )
    metrics = Metrics()
    model = build_chat_model(settings, metrics)
    assert model is not None
    try:
        events = [event async for event in model.stream(ask("你好"))]
    finally:
        await model.aclose()
    assert isinstance(events[-1], Finish) and events[-1].model == "backup-chat"
    assert any(isinstance(e, TextDelta) for e in events)
    failovers = metrics.registry.get_sample_value(
        "kefu_upstream_failovers_total", {"upstream": model.name, "code": "upstream_unavailable"}
    )
    assert failovers == 1
