"""Where circuit-breaker state lives: process memory, or Redis so every replica sees the same state.

The state machine (per upstream key)::

    closed ──trip──▶ open ──(open period over, next admit)──▶ half-open ──reset──▶ closed
                      ▲                                          │
                      └──────────────trip (a probe failed)───────┘

Only transitions are stored; the error-ratio window that decides to trip is kept per process (see
:mod:`kefu.llm.resilience.breaker`), so a healthy upstream costs no store round trip per request.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class State(enum.IntEnum):
    """Breaker state; the value is what the ``kefu_upstream_breaker_state`` gauge shows."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class Verdict(enum.IntEnum):
    """May a request go to the upstream now?"""

    DENIED = 0
    ALLOWED = 1
    PROBE = 2  # allowed as one of the few half-open test requests; its outcome closes or re-opens the breaker


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer of :meth:`BreakerStore.admit`: the verdict, the state seen and, when open, seconds left."""

    verdict: Verdict
    state: State
    retry_in: float = 0.0

    @property
    def allowed(self) -> bool:
        """True if the request may go ahead (normally or as a probe)."""
        return self.verdict is not Verdict.DENIED


CLOSED = Admission(Verdict.ALLOWED, State.CLOSED)


class BreakerStore(Protocol):
    """Shared breaker state. Every method is one round trip at most; implementations never raise on outages."""

    async def admit(self, key: str, *, max_probes: int, probe_lease: float) -> Admission:
        """Closed: allow. Open and not yet due: deny. Otherwise grant a half-open probe while fewer than
        ``max_probes`` are out (a probe not reported within ``probe_lease`` seconds is forgotten)."""
        ...

    async def trip(self, key: str, seconds: float) -> Admission:
        """Open the breaker for ``seconds`` (keeping a later end if it is already open longer)."""
        ...

    async def reset(self, key: str) -> None:
        """A probe succeeded: close the breaker (only if it is half-open)."""
        ...

    async def release_probe(self, key: str) -> None:
        """A probe ended without a verdict (cancelled, or the turn ran out of time): free its slot."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@dataclass(slots=True)
class _Entry:
    state: State
    until: float = 0.0
    probes: int = 0
    probe_until: float = 0.0


class MemoryBreakerStore:
    """Breaker state in this process only (no Redis configured)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    async def admit(self, key: str, *, max_probes: int, probe_lease: float) -> Admission:
        """See :meth:`BreakerStore.admit`."""
        entry = self._entries.get(key)
        if entry is None:
            return CLOSED
        now = self._clock()
        if entry.state is State.OPEN:
            if now < entry.until:
                return Admission(Verdict.DENIED, State.OPEN, entry.until - now)
            entry.state, entry.probes = State.HALF_OPEN, 0
        if now > entry.probe_until:
            entry.probes = 0  # the probes out there were lost (their process died or forgot to report)
        if entry.probes >= max_probes:
            return Admission(Verdict.DENIED, State.HALF_OPEN)
        entry.probes += 1
        entry.probe_until = now + probe_lease
        return Admission(Verdict.PROBE, State.HALF_OPEN)

    async def trip(self, key: str, seconds: float) -> Admission:
        """See :meth:`BreakerStore.trip`."""
        now = self._clock()
        entry = self._entries.get(key)
        until = now + seconds
        if entry is not None and entry.state is State.OPEN and entry.until > until:
            until = entry.until
        self._entries[key] = _Entry(State.OPEN, until)
        return Admission(Verdict.DENIED, State.OPEN, until - now)

    async def reset(self, key: str) -> None:
        """See :meth:`BreakerStore.reset`."""
        entry = self._entries.get(key)
        if entry is not None and entry.state is State.HALF_OPEN:
            del self._entries[key]

    async def release_probe(self, key: str) -> None:
        """See :meth:`BreakerStore.release_probe`."""
        entry = self._entries.get(key)
        if entry is not None and entry.state is State.HALF_OPEN and entry.probes > 0:
            entry.probes -= 1

    async def aclose(self) -> None:
        """Nothing to release."""
