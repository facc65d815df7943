"""An adaptive concurrency limit per upstream: a bounded FIFO queue in front of the provider.

Providers cap concurrent requests per account and answer 429 above the cap; sending everything at once only
turns a peak into a storm of 429s and retries. Requests over the limit wait in a queue (at most
``queue_timeout`` seconds, at most ``max_queue`` of them) and the limit itself follows AIMD: a 429 multiplies it
by ``decrease_factor`` (once per "generation": only a request admitted after the last cut can cut again, so one
burst of 429s from requests sent together counts once), and each successful start adds ``1/limit``, i.e. about
one more slot per ``limit`` successes, up to ``max_concurrency``.

With ``fail_fast`` a request that would have to wait longer than its timeout — judged from the queue ahead of it
and the average time a slot is held (``queued x hold / limit``) — is refused at once instead of waiting the
whole timeout first: at a 10x peak the turns that cannot be served degrade immediately.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from kefu.llm.resilience.errors import UpstreamQueueTimeout


@dataclass(frozen=True, slots=True)
class LimiterConfig:
    """Concurrency knobs of one upstream (``KEFU_LLM_MAX_CONCURRENCY`` …)."""

    max_concurrency: int = 256
    min_concurrency: int = 1
    adaptive: bool = True
    queue_timeout: float = 2.0
    max_queue: int = 1000
    decrease_factor: float = 0.7
    fail_fast: bool = True


class Permit:
    """One in-flight slot; :meth:`release` (idempotent) gives it back."""

    __slots__ = ("_limiter", "released", "started")

    def __init__(self, limiter: AdaptiveLimiter, started: float) -> None:
        self._limiter = limiter
        self.started = started
        self.released = False

    def release(self) -> None:
        """Return the slot (wakes the next waiter)."""
        if not self.released:
            self.released = True
            self._limiter._release(self)


class AdaptiveLimiter:
    """See the module docstring. Not thread-safe: one event loop."""

    def __init__(
        self,
        name: str,
        config: LimiterConfig,
        *,
        on_change: Callable[[AdaptiveLimiter], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._config = config
        self._floor = max(1, min(config.min_concurrency, config.max_concurrency))
        self.limit = float(max(1, config.max_concurrency))
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._last_cut = -math.inf
        self.hold_time: float | None = None  # moving average of how long a slot is held (seconds)
        self._on_change = on_change
        self._clock = clock

    @property
    def queued(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiters)

    @property
    def capacity(self) -> int:
        """Slots allowed right now (the limit rounded down)."""
        return max(self._floor, int(self.limit))

    async def acquire(self, timeout: float | None = None) -> Permit:
        """A slot, waiting up to ``timeout`` (default: the configured queue timeout) in FIFO order.

        Raises :class:`UpstreamQueueTimeout` when the wait times out or the queue is full.
        """
        if not self._waiters and self.in_flight < self.capacity:
            self.in_flight += 1
            self._changed()
            return Permit(self, self._clock())
        if len(self._waiters) >= self._config.max_queue:
            raise UpstreamQueueTimeout(f"{self.name}: {len(self._waiters)} requests already queued", provider=self.name)
        wait = self._config.queue_timeout if timeout is None else min(timeout, self._config.queue_timeout)
        expected = self.expected_wait()
        if self._config.fail_fast and expected is not None and expected > wait:
            raise UpstreamQueueTimeout(
                f"{self.name}: expected wait {expected:.1f}s for a slot exceeds {wait:g}s "
                f"({len(self._waiters)} queued, limit {self.capacity})",
                provider=self.name,
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._changed()
        try:
            async with asyncio.timeout(max(wait, 0.0)):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot was handed over just as we gave up: pass it on
            else:
                waiter.cancel()
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
                self._changed()
            if isinstance(exc, TimeoutError):
                raise UpstreamQueueTimeout(
                    f"{self.name}: no free slot within {wait:g}s ({self.in_flight} in flight, limit {self.capacity})",
                    provider=self.name,
                ) from None
            raise
        return Permit(self, self._clock())

    def expected_wait(self) -> float | None:
        """Roughly how long a request joining the queue now would wait (None until a slot was returned)."""
        if self.hold_time is None:
            return None
        return (len(self._waiters) + 1) * self.hold_time / self.capacity

    def on_success(self) -> None:
        """A request started answering: additive increase."""
        if self._config.adaptive and self.limit < self._config.max_concurrency:
            self.limit = min(float(self._config.max_concurrency), self.limit + 1 / self.limit)
            self._wake()
            self._changed()

    def on_overload(self, permit: Permit) -> None:
        """The upstream said 429 to ``permit``'s request: multiplicative decrease (once per generation)."""
        if not self._config.adaptive or permit.started <= self._last_cut:
            return
        self._last_cut = self._clock()
        self.limit = max(float(self._floor), self.limit * self._config.decrease_factor)
        self._changed()

    def _release(self, permit: Permit | None = None) -> None:
        if permit is not None:
            held = self._clock() - permit.started
            self.hold_time = held if self.hold_time is None else 0.9 * self.hold_time + 0.1 * held
        self.in_flight -= 1
        self._wake()
        self._changed()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and self.in_flight < self.capacity:
            waiter = waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self)
