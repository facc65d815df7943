import asyncio
from collections.abc import AsyncIterator

import pytest

from kefu.engine.sharing import Flight, SharedAnswers, is_personal, normalise
from kefu.errors import UpstreamProtocolError
from kefu.llm.base import Finish, ModelEvent, TextDelta
from kefu.obs.metrics import Metrics
from kefu.store.cache import CachedAnswer, MemoryAnswerCache


def test_normalise_folds_width_case_and_punctuation() -> None:
    assert normalise("什么时候发货？") == normalise(" 什么时候 发货?") == normalise("什么时候发货")
    assert normalise("ＡＢＣ Shipping!") == "abcshipping"


@pytest.mark.parametrize(
    "text", ["我的手机 13800138000", "订单 202611220001 到哪了", "身份证11010519491231002X", "a@b.com 的账号"]
)
def test_is_personal_detects_personal_data(text: str) -> None:
    assert is_personal(text)


def test_is_personal_lets_generic_questions_through() -> None:
    assert not is_personal("运费多少钱？7天无理由退货吗")


def test_shared_answers_key_depends_on_version_and_skips_personal() -> None:
    a = SharedAnswers.key("什么时候发货？", "v1")
    assert a == SharedAnswers.key("什么时候发货", "v1")
    assert a != SharedAnswers.key("什么时候发货？", "v2")
    assert SharedAnswers.key("我的手机 13800138000 什么时候发货", "v1") is None
    assert SharedAnswers.key("？？？", "v1") is None


async def _stream(pieces: list[str], gate: asyncio.Event, fail: bool = False) -> AsyncIterator[ModelEvent]:
    for i, piece in enumerate(pieces):
        if i == 1:
            await gate.wait()
        yield TextDelta(piece)
    if fail:
        raise UpstreamProtocolError("cut")
    yield Finish(reason="stop", model="m1")


async def _collect(flight: Flight) -> str:
    return "".join([p async for p in flight.follow()])


async def test_shared_answers_joins_flight_and_caches_result() -> None:
    metrics = Metrics()
    cache = MemoryAnswerCache()
    shared = SharedAnswers(cache, ttl=60, metrics=metrics)
    gate = asyncio.Event()
    opened = 0

    def open_stream() -> AsyncIterator[ModelEvent]:
        nonlocal opened
        opened += 1
        return _stream(["a", "b", "c"], gate)

    first, leader = shared.join("k", open_stream, source="llm")
    await asyncio.sleep(0)
    followers = [shared.join("k", open_stream, source="llm") for _ in range(49)]
    assert leader and not any(f[1] for f in followers)
    tasks = [asyncio.create_task(_collect(f)) for f, _ in [(first, True), *followers]]
    gate.set()
    results = await asyncio.gather(*tasks)
    assert opened == 1
    assert set(results) == {"abc"}
    await asyncio.sleep(0.01)  # the cache write runs after the flight lands
    assert await shared.cached("k") == CachedAnswer(text="abc", model="m1", source="llm")


async def test_flight_failure_reaches_every_follower_and_is_not_cached() -> None:
    shared = SharedAnswers(MemoryAnswerCache(), ttl=60, metrics=Metrics())
    gate = asyncio.Event()
    flight, _ = shared.join("k", lambda: _stream(["a", "b"], gate, fail=True), source="llm")
    gate.set()
    with pytest.raises(UpstreamProtocolError):
        await _collect(flight)
    await asyncio.sleep(0.01)
    assert await shared.cached("k") is None


async def test_memory_answer_cache_expires_and_evicts() -> None:
    cache = MemoryAnswerCache(max_entries=2)
    answer = CachedAnswer(text="x", model=None, source="llm")
    await cache.put("a", answer, ttl=60)
    await cache.put("b", answer, ttl=60)
    await cache.put("c", answer, ttl=60)
    assert await cache.get("a") is None and await cache.get("c") == answer
    await cache.put("d", answer, ttl=0)
    await asyncio.sleep(0.01)
    assert await cache.get("d") is None
