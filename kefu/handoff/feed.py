"""Wake-ups for readers of conversation feeds and the desk queue, on every replica.

The feed itself is durable (SQL, :mod:`kefu.store.desk`); this only tells waiting readers that something new is
there (and carries live-only signals such as "the agent is typing"). With Redis, one pub/sub connection per process
(pattern-subscribed) fans messages out to local subscribers; without it, everything is in process memory.

A reader subscribes *before* it reads the durable feed, so a message published between its read and its wait
still wakes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from redis.asyncio import Redis

from kefu.obs.logging import get_logger

log = get_logger("kefu.feed")

_QUEUE_LIMIT = 64  # payloads kept per slow subscriber; beyond that only "something changed" matters


class Subscription:
    """Payloads published on one topic since the last :meth:`next`."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue(_QUEUE_LIMIT)

    def put(self, payload: str) -> None:
        """Deliver ``payload`` (drops the oldest when the subscriber is far behind: a wake-up is not lost)."""
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(payload)

    async def next(self, timeout: float) -> list[str]:
        """Every payload received so far, waiting up to ``timeout`` seconds for the first; [] on timeout."""
        if self._queue.empty():
            try:
                async with asyncio.timeout(timeout):
                    first = await self._queue.get()
            except TimeoutError:
                return []
        else:
            first = self._queue.get_nowait()
        payloads = [first]
        while not self._queue.empty():
            payloads.append(self._queue.get_nowait())
        return payloads


class FeedHub(Protocol):
    """Publish and subscribe by topic (``session:<id>``, ``desk``)."""

    async def publish(self, topic: str, payload: str = "") -> None:
        """Wake every subscriber of ``topic`` on every replica."""
        ...

    def subscribe(self, topic: str) -> contextlib.AbstractAsyncContextManager[Subscription]:
        """Receive what is published on ``topic`` while the context is open."""
        ...

    async def aclose(self) -> None:
        """Stop listening."""
        ...


class _LocalTopics:
    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}

    def deliver(self, topic: str, payload: str) -> None:
        for sub in self._subs.get(topic, ()):
            sub.put(payload)

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        sub = Subscription()
        self._subs.setdefault(topic, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._subs.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[topic]


class MemoryFeedHub:
    """One process: publishing delivers to local subscribers."""

    def __init__(self) -> None:
        self._topics = _LocalTopics()

    async def publish(self, topic: str, payload: str = "") -> None:
        self._topics.deliver(topic, payload)

    def subscribe(self, topic: str) -> contextlib.AbstractAsyncContextManager[Subscription]:
        return self._topics.subscribe(topic)

    async def aclose(self) -> None:
        return None


class RedisFeedHub:
    """Every replica: ``PUBLISH {prefix}:feed:<topic>``; one ``PSUBSCRIBE {prefix}:feed:*`` per process.

    Pub/sub is fire-and-forget: a replica that misses a message (Redis restart) still finds the events in SQL when
    its readers' heartbeat timeout makes them look again.
    """

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._channel = f"{prefix}:feed:"
        self._topics = _LocalTopics()
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def publish(self, topic: str, payload: str = "") -> None:
        await self._redis.publish(self._channel + topic, payload)

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="feed-listener")
        async with self._topics.subscribe(topic) as sub:
            # Wait (briefly) until the pattern subscription is live, so nothing published after this returns is
            # missed; if Redis is slow the reader's periodic re-read still finds it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._ready.wait()
            yield sub

    async def _listen(self) -> None:
        prefix_len = len(self._channel)
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self._channel + "*")
                self._ready.set()
                async for message in pubsub.listen():
                    channel, data = message["channel"], message["data"]
                    topic = (channel.decode() if isinstance(channel, bytes) else str(channel))[prefix_len:]
                    self._topics.deliver(topic, data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarted or the connection broke: listen again
                self._ready.clear()
                log.warning("feed_listener_failed", error=repr(exc))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener


class MemoryPresence:
    """Which agents have the desk open, in this process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}

    async def touch(self, agent_id: str, ttl: float) -> None:
        self._until[agent_id] = self._clock() + ttl

    async def online(self) -> set[str]:
        now = self._clock()
        for agent_id in [a for a, until in self._until.items() if until <= now]:
            del self._until[agent_id]
        return set(self._until)


class RedisPresence:
    """Which agents have the desk open, on any replica: a sorted set of agent ids scored by expiry time."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._key = f"{prefix}:desk:online"

    async def touch(self, agent_id: str, ttl: float) -> None:
        now = time.time()
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(self._key, {agent_id: now + ttl})
        pipe.zremrangebyscore(self._key, "-inf", now)
        await pipe.execute()

    async def online(self) -> set[str]:
        members = await self._redis.zrangebyscore(self._key, time.time(), "+inf")
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}
