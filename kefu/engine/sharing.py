"""Share model answers between identical impersonal questions: single-flight plus an answer cache.

At a sales peak thousands of shoppers ask the same first question ("什么时候发货？"). Identical first-turn
questions (normalised text, same bot and knowledge-base version, no history, nothing personal in them) that
arrive together share one upstream call — a *flight* that runs on its own, so one shopper cancelling does
not break the others — and its finished answer is replayed for repeats within a TTL.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import unicodedata
from collections.abc import AsyncIterator, Callable

from kefu.errors import UpstreamProtocolError
from kefu.llm.base import Finish, ModelEvent, TextDelta, Usage
from kefu.obs.logging import get_logger, mask_pii
from kefu.obs.metrics import Metrics
from kefu.store.cache import AnswerCache, CachedAnswer

log = get_logger("kefu.sharing")

_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)
# Order numbers, tracking numbers and the like make a question personal even when no PII pattern matches.
_LONG_DIGITS = re.compile(r"\d{5,}")


def normalise(text: str) -> str:
    """Case, width and punctuation folded away: "什么时候发货？" == "什么时候 发货?"."""
    return _NOISE.sub("", unicodedata.normalize("NFKC", text).casefold())


def is_personal(text: str) -> bool:
    """True when the question carries personal data (phone, ID, card, e-mail, long numbers)."""
    return mask_pii(text) != text or bool(_LONG_DIGITS.search(text))


class Flight:
    """One upstream stream fanned out to every turn asking the same question."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.finish: Finish | None = None
        self.usage: Usage | None = None
        self.error: BaseException | None = None
        self.done = False
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self, stream: AsyncIterator[ModelEvent], on_done: Callable[[Flight], None]) -> None:
        """Consume ``stream`` in a task of its own."""
        self._task = asyncio.create_task(self._run(stream, on_done))

    async def _run(self, stream: AsyncIterator[ModelEvent], on_done: Callable[[Flight], None]) -> None:
        try:
            async for event in stream:
                if isinstance(event, TextDelta):
                    self.pieces.append(event.text)
                    self._wake()
                elif isinstance(event, Usage):
                    self.usage = event
                elif isinstance(event, Finish):
                    self.finish = event
        except BaseException as exc:  # followers re-raise it; the flight itself must not crash silently
            self.error = exc
        finally:
            self.done = True
            self._wake()
            on_done(self)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self) -> AsyncIterator[str]:
        """Every text piece from the start, then live ones; raises the upstream's error if it failed."""
        seen = 0
        while True:
            changed = self._changed
            while seen < len(self.pieces):
                yield self.pieces[seen]
                seen += 1
            if self.done:
                break
            await changed.wait()
        if self.error is not None:
            if isinstance(self.error, Exception):
                raise self.error
            raise UpstreamProtocolError("the shared upstream stream was cancelled")


class SharedAnswers:
    """The single-flight table of this process plus the (possibly shared) answer cache."""

    def __init__(self, cache: AnswerCache, *, ttl: int, metrics: Metrics) -> None:
        self._cache = cache
        self._ttl = ttl
        self._metrics = metrics
        self._flights: dict[str, Flight] = {}
        self._pending: set[asyncio.Task[None]] = set()

    @staticmethod
    def key(text: str, version: str) -> str | None:
        """The cache key for ``text`` under content ``version``, or None if the question must not be shared."""
        if is_personal(text):
            return None
        norm = normalise(text)
        if not norm:
            return None
        return hashlib.sha256(f"{version}\0{norm}".encode()).hexdigest()

    async def cached(self, key: str) -> CachedAnswer | None:
        """A cached answer for ``key`` (counted as a hit or a miss)."""
        answer = await self._cache.get(key)
        self._metrics.answer_cache.labels(result="hit" if answer else "miss").inc()
        return answer

    def join(
        self,
        key: str,
        open_stream: Callable[[], AsyncIterator[ModelEvent]],
        *,
        source: str,
        sources: tuple[tuple[str, str], ...] = (),
    ) -> tuple[Flight, bool]:
        """The flight for ``key`` and whether this call started it (with ``open_stream()``)."""
        flight = self._flights.get(key)
        if flight is not None:
            self._metrics.answer_cache.labels(result="joined").inc()
            return flight, False
        flight = Flight()
        self._flights[key] = flight

        def landed(done: Flight) -> None:
            self._flights.pop(key, None)
            if done.error is None and done.finish is not None and done.finish.reason == "stop" and done.pieces:
                answer = CachedAnswer(
                    text="".join(done.pieces), model=done.finish.model, source=source, sources=sources
                )
                task = asyncio.get_running_loop().create_task(self._store(key, answer))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

        flight.start(open_stream(), landed)
        return flight, True

    async def _store(self, key: str, answer: CachedAnswer) -> None:
        try:
            await self._cache.put(key, answer, self._ttl)
        except Exception as exc:  # a cache that is down only costs us the next hit
            log.warning("answer_cache_put_failed", error=repr(exc))
