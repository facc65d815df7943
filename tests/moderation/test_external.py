"""The external moderation hook: its verdicts, and what happens when it fails."""

from __future__ import annotations

import httpx
import pytest

from kefu.moderation import ExternalModeration


def endpoint(handler: httpx.MockTransport) -> ExternalModeration:
    return ExternalModeration("http://moderation.test/check", timeout=0.5, transport=handler)


async def test_a_block_verdict_is_passed_on() -> None:
    seen: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(200, json={"action": "block", "category": "politics"})

    hook = endpoint(httpx.MockTransport(answer))
    verdict = await hook.check("一段文字", where="input")
    await hook.aclose()
    assert verdict.action == "block" and verdict.mark == "block:politics"
    assert b'"where":"input"' in seen[0].replace(b" ", b"")


@pytest.mark.parametrize(
    "response",
    [httpx.Response(500), httpx.Response(200, json={"action": "explode"}), httpx.Response(200, text="not json")],
)
@pytest.mark.parametrize("on_error", ["allow", "block"])
async def test_a_failing_endpoint_applies_on_error(response: httpx.Response, on_error: str) -> None:
    hook = ExternalModeration(
        "http://moderation.test/check",
        on_error=on_error,  # type: ignore[arg-type]
        transport=httpx.MockTransport(lambda _: response),
    )
    verdict = await hook.check("x", where="input")
    await hook.aclose()
    assert verdict.action == on_error


async def test_an_unreachable_endpoint_applies_on_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    hook = ExternalModeration("http://moderation.test/check", on_error="block", transport=httpx.MockTransport(refuse))
    assert (await hook.check("x", where="input")).action == "block"
    await hook.aclose()
