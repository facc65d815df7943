""":class:`RedisBreakerStore`: circuit-breaker state shared by every replica through Redis.

One hash per upstream, ``{prefix}:breaker:{<sha1 of the key>}`` (one key per script, so Redis Cluster is fine),
fields ``k`` (the readable upstream key), ``s`` (state), ``u`` (open until, ms), ``p`` (probes out), ``pu``
(probe lease end, ms). Times come from Redis' own clock (``TIME`` inside the scripts), so replicas with skewed
clocks agree. Each call is one script run; the answer is cached locally for ``cache_ttl`` seconds, so a closed
breaker costs about one round trip per upstream per second, not one per request. If Redis fails, the store
falls back to process memory (logged, at most every 30 s) instead of failing turns.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from kefu.llm.resilience.store import CLOSED, Admission, MemoryBreakerStore, State, Verdict
from kefu.obs.logging import get_logger

log = get_logger("kefu.llm.breaker")

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS hash. ARGV max_probes, probe_lease_ms, keep_ms, readable key. Returns {state, verdict, retry_in_ms}.
_ADMIT = (
    _NOW
    + """
local h = redis.call('HMGET', KEYS[1], 's', 'u', 'p', 'pu')
if not h[1] then return {0, 1, 0} end
local state = tonumber(h[1])
local probes = tonumber(h[3]) or 0
local lease_end = tonumber(h[4]) or 0
if state == 2 then
  local u = tonumber(h[2])
  if now < u then return {2, 0, u - now} end
  probes = 0
end
if now > lease_end then probes = 0 end
if probes >= tonumber(ARGV[1]) then return {1, 0, 0} end
redis.call('HSET', KEYS[1], 's', 1, 'p', probes + 1, 'pu', now + tonumber(ARGV[2]), 'k', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, 2, 0}
"""
)

# KEYS hash. ARGV open_ms, keep_ms, readable key. Returns ms until the breaker may half-open.
_TRIP = (
    _NOW
    + """
local h = redis.call('HMGET', KEYS[1], 's', 'u')
local u = now + tonumber(ARGV[1])
if h[1] == '2' and tonumber(h[2]) > u then u = tonumber(h[2]) end
redis.call('HSET', KEYS[1], 's', 2, 'u', u, 'p', 0, 'pu', 0, 'k', ARGV[3])
redis.call('PEXPIRE', KEYS[1], u - now + tonumber(ARGV[2]))
return u - now
"""
)

_RESET = """
if redis.call('HGET', KEYS[1], 's') == '1' then redis.call('DEL', KEYS[1]) end
return 0
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 's') == '1' and (tonumber(redis.call('HGET', KEYS[1], 'p')) or 0) > 0 then
  redis.call('HINCRBY', KEYS[1], 'p', -1)
end
return 0
"""

# A half-open hash nobody touches for this long is dropped (the breaker counts as closed again).
_KEEP_MS = 600_000
_OUTAGE_LOG_INTERVAL = 30.0
# While half-open (probes out), other requests are denied; re-ask Redis this often, not on every request.
_HALF_OPEN_CACHE = 0.1


@dataclass(slots=True)
class _Cached:
    state: State
    until: float  # local monotonic time the open period ends
    at: float


class RedisBreakerStore:
    """A :class:`~kefu.llm.resilience.store.BreakerStore` in Redis, shared across processes."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        cache_ttl: float = 1.0,
        owns_client: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._cache_ttl = cache_ttl
        self._owns = owns_client
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._local = MemoryBreakerStore(clock)
        self._logged_outage = -_OUTAGE_LOG_INTERVAL
        self._admit = redis.register_script(_ADMIT)
        self._trip = redis.register_script(_TRIP)
        self._reset = redis.register_script(_RESET)
        self._release = redis.register_script(_RELEASE)

    @classmethod
    def from_url(cls, url: str, prefix: str, *, cache_ttl: float = 1.0) -> RedisBreakerStore:
        """A store with its own small connection pool; short timeouts, since a turn must not wait on it."""
        client: Redis = Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5, max_connections=64)
        return cls(client, prefix, cache_ttl=cache_ttl)

    def redis_key(self, key: str) -> str:
        """The Redis key holding ``key``'s state."""
        digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:16]
        return f"{self._prefix}:breaker:{{{digest}}}"

    async def admit(self, key: str, *, max_probes: int, probe_lease: float) -> Admission:
        """See :meth:`BreakerStore.admit`; a fresh cached closed/open answer skips Redis."""
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and now - cached.at < self._cache_ttl:
            if cached.state is State.CLOSED:
                return CLOSED
            if cached.state is State.OPEN and now < cached.until:
                return Admission(Verdict.DENIED, State.OPEN, cached.until - now)
            if cached.state is State.HALF_OPEN and now - cached.at < _HALF_OPEN_CACHE:
                return Admission(Verdict.DENIED, State.HALF_OPEN)
        try:
            reply = await self._admit(
                keys=[self.redis_key(key)], args=[max_probes, int(probe_lease * 1000), _KEEP_MS, key]
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self._outage(exc)
            return await self._local.admit(key, max_probes=max_probes, probe_lease=probe_lease)
        state, verdict, retry_ms = (int(v) for v in reply)
        admission = Admission(Verdict(verdict), State(state), retry_ms / 1000)
        if admission.verdict is not Verdict.PROBE:
            self._cache[key] = _Cached(admission.state, now + admission.retry_in, now)
        else:
            self._cache.pop(key, None)  # others must ask Redis for the remaining probe slots
        return admission

    async def trip(self, key: str, seconds: float) -> Admission:
        """See :meth:`BreakerStore.trip`."""
        now = self._clock()
        try:
            remaining_ms = await self._trip(keys=[self.redis_key(key)], args=[int(seconds * 1000), _KEEP_MS, key])
        except (RedisError, OSError, TimeoutError) as exc:
            self._outage(exc)
            return await self._local.trip(key, seconds)
        remaining = int(remaining_ms) / 1000
        self._cache[key] = _Cached(State.OPEN, now + remaining, now)
        return Admission(Verdict.DENIED, State.OPEN, remaining)

    async def reset(self, key: str) -> None:
        """See :meth:`BreakerStore.reset`."""
        await self._call(self._reset, key)
        await self._local.reset(key)
        self._cache[key] = _Cached(State.CLOSED, 0.0, self._clock())

    async def release_probe(self, key: str) -> None:
        """See :meth:`BreakerStore.release_probe`."""
        await self._call(self._release, key)
        await self._local.release_probe(key)
        self._cache.pop(key, None)

    async def aclose(self) -> None:
        """Close the connection pool if this store created it."""
        if self._owns:
            await self._redis.aclose()

    async def _call(self, script: Any, key: str) -> None:
        try:
            await script(keys=[self.redis_key(key)], args=[])
        except (RedisError, OSError, TimeoutError) as exc:
            self._outage(exc)

    def _outage(self, exc: BaseException) -> None:
        now = self._clock()
        if now - self._logged_outage >= _OUTAGE_LOG_INTERVAL:
            self._logged_outage = now
            log.warning("breaker_store_unavailable", error=repr(exc), fallback="process memory")
