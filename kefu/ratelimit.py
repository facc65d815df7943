"""Rate limits for abuse and fairness: per end user, per API key and per client IP; and two of their own:
demo visitor tokens minted per client IP, turn resumes per end user.

Built on the ``limits`` library (sliding-window counters). With Redis configured the counters live in Redis so
every replica enforces the same budget; otherwise in process memory.
"""

from __future__ import annotations

import hashlib
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from kefu.config import Settings
from kefu.errors import ConfigError, RateLimited
from kefu.identity import Identity
from kefu.obs.metrics import Metrics


def _parse(name: str, value: str) -> RateLimitItem | None:
    if not value.strip() or value.strip().lower() in ("0", "off", "none"):
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise ConfigError(f"{name}={value!r} is not a rate limit like '20/minute' or '5/second': {exc}") from exc


class RateLimiter:
    """Checks every limit that applies to a request; raises :class:`RateLimited` with ``Retry-After``."""

    def __init__(
        self,
        storage: Storage,
        *,
        per_user: RateLimitItem | None,
        per_api_key: RateLimitItem | None,
        per_ip: RateLimitItem | None,
        metrics: Metrics,
        visitor_tokens_per_ip: RateLimitItem | None = None,
        resumes_per_user: RateLimitItem | None = None,
        prefix: str = "kefu",
    ) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._storage = storage
        self._per_user = per_user
        self._per_api_key = per_api_key
        self._per_ip = per_ip
        self._visitor_tokens_per_ip = visitor_tokens_per_ip
        self._resumes_per_user = resumes_per_user
        self._metrics = metrics
        self._prefix = prefix

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics) -> RateLimiter:
        """Memory or Redis storage and the three configured limits."""
        storage: Storage
        if settings.redis_url:
            storage = RedisStorage(
                "async+" + settings.redis_url, implementation="redispy", key_prefix=f"{settings.redis_prefix}:rl"
            )
        else:
            storage = MemoryStorage()
        return cls(
            storage,
            per_user=_parse("KEFU_RATE_LIMIT_USER", settings.rate_limit_user),
            per_api_key=_parse("KEFU_RATE_LIMIT_API_KEY", settings.rate_limit_api_key),
            per_ip=_parse("KEFU_RATE_LIMIT_IP", settings.rate_limit_ip),
            visitor_tokens_per_ip=_parse("KEFU_RATE_LIMIT_VISITOR_TOKENS", settings.rate_limit_visitor_tokens),
            resumes_per_user=_parse("KEFU_RATE_LIMIT_RESUME", settings.rate_limit_resume),
            metrics=metrics,
            prefix=settings.redis_prefix,
        )

    async def check(self, identity: Identity, *, client_ip: str | None, api_key: str | None = None) -> None:
        """Count one request against every applicable limit, or raise :class:`RateLimited`."""
        checks: list[tuple[str, RateLimitItem, str]] = []
        if identity.kind == "server" and api_key and self._per_api_key is not None:
            # The key itself never goes into storage keys: only a digest of it.
            digest = hashlib.sha256(api_key.encode()).hexdigest()[:16]
            checks.append(("api_key", self._per_api_key, digest))
        if self._per_user is not None:
            checks.append(("user", self._per_user, identity.user_id))
        if client_ip and self._per_ip is not None:
            checks.append(("ip", self._per_ip, client_ip))
        await self._hit(checks)

    async def check_visitor_token(self, client_ip: str | None) -> None:
        """Count one minted demo visitor token against the client IP, or raise :class:`RateLimited`."""
        if client_ip and self._visitor_tokens_per_ip is not None:
            await self._hit([("visitor_token", self._visitor_tokens_per_ip, client_ip)])

    async def check_resume(self, identity: Identity) -> None:
        """Count one resume of a turn's events against the user, or raise :class:`RateLimited`."""
        if self._resumes_per_user is not None:
            await self._hit([("resume", self._resumes_per_user, identity.user_id)])

    async def _hit(self, checks: list[tuple[str, RateLimitItem, str]]) -> None:
        for scope, item, who in checks:
            if not await self._limiter.hit(item, scope, who):
                stats = await self._limiter.get_window_stats(item, scope, who)
                retry_after = max(1.0, math.ceil(stats.reset_time - time.time()))
                self._metrics.rate_limited.labels(scope=scope).inc()
                raise RateLimited(
                    f"too many requests ({scope} limit {item}); try again in {int(retry_after)} s",
                    retry_after=retry_after,
                )

    async def ping(self) -> bool:
        """True if the counter storage answers."""
        return bool(await self._storage.check())
