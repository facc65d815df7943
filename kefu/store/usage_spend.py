"""Today's model spend, shared by every replica: the counter the daily budget reads.

With Redis one integer key per day and currency (``INCRBY`` of nano-units, exact, with a TTL of two days, one
round trip per call); without Redis the process's own memory (a single process: ``--workers`` needs Redis),
started from the day's sum in the SQL ledger so a restart does not forget what was spent.
"""

from __future__ import annotations

from typing import Protocol

from redis.asyncio import Redis

_TTL_SECONDS = 2 * 86400  # a day's key outlives the day everywhere on earth, then goes


class SpendCounter(Protocol):
    """Spend per day (``YYYY-MM-DD``, UTC) and currency, in nano-units."""

    async def add(self, day: str, currency: str, nano: int) -> int:
        """Add ``nano`` to the day's spend; returns the new total."""
        ...

    async def total(self, day: str, currency: str) -> int:
        """The day's spend so far."""
        ...

    async def aclose(self) -> None:
        """Release what the counter holds."""
        ...


class MemorySpend:
    """:class:`SpendCounter` in this process's memory (days other than the newest are dropped)."""

    def __init__(self) -> None:
        self._totals: dict[tuple[str, str], int] = {}

    def seed(self, day: str, currency: str, nano: int) -> None:
        """Start the day's total at ``nano`` (the ledger's sum at start-up) unless it is already counted."""
        self._totals.setdefault((day, currency), nano)

    async def add(self, day: str, currency: str, nano: int) -> int:
        if any(d != day for d, _ in self._totals):
            self._totals = {k: v for k, v in self._totals.items() if k[0] >= day}
        total = self._totals.get((day, currency), 0) + nano
        self._totals[(day, currency)] = total
        return total

    async def total(self, day: str, currency: str) -> int:
        return self._totals.get((day, currency), 0)

    async def aclose(self) -> None:
        return None


class RedisSpend:
    """:class:`SpendCounter` in Redis (``<prefix>:spend:<day>:<currency>``); the client stays the caller's."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _key(self, day: str, currency: str) -> str:
        return f"{self._prefix}:spend:{day}:{currency}"

    async def add(self, day: str, currency: str, nano: int) -> int:
        key = self._key(day, currency)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(key, nano)
            pipe.expire(key, _TTL_SECONDS)
            total, _ = await pipe.execute()
        return int(total)

    async def total(self, day: str, currency: str) -> int:
        value = await self._redis.get(self._key(day, currency))
        return int(value) if value is not None else 0

    async def aclose(self) -> None:
        return None
