"""The mock upstream itself: wire format, pacing, script/directive/CLI failure selection, stats."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import pytest
import typer
from typer.testing import CliRunner

from kefu.cli.mock import mock_llm
from kefu.llm.mock import MockConfig, MockStep, build_mock_app, wire
from kefu.llm.mock.config import find_directive
from kefu.llm.mock.state import MockState
from kefu.llm.sse import SSEParser
from tests.llm.conftest import Upstream, start_upstream


def body(text: str, *, stream: bool = True, usage: bool = True, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"model": "deepseek-chat", "messages": [{"role": "user", "content": text}], "stream": stream}
    if stream and usage:
        doc["stream_options"] = {"include_usage": True}
    return doc | extra


def directive(**step: Any) -> str:
    return f"[[mock:{orjson.dumps(step).decode()}]]"


def read_stream(url: str, doc: dict[str, Any]) -> tuple[list[bytes], list[float]]:
    """Raw reads of one streamed answer and when each arrived."""
    reads: list[bytes] = []
    times: list[float] = []
    with httpx.stream("POST", url + "/v1/chat/completions", json=doc, timeout=5) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for chunk in response.iter_raw():
            reads.append(chunk)
            times.append(time.monotonic())
    return reads, times


def events_of(raw: bytes) -> list[str]:
    parser = SSEParser()
    return [e.data for e in parser.feed(raw)]


def test_mock_healthz_and_models(upstream: Upstream) -> None:
    assert httpx.get(upstream.url + "/healthz").json() == {"status": "ok"}
    models = httpx.get(upstream.url + "/v1/models").json()
    assert models["data"][0]["id"] == "mock-model"


def test_mock_stream_wire_format_with_usage_chunk(upstream: Upstream) -> None:
    reads, _ = read_stream(upstream.url, body("运费多少？"))
    data = events_of(b"".join(reads))
    assert data[-1] == "[DONE]"
    chunks = [orjson.loads(d) for d in data[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {"deepseek-chat"}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == wire.answer_text("运费多少？", 40)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 40


def test_mock_no_usage_chunk_unless_requested(upstream: Upstream) -> None:
    reads, _ = read_stream(upstream.url, body("hi", usage=False))
    chunks = [orjson.loads(d) for d in events_of(b"".join(reads))[:-1]]
    assert all("usage" not in c for c in chunks)
    assert all(c["choices"] for c in chunks)


def test_mock_non_stream_returns_chat_completion(upstream: Upstream) -> None:
    doc = httpx.post(upstream.url + "/chat/completions", json=body("你好", stream=False)).json()
    assert doc["object"] == "chat.completion"
    assert doc["choices"][0]["message"]["content"] == wire.answer_text("你好", 40)
    assert doc["usage"]["total_tokens"] == doc["usage"]["prompt_tokens"] + 40


def test_mock_keepalive_comments_while_waiting_for_first_token(upstream: Upstream) -> None:
    reads, _ = read_stream(upstream.url, body(directive(ttft=0.2, keepalive=0.03)))
    raw = b"".join(reads)
    before_content = raw[: raw.index(b'"content":"\xe6')]
    assert before_content.count(b": keep-alive\n\n") >= 3


def test_mock_paces_chunks_at_tokens_per_second(upstream: Upstream) -> None:
    started = time.monotonic()
    reads, times = read_stream(upstream.url, body(directive(tps=400, chunk_chars=4, tokens=40)))
    # 10 content chunks, one every 10 ms after the first.
    assert times[-1] - started >= 0.085
    assert len(reads) >= 5


def test_mock_split_bytes_cuts_inside_characters(upstream: Upstream) -> None:
    reads, _ = read_stream(upstream.url, body("拆分 " + directive(fail="split_bytes", tokens=12)))
    undecodable = 0
    for chunk in reads:
        try:
            chunk.decode()
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable >= 1
    chunks = [orjson.loads(d) for d in events_of(b"".join(reads))[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == wire.answer_text("拆分", 12)


def test_mock_cut_closes_connection_without_done(upstream: Upstream) -> None:
    received = b""
    with pytest.raises(httpx.RemoteProtocolError):  # noqa: PT012 - the break comes while reading
        with httpx.stream("POST", upstream.url + "/v1/chat/completions", json=body(directive(fail="cut"))) as r:
            for chunk in r.iter_raw():
                received += chunk
    assert len(events_of(received)) == 4  # role chunk + 3 content chunks
    assert b"[DONE]" not in received


def test_mock_script_is_fifo_then_normal(upstream: Upstream) -> None:
    upstream.script({"fail": "429", "retry_after": 2}, {"fail": 503}, {})
    url = upstream.url + "/v1/chat/completions"
    first = httpx.post(url, json=body("a", stream=False))
    assert first.status_code == 429 and first.headers["retry-after"] == "2"
    assert first.json()["error"]["message"] == "Rate Limit Reached"
    assert upstream.stats()["script_remaining"] == 2
    assert [httpx.post(url, json=body("a", stream=False)).status_code for _ in range(3)] == [503, 200, 200]
    assert upstream.stats()["outcomes"] == {"429": 1, "503": 1, "ok": 2}


def test_mock_delete_script_clears_queue(upstream: Upstream) -> None:
    upstream.script({"fail": "500"})
    assert httpx.delete(upstream.url + "/_mock/script").json() == {"script_remaining": 0}
    assert httpx.post(upstream.url + "/chat/completions", json=body("a", stream=False)).status_code == 200


@pytest.mark.parametrize("step", [{"fail": "explode"}, {"bogus": 1}, {"tokens": -1}, "429"])
def test_mock_rejects_invalid_script(upstream: Upstream, step: Any) -> None:
    response = httpx.post(upstream.url + "/_mock/script", json={"steps": [step]})
    assert response.status_code == 400
    assert upstream.stats()["script_remaining"] == 0


def test_mock_directive_wins_over_script_and_is_stripped(upstream: Upstream) -> None:
    upstream.script({"fail": "503"})
    doc = httpx.post(upstream.url + "/chat/completions", json=body("问题 " + directive(), stream=False)).json()
    assert doc["choices"][0]["message"]["content"] == wire.answer_text("问题", 40)
    assert upstream.stats()["script_remaining"] == 1


def test_mock_reject_stream_options_only_when_sent(upstream: Upstream) -> None:
    url = upstream.url + "/v1/chat/completions"
    rejected = httpx.post(url, json=body(directive(fail="reject_stream_options")))
    assert rejected.status_code == 400 and "stream_options" in rejected.json()["error"]["message"]
    reads, _ = read_stream(upstream.url, body(directive(fail="reject_stream_options"), usage=False))
    assert events_of(b"".join(reads))[-1] == "[DONE]"


def test_mock_stats_record_request_without_authorization(upstream: Upstream) -> None:
    headers = {"Authorization": "Bearer sk-secret", "X-Trace": "t1"}
    httpx.post(upstream.url + "/chat/completions", json=body("hi", stream=False), headers=headers)
    stats = upstream.stats()
    last = stats["last_request"]
    assert last["body"]["messages"][0]["content"] == "hi"
    assert last["headers"]["x-trace"] == "t1"
    assert "authorization" not in last["headers"]
    assert "sk-secret" not in orjson.dumps(stats).decode()
    assert stats["requests"] == 1


def test_mock_cli_fail_applies_to_every_request() -> None:
    up = start_upstream("--fail", "429", "--ttft", "0")
    try:
        url = up.url + "/v1/chat/completions"
        assert [httpx.post(url, json=body("a")).status_code for _ in range(3)] == [429, 429, 429]
    finally:
        up.stop()


def test_mock_fail_rate_is_seeded_and_roughly_right() -> None:
    def kinds(seed: int) -> list[str | None]:
        state = MockState(MockConfig(fail="500", fail_rate=0.3, seed=seed))
        return [state.next_step().fail for _ in range(200)]

    sample = kinds(7)
    assert sample == kinds(7)
    assert 30 <= sample.count("500") <= 90
    assert set(sample) == {"500", None}


async def test_mock_model_override_in_process() -> None:
    app = build_mock_app(MockConfig(model="fixed-model", ttft=0, tps=0, tokens=8))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
        doc = (await client.post("/v1/chat/completions", json=body("hi", stream=False))).json()
    assert doc["model"] == "fixed-model"
    assert doc["choices"][0]["message"]["content"] == wire.answer_text("hi", 8)


async def test_mock_serves_many_concurrent_paced_streams(upstream: Upstream) -> None:
    # Plain sockets: httpx's own pool costs more CPU than the mock at this concurrency.
    payload = orjson.dumps(body(directive(tps=200, chunk_chars=4, tokens=40)))  # ten chunks over ~0.2 s
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: mock\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(payload)
    ) + payload

    async def one() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", upstream.port)
        writer.write(request)
        data = await reader.read()
        writer.close()
        return data

    started = time.monotonic()
    responses = await asyncio.gather(*(one() for _ in range(300)))
    assert all(r.startswith(b"HTTP/1.1 200") and b"data: [DONE]" in r for r in responses)
    assert time.monotonic() - started < 1.5
    assert upstream.stats()["outcomes"] == {"ok": 300}


def test_mock_step_validation_and_directive_parsing() -> None:
    assert MockStep.from_json({"fail": 429}).fail == "429"
    with pytest.raises(ValueError, match="unknown failure kind"):
        MockStep.from_json({"fail": "boom"})
    found, rest = find_directive('订单 [[mock:{"fail": "cut", "after_chunks": 1}]] 在哪')
    assert found == {"fail": "cut", "after_chunks": 1} and rest == "订单  在哪"
    assert find_directive("plain")[0] is None
    with pytest.raises(ValueError):
        find_directive("[[mock:{nope}]]")


def test_mock_answer_text_is_exact_length_and_mixed() -> None:
    text = wire.answer_text("where is my order", 200)
    assert len(text) == 200
    assert text.startswith("您好！关于「where is my order」：")
    assert any(ord(c) > 0x2E80 for c in text) and any(c.isascii() and c.isalpha() for c in text)


def test_mock_cli_help_shows_example() -> None:
    app = typer.Typer()
    app.command()(mock_llm)
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Example: kefu mock-llm" in result.output
    assert "--fail-rate" in result.output


def test_mock_scripted_tool_calls_and_exact_text(upstream: Upstream) -> None:
    call = {"name": "start_flow_order_status", "arguments": {"order_id": "DD20261105002"}}
    reads, _ = read_stream(upstream.url, body("查快递 " + directive(tool_calls=[call])))
    chunks = [orjson.loads(d) for d in events_of(b"".join(reads)) if d != "[DONE]"]
    fragments = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert fragments[0]["function"]["name"] == "start_flow_order_status"
    arguments = "".join(f["function"].get("arguments", "") for f in fragments)
    assert orjson.loads(arguments) == {"order_id": "DD20261105002"}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"

    reads, _ = read_stream(upstream.url, body("hi " + directive(text="您好，订单已发货。")))
    chunks = [orjson.loads(d) for d in events_of(b"".join(reads)) if d != "[DONE]"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "您好，订单已发货。"
    whole = httpx.post(
        upstream.url + "/v1/chat/completions", json=body("x " + directive(tool_calls=[call]), stream=False), timeout=5
    ).json()
    assert whole["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "start_flow_order_status"


def test_mock_step_rejects_malformed_tool_calls() -> None:
    with pytest.raises(ValueError, match="tool_calls"):
        MockStep.from_json({"tool_calls": [{"arguments": {}}]})
    with pytest.raises(ValueError, match="text"):
        MockStep.from_json({"text": 5})
