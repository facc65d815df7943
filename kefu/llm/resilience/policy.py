"""What to do after an upstream error before the first token: retry the route, fail over, or give up.

The rules follow the reliability notes (openai-python, LiteLLM, Portkey): retry only connect errors and 408,
429, 500, 502, 503, 504, with jittered exponential backoff or the server's ``Retry-After`` when it is not too
long; never retry 400/401/402/422; a silent upstream (no first token in time) is not retried on the same route.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from kefu.errors import FirstTokenTimeout, UpstreamConnectError, UpstreamError, UpstreamStatusError

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# The request itself is wrong: every other route would reject it too.
BAD_REQUEST_STATUSES = frozenset({400, 413, 422})


class Action(enum.Enum):
    """The verdict on one failed attempt."""

    RETRY = "retry"  # same route, after a delay
    FAILOVER = "failover"  # next route (or give up when it was the last)
    RAISE = "raise"  # stop now: the request is bad


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry and deadline knobs of one chain (``KEFU_LLM_MAX_RETRIES`` …).

    ``max_retries`` is per route (a fallback gets its own budget); ``turn_deadline`` bounds the whole start of a
    turn — queue waits, backoff sleeps and waiting for the first token on every route together.
    """

    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    retry_after_cap: float = 5.0
    turn_deadline: float = 60.0

    def classify(self, exc: UpstreamError) -> Action:
        """Retry, fail over or raise for an error that happened before the first token."""
        if isinstance(exc, UpstreamStatusError):
            status = exc.status_code
            if status in BAD_REQUEST_STATUSES:
                return Action.RAISE
            return Action.RETRY if status in RETRY_STATUSES else Action.FAILOVER
        if isinstance(exc, UpstreamConnectError):
            return Action.RETRY if exc.retryable else Action.FAILOVER
        if isinstance(exc, FirstTokenTimeout):
            return Action.FAILOVER  # a silent upstream would most likely stay silent: don't wait for it again
        return Action.FAILOVER

    def delay(self, retry: int, exc: UpstreamError, rng: random.Random) -> float | None:
        """Seconds to wait before retry number ``retry`` (0-based); None means "don't wait here, fail over"."""
        if retry >= self.max_retries:
            return None
        wait: float | None = exc.retry_after
        if wait is not None:
            return wait if wait <= self.retry_after_cap else None
        return min(self.backoff_base * 2.0**retry, self.backoff_cap) * (1 - 0.25 * rng.random())
