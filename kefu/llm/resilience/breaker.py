"""A circuit breaker per upstream: trips on an error ratio (with a minimum volume) or at once on a 429 that
says how long to stay away; after the open period a few half-open probes decide whether it closes again.

The rolling window is local to the process (counting every request in Redis would cost a round trip per
request); the resulting state lives in a :class:`~kefu.llm.resilience.store.BreakerStore`, shared by every
replica when Redis is configured, so one replica tripping keeps all of them away.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from kefu.llm.resilience.store import Admission, BreakerStore, State, Verdict

_BUCKETS = 10


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """When a breaker opens and for how long (``KEFU_LLM_BREAKER_*``).

    Opens when at least ``min_volume`` attempts in the last ``window`` seconds failed at a rate of
    ``error_ratio`` or more, for ``open_seconds``; a 429 with ``Retry-After`` opens it for that long (at most
    ``retry_after_cap``). Then ``half_open_probes`` requests at a time test the upstream; a probe that does not
    report within ``probe_lease`` seconds frees its slot.
    """

    window: float = 30.0
    min_volume: int = 20
    error_ratio: float = 0.5
    open_seconds: float = 10.0
    retry_after_cap: float = 60.0
    half_open_probes: int = 2
    probe_lease: float = 40.0


class CircuitBreaker:
    """The breaker of one upstream (``key``, e.g. base URL and model)."""

    def __init__(
        self,
        key: str,
        store: BreakerStore,
        config: BreakerConfig,
        *,
        on_state: Callable[[State], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self._store = store
        self._config = config
        self._on_state = on_state
        self._clock = clock
        self._width = config.window / _BUCKETS
        self._buckets: deque[list[float]] = deque()  # [start, ok, failed]
        self._ok = 0
        self._failed = 0

    async def admit(self) -> Admission:
        """Whether a request may go to this upstream now."""
        admission = await self._store.admit(
            self.key, max_probes=self._config.half_open_probes, probe_lease=self._config.probe_lease
        )
        self._publish(admission.state)
        return admission

    async def record_success(self, admission: Admission) -> None:
        """The upstream started answering."""
        self._count(ok=True)
        if admission.verdict is Verdict.PROBE:
            await self._store.reset(self.key)
            self._publish(State.CLOSED)

    async def record_failure(self, admission: Admission, *, open_for: float | None = None) -> None:
        """The upstream failed; ``open_for`` (a 429's ``Retry-After``) trips the breaker for that long at once."""
        self._count(ok=False)
        config = self._config
        if open_for is not None:
            await self.trip(min(open_for, config.retry_after_cap))
        elif admission.verdict is Verdict.PROBE:
            await self.trip(config.open_seconds)
        elif self._ok + self._failed >= config.min_volume and self._failed >= config.error_ratio * (
            self._ok + self._failed
        ):
            await self.trip(config.open_seconds)

    async def record_neutral(self, admission: Admission) -> None:
        """The attempt ended without saying anything about the upstream (cancelled, out of time)."""
        if admission.verdict is Verdict.PROBE:
            await self._store.release_probe(self.key)

    async def trip(self, seconds: float) -> None:
        """Open now for ``seconds``; the window starts afresh."""
        self._buckets.clear()
        self._ok = self._failed = 0
        admission = await self._store.trip(self.key, seconds)
        self._publish(admission.state)

    def _count(self, *, ok: bool) -> None:
        now = self._clock()
        buckets = self._buckets
        horizon = now - self._config.window
        while buckets and buckets[0][0] <= horizon:
            _, old_ok, old_failed = buckets.popleft()
            self._ok -= int(old_ok)
            self._failed -= int(old_failed)
        if not buckets or now - buckets[-1][0] >= self._width:
            buckets.append([now, 0, 0])
        if ok:
            buckets[-1][1] += 1
            self._ok += 1
        else:
            buckets[-1][2] += 1
            self._failed += 1

    def _publish(self, state: State) -> None:
        if self._on_state is not None:
            self._on_state(state)
