"""The token ledger end to end: a real server, the mock upstream sending DeepSeek-shaped usage (cache hit / miss,
reasoning), estimates when no usage arrives, the metrics, and the daily budget (also shared through Redis)."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import httpx

from kefu.store.sql import create_engine_for
from kefu.store.usage import UsageLedger, UsageRecord
from tests.support import KefuServer, MockLLM, answer_text, chat

PRICES = """
currency: USD
models:
  mock-chat:
    input_cache_hit: 1
    input_cache_miss: 2
    output: 4
"""


def write_prices(tmp_path: Path) -> str:
    path = tmp_path / "prices.yaml"
    path.write_text(PRICES, encoding="utf-8")
    return str(path)


def calls_of(tmp_path: Path, turn_id: str) -> list[UsageRecord]:
    async def read() -> list[UsageRecord]:
        ledger = UsageLedger(create_engine_for(f"sqlite+aiosqlite:///{tmp_path / 'kefu.db'}"))
        try:
            return await ledger.calls(turn_id=turn_id)
        finally:
            await ledger.aclose()

    return asyncio.run(read())


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    match = re.search(rf"^{name}{{{re.escape(wanted)}}} (\S+)$" if labels else rf"^{name} (\S+)$", text, re.M)
    assert match is not None, f"{name}{{{wanted}}} not in /metrics"
    return float(match.group(1))


def test_provider_usage_is_priced_recorded_and_counted(make_server, mock_llm: MockLLM, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mock_llm.reset()
    server: KefuServer = make_server(mock_llm, KEFU_PRICES_FILE=write_prices(tmp_path))
    with httpx.Client(base_url=server.url, timeout=30) as http:
        mock_llm.script({"fail": "reasoning"})
        events = chat(http, "meter", "你们几点下班？")
        done = events[-1]
        assert done.event == "done", done
        usage = done.data["usage"]
        (call,) = calls_of(tmp_path, done.data["turn_id"])
        metrics = http.get("/metrics").text

    # The mock sends DeepSeek's fields: half the prompt from the cache, reasoning tokens inside completion_tokens.
    assert usage["prompt_cache_hit_tokens"] > 0 and usage["reasoning_tokens"] > 0
    assert call.prompt_cache_hit_tokens == usage["prompt_cache_hit_tokens"]
    assert call.prompt_cache_miss_tokens == usage["prompt_cache_miss_tokens"]
    assert call.completion_tokens == usage["completion_tokens"]
    assert call.reasoning_tokens == usage["reasoning_tokens"]
    assert not call.estimated
    assert (call.model, call.source, call.finish_reason, call.currency) == ("mock-chat", "llm", "stop", "USD")
    assert call.upstream and call.session_id == events[0].data["session_id"]
    # 1, 2 and 4 USD per million tokens = 1000, 2000 and 4000 nano-USD per token.
    assert call.cost_nano == 1000 * call.prompt_cache_hit_tokens + 2000 * call.prompt_cache_miss_tokens + 4000 * (
        call.completion_tokens
    )
    assert metric(metrics, "kefu_llm_tokens_total", kind="prompt_cache_hit", model="mock-chat") == float(
        call.prompt_cache_hit_tokens
    )
    assert metric(metrics, "kefu_llm_tokens_total", kind="reasoning", model="mock-chat") == float(call.reasoning_tokens)
    assert metric(metrics, "kefu_llm_tokens_total", kind="completion", model="mock-chat") == float(
        call.completion_tokens - call.reasoning_tokens
    )
    assert metric(metrics, "kefu_llm_cost_total", currency="USD", model="mock-chat") == call.cost_nano / 1e9
    assert metric(metrics, "kefu_budget_exceeded") == 0.0


def test_a_cut_off_stream_and_a_provider_without_usage_are_estimated(  # type: ignore[no-untyped-def]
    make_server, mock_llm: MockLLM, tmp_path: Path
) -> None:
    mock_llm.reset()
    server: KefuServer = make_server(mock_llm, KEFU_PRICES_FILE=write_prices(tmp_path))
    with httpx.Client(base_url=server.url, timeout=30) as http:
        mock_llm.script({"fail": "cut", "after_chunks": 3, "chunk_chars": 4})
        cut = chat(http, "meter", "给我讲讲退货政策")
        assert cut[-1].event == "error"
        shown = answer_text(cut)
        (broken,) = calls_of(tmp_path, cut[0].data["turn_id"])
        # A server that refuses stream_options never sends usage: kefu drops the option and estimates.
        mock_llm.script({"fail": "reject_stream_options"})
        plain = chat(http, "meter", "hello there")
        assert plain[-1].event == "done" and plain[-1].data["usage"] is None
        (unreported,) = calls_of(tmp_path, plain[0].data["turn_id"])
        metrics = http.get("/metrics").text

    assert broken.estimated and broken.finish_reason is None
    assert broken.prompt_cache_hit_tokens == 0 and broken.prompt_cache_miss_tokens > 0  # all priced as a miss
    assert broken.completion_tokens >= round(0.3 * len(shown.replace(" ", "")))  # at least the text that arrived
    assert unreported.estimated and unreported.finish_reason == "stop"
    assert unreported.completion_tokens > 0 and unreported.cost_nano and unreported.cost_nano > 0
    assert metric(metrics, "kefu_llm_usage_estimated_total", model="mock-chat") == 2.0


def test_a_spent_budget_answers_without_the_model(make_server, mock_llm: MockLLM, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mock_llm.reset()
    server: KefuServer = make_server(mock_llm, KEFU_PRICES_FILE=write_prices(tmp_path), KEFU_DAILY_BUDGET="0.000001")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        first = chat(http, "budget", "第一个问题")
        second = chat(http, "budget", "第二个问题", first[0].data["session_id"])
        metrics = http.get("/metrics").text
    assert first[-1].data["source"] == "llm"
    assert second[-1].event == "done" and second[-1].data["source"] == "fallback"
    assert mock_llm.stats()["requests"] == 1  # the second turn never asked the model
    assert metric(metrics, "kefu_budget_exceeded") == 1.0


def test_the_budget_is_shared_by_replicas_through_redis(  # type: ignore[no-untyped-def]
    make_server, mock_llm: MockLLM, tmp_path: Path, redis_url: str
) -> None:
    mock_llm.reset()
    shared = {
        "KEFU_PRICES_FILE": write_prices(tmp_path),
        "KEFU_DAILY_BUDGET": "0.000001",
        "KEFU_REDIS_URL": redis_url,
        "KEFU_REDIS_PREFIX": f"kefutest:{uuid.uuid4().hex[:12]}",
    }
    one: KefuServer = make_server(mock_llm, **shared)
    other: KefuServer = make_server(mock_llm, **shared)
    with httpx.Client(base_url=one.url, timeout=30) as http:
        assert chat(http, "budget", "第一个问题")[-1].data["source"] == "llm"
    with httpx.Client(base_url=other.url, timeout=30) as http:
        assert chat(http, "budget", "第二个问题")[-1].data["source"] == "fallback"
        assert metric(http.get("/metrics").text, "kefu_budget_exceeded") == 1.0
    assert mock_llm.stats()["requests"] == 1
