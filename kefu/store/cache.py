"""The answer cache: finished model answers to impersonal first-turn questions, kept for a TTL.

In process memory (single process) or in Redis (shared by every replica). Keys are opaque digests built by the
engine; the bot and knowledge-base version are part of them, so a content change invalidates old answers.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import orjson
from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A complete answer as the model gave it."""

    text: str
    model: str | None
    source: str
    sources: tuple[tuple[str, str], ...] = ()


class AnswerCache(Protocol):
    """Get and put cached answers."""

    async def get(self, key: str) -> CachedAnswer | None:
        """The answer stored under ``key``, or None."""
        ...

    async def put(self, key: str, answer: CachedAnswer, ttl: int) -> None:
        """Store ``answer`` under ``key`` for ``ttl`` seconds."""
        ...


class MemoryAnswerCache:
    """A bounded LRU with per-entry expiry."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._max = max_entries
        self._items: OrderedDict[str, tuple[float, CachedAnswer]] = OrderedDict()

    async def get(self, key: str) -> CachedAnswer | None:
        """The live entry under ``key``."""
        item = self._items.get(key)
        if item is None:
            return None
        expires, answer = item
        if expires < time.monotonic():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return answer

    async def put(self, key: str, answer: CachedAnswer, ttl: int) -> None:
        """Store, evicting the least recently used entry when full."""
        self._items[key] = (time.monotonic() + ttl, answer)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)


class RedisAnswerCache:
    """Answers as JSON strings under ``<prefix>:answer:<key>`` with a Redis TTL."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self._client = client
        self._prefix = f"{prefix}:answer:"

    async def get(self, key: str) -> CachedAnswer | None:
        """One GET."""
        raw = await self._client.get(self._prefix + key)
        if raw is None:
            return None
        data = orjson.loads(raw)
        return CachedAnswer(
            text=data["text"],
            model=data["model"],
            source=data["source"],
            sources=tuple((s[0], s[1]) for s in data.get("sources", ())),
        )

    async def put(self, key: str, answer: CachedAnswer, ttl: int) -> None:
        """One SET with EX."""
        payload = orjson.dumps(
            {"text": answer.text, "model": answer.model, "source": answer.source, "sources": answer.sources}
        )
        await self._client.set(self._prefix + key, payload, ex=ttl)
