"""The mock upstream's server-wide concurrency cap (``kefu mock-llm --max-concurrency``)."""

from __future__ import annotations

import asyncio

import httpx
import typer
from typer.testing import CliRunner

from kefu.cli.mock import mock_llm
from tests.llm.conftest import Upstream, start_upstream


def _body(text: str = "你好") -> dict[str, object]:
    return {"model": "m", "stream": True, "messages": [{"role": "user", "content": text}]}


async def _fire(url: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=5) as client:
        return await asyncio.gather(*(client.post(url + "/v1/chat/completions", json=_body()) for _ in range(n)))


async def test_mock_max_concurrency_answers_429_above_cap_with_retry_after() -> None:
    up = start_upstream("--ttft", "0.3", "--tps", "0", "--max-concurrency", "2", "--max-concurrency-retry-after", "1.5")
    try:
        up.script({}, {}, {})
        responses = await _fire(up.url, 5)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 200, 429, 429, 429]
        rejected = [r for r in responses if r.status_code == 429]
        assert all(r.headers["retry-after"] == "1.5" for r in rejected)
        assert rejected[0].json()["error"]["type"] == "rate_limit_error"
        stats = up.stats()
        assert stats["max_active"] == 2 and stats["active"] == 0
        assert stats["over_capacity"] == 3
        assert stats["script_remaining"] == 1  # turned-away requests did not use up scripted steps
        up.reset()
        assert up.stats()["max_active"] == 0
    finally:
        up.stop()


async def test_mock_without_cap_tracks_max_active(upstream: Upstream) -> None:
    upstream.script(*[{"ttft": 0.2}] * 4)
    responses = await _fire(upstream.url, 4)
    assert [r.status_code for r in responses] == [200] * 4
    stats = upstream.stats()
    assert stats["max_active"] == 4 and stats["over_capacity"] == 0


def test_mock_cli_help_documents_max_concurrency() -> None:
    app = typer.Typer()
    app.command()(mock_llm)
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "--max-concurrency" in result.output and "--max-concurrency-retry-after" in result.output
