"""Resilience around chat models: retries, a fallback chain, circuit breakers and adaptive concurrency limits.

:class:`ResilientModel` is itself a :class:`~kefu.llm.base.ChatModel`; build the configured one with
:func:`kefu.llm.factory.build_chat_model`. See docs/resilience.md.
"""

from kefu.llm.resilience.breaker import BreakerConfig, CircuitBreaker
from kefu.llm.resilience.errors import AllUpstreamsUnavailable, UpstreamDeadlineExceeded, UpstreamQueueTimeout
from kefu.llm.resilience.limiter import AdaptiveLimiter, LimiterConfig, Permit
from kefu.llm.resilience.model import ResilientModel, Route
from kefu.llm.resilience.policy import Action, RetryPolicy
from kefu.llm.resilience.redis_store import RedisBreakerStore
from kefu.llm.resilience.routes import UpstreamSpec, parse_fallbacks
from kefu.llm.resilience.store import Admission, BreakerStore, MemoryBreakerStore, State, Verdict

__all__ = [
    "Action",
    "AdaptiveLimiter",
    "Admission",
    "AllUpstreamsUnavailable",
    "BreakerConfig",
    "BreakerStore",
    "CircuitBreaker",
    "LimiterConfig",
    "MemoryBreakerStore",
    "Permit",
    "RedisBreakerStore",
    "ResilientModel",
    "RetryPolicy",
    "Route",
    "State",
    "UpstreamDeadlineExceeded",
    "UpstreamQueueTimeout",
    "UpstreamSpec",
    "Verdict",
    "parse_fallbacks",
]
