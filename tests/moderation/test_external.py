"""The external moderation hook: its verdicts, and what happens when it fails or is slow."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from kefu.moderation import ExternalModeration
from kefu.moderation.external import UNAVAILABLE
from kefu.obs.metrics import Metrics


def endpoint(handler: httpx.MockTransport, **kwargs: object) -> ExternalModeration:
    return ExternalModeration("http://moderation.test/check", timeout=0.5, transport=handler, **kwargs)  # type: ignore[arg-type]


async def test_a_block_verdict_is_passed_on_with_its_reply() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"action": "block", "category": "politics", "reply": "换个话题吧。"})

    metrics = Metrics()
    hook = endpoint(httpx.MockTransport(answer), api_key="secret", metrics=metrics)
    verdict = await hook.check("一段文字", where="input")
    await hook.aclose()
    assert verdict.action == "block" and verdict.mark == "block:politics" and verdict.reply == "换个话题吧。"
    assert json.loads(seen[0].content) == {"text": "一段文字", "where": "input"}
    assert seen[0].headers["authorization"] == "Bearer secret"
    assert metrics.moderation_external.labels(result="block")._value.get() == 1


@pytest.mark.parametrize(
    ("answer", "action", "text", "reply"),
    [
        ({"action": "allow"}, "allow", "加我 vx", None),
        ({"action": "flag", "category": "ads"}, "flag", "加我 vx", None),
        ({"action": "mask", "category": "abuse"}, "mask", "** **", None),  # no positions: the whole message
        ({"action": "block"}, "block", "加我 vx", "默认。"),  # no reply: the lexicon's default reply
    ],
)
async def test_each_action(answer: dict[str, str], action: str, text: str, reply: str | None) -> None:
    hook = endpoint(httpx.MockTransport(lambda _: httpx.Response(200, json=answer)), default_reply="默认。")
    verdict = await hook.check("加我 vx", where="input")
    await hook.aclose()
    assert (verdict.action, verdict.text, verdict.reply) == (action, text, reply)
    assert verdict.mark == (None if action == "allow" else f"{action}:{answer.get('category', 'external')}")


@pytest.mark.parametrize(
    "response",
    [httpx.Response(500), httpx.Response(200, json={"action": "explode"}), httpx.Response(200, text="not json")],
)
@pytest.mark.parametrize("on_error", ["allow", "block"])
async def test_a_failing_endpoint_applies_on_error(response: httpx.Response, on_error: str) -> None:
    metrics = Metrics()
    hook = endpoint(httpx.MockTransport(lambda _: response), on_error=on_error, metrics=metrics)
    verdict = await hook.check("x", where="input")
    await hook.aclose()
    assert verdict.action == on_error
    assert verdict.mark == (None if on_error == "allow" else f"block:{UNAVAILABLE}")
    assert metrics.moderation_external.labels(result="error")._value.get() == 1


async def test_a_slow_endpoint_is_given_up_on_after_the_timeout() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json={"action": "allow"})

    hook = ExternalModeration(
        "http://moderation.test/check", timeout=0.2, on_error="block", transport=httpx.MockTransport(slow)
    )
    started = time.perf_counter()
    verdict = await hook.check("x", where="input")
    await hook.aclose()
    assert verdict.action == "block" and time.perf_counter() - started < 1.5


async def test_an_unreachable_endpoint_applies_on_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    hook = endpoint(httpx.MockTransport(refuse), on_error="block")
    assert (await hook.check("x", where="input")).action == "block"
    await hook.aclose()
