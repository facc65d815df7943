"""Build the process's chat model from :class:`~kefu.config.Settings`: the primary upstream plus
``KEFU_LLM_FALLBACKS``, wrapped in :class:`~kefu.llm.resilience.ResilientModel`."""

from __future__ import annotations

from dataclasses import replace

from kefu.config import Settings
from kefu.llm.auth import StaticKey
from kefu.llm.base import ChatModel
from kefu.llm.openai_compat import OpenAICompatModel
from kefu.llm.resilience import (
    BreakerConfig,
    BreakerStore,
    LimiterConfig,
    MemoryBreakerStore,
    RedisBreakerStore,
    ResilientModel,
    RetryPolicy,
    Route,
    parse_fallbacks,
)
from kefu.obs.metrics import Metrics


def build_chat_model(settings: Settings, metrics: Metrics) -> ChatModel | None:
    """The resilient chain over the primary (when ``KEFU_LLM_API_KEY``/OAuth is set) and the fallbacks, or
    None when no upstream is configured. Raises :class:`~kefu.errors.ConfigError` for bad fallbacks."""
    fallbacks = parse_fallbacks(settings.llm_fallbacks)
    limits = limiter_config(settings)
    routes: list[Route] = []
    if settings.llm_configured:
        routes.append(
            Route(
                OpenAICompatModel.from_settings(settings),
                key=f"{settings.llm_base_url.rstrip('/')}|{settings.llm_model}",
            )
        )
    for spec in fallbacks:
        model = OpenAICompatModel(
            spec.base_url,
            spec.model,
            StaticKey(spec.api_key.get_secret_value() if spec.api_key else None),
            connect_timeout=spec.connect_timeout or settings.llm_connect_timeout,
            first_token_timeout=spec.first_token_timeout or settings.llm_first_token_timeout,
            idle_timeout=spec.idle_timeout or settings.llm_idle_timeout,
            max_connections=settings.llm_max_connections,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
            read_pace=settings.coalesce_ms / 1000,
        )
        # A fallback may cap its own concurrency; everything else follows the shared limiter settings.
        own_limit = None if spec.max_concurrency is None else replace(limits, max_concurrency=spec.max_concurrency)
        routes.append(Route(model, key=f"{spec.base_url.rstrip('/')}|{spec.model}", label=spec.name, limits=own_limit))
    if not routes:
        return None
    store: BreakerStore = (
        RedisBreakerStore.from_url(settings.redis_url, settings.redis_prefix)
        if settings.redis_url
        else MemoryBreakerStore()
    )
    return ResilientModel(
        routes,
        policy=RetryPolicy(
            max_retries=settings.llm_max_retries,
            backoff_base=settings.llm_retry_backoff_base,
            backoff_cap=settings.llm_retry_backoff_cap,
            retry_after_cap=settings.llm_retry_after_cap,
            turn_deadline=settings.llm_turn_deadline,
        ),
        breaker=BreakerConfig(
            window=settings.llm_breaker_window,
            min_volume=settings.llm_breaker_min_volume,
            error_ratio=settings.llm_breaker_error_ratio,
            open_seconds=settings.llm_breaker_open_seconds,
            retry_after_cap=settings.llm_breaker_retry_after_cap,
            half_open_probes=settings.llm_breaker_half_open_probes,
            # A probe's verdict is known by its first token; after that long it can only have been lost.
            probe_lease=settings.llm_connect_timeout + settings.llm_first_token_timeout + 5.0,
        ),
        limits=limits,
        store=store,
        metrics=metrics,
        account_alert_interval=settings.llm_account_alert_interval,
    )


def limiter_config(settings: Settings) -> LimiterConfig:
    """The per-upstream concurrency settings."""
    return LimiterConfig(
        max_concurrency=settings.llm_max_concurrency,
        min_concurrency=settings.llm_min_concurrency,
        adaptive=settings.llm_adaptive_concurrency,
        queue_timeout=settings.llm_queue_timeout,
        max_queue=settings.llm_max_queue,
        fail_fast=settings.llm_queue_fail_fast,
    )
