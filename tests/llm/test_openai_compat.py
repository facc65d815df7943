"""The OpenAI-compatible provider against the mock upstream over real loopback HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from kefu.config import Settings
from kefu.errors import (
    FirstTokenTimeout,
    IdleTimeout,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
)
from kefu.llm.auth import OAuth2ClientCredentials, StaticKey
from kefu.llm.base import (
    ChatMessage,
    ChatModel,
    ChatRequest,
    Finish,
    ModelEvent,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
)
from kefu.llm.mock import wire
from kefu.llm.openai_compat import OpenAICompatModel
from tests.llm.conftest import API_KEY, MODEL, Upstream, ask, collect
from tests.support import free_port

Make = Callable[..., OpenAICompatModel]


def directive(**step: Any) -> str:
    return f"[[mock:{orjson.dumps(step).decode()}]]"


def text_of(events: list[ModelEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def finish_of(events: list[ModelEvent]) -> Finish:
    finishes = [e for e in events if isinstance(e, Finish)]
    assert len(finishes) == 1 and events[-1] is finishes[0]
    return finishes[0]


async def failure(model: OpenAICompatModel, request: ChatRequest) -> tuple[list[ModelEvent], UpstreamError]:
    events: list[ModelEvent] = []
    with pytest.raises(UpstreamError) as info:
        async for event in model.stream(request):
            events.append(event)
    assert not any(isinstance(e, Finish) for e in events)
    return events, info.value


async def test_openai_compat_streams_text_usage_then_one_finish(make_model: Make, upstream: Upstream) -> None:
    events = await collect(make_model(), ask("我的订单什么时候发货？"))
    assert text_of(events) == wire.answer_text("我的订单什么时候发货？", 40)
    assert all(e.text for e in events if isinstance(e, TextDelta))  # empty role chunk not yielded
    [usage] = [e for e in events if isinstance(e, Usage)]
    assert usage.completion_tokens == 40
    assert usage.total_tokens == usage.prompt_tokens + 40
    assert usage.extra["prompt_cache_hit_tokens"] + usage.extra["prompt_cache_miss_tokens"] == usage.prompt_tokens
    assert usage.extra["reasoning_tokens"] == 0
    assert events.index(usage) == len(events) - 2
    finish = finish_of(events)
    assert (finish.reason, finish.model, finish.tool_calls) == ("stop", MODEL, ())
    sent = upstream.stats()["last_request"]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["stream"] is True
    assert sent["body"]["stream_options"] == {"include_usage": True}


async def test_openai_compat_is_a_chat_model(make_model: Make, upstream: Upstream) -> None:
    model = make_model()
    assert isinstance(model, ChatModel)
    assert model.name == f"127.0.0.1:{upstream.port}/{MODEL}"
    assert model.model == MODEL


async def test_openai_compat_from_settings_uses_llm_settings() -> None:
    settings = Settings(_env_file=None, llm_api_key="sk-x", llm_model="deepseek-v4-flash")
    model = OpenAICompatModel.from_settings(settings)
    try:
        assert model.name == "api.deepseek.com/deepseek-v4-flash"
        assert model.model == "deepseek-v4-flash"
    finally:
        await model.aclose()


async def test_openai_compat_paced_stream_yields_deltas_in_order(make_model: Make) -> None:
    question = "pace " + directive(tps=4000, chunk_chars=3, tokens=30)
    events = await collect(make_model(), ask(question))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 3
    assert "".join(d.text for d in deltas) == wire.answer_text("pace", 30)


async def test_openai_compat_split_bytes_reassembles_multibyte_text(make_model: Make) -> None:
    events = await collect(make_model(), ask("拆分 " + directive(fail="split_bytes", tokens=24)))
    assert text_of(events) == wire.answer_text("拆分", 24)
    assert finish_of(events).reason == "stop"


async def test_openai_compat_keepalives_before_first_token_are_skipped(make_model: Make) -> None:
    # idle_timeout is shorter than the TTFT: only first_token_timeout may apply before the first token.
    model = make_model(first_token_timeout=1.5, idle_timeout=0.15)
    started = time.monotonic()
    events = await collect(model, ask("wait " + directive(ttft=0.4, keepalive=0.02)))
    assert time.monotonic() - started >= 0.4
    assert text_of(events) == wire.answer_text("wait", 40)


async def test_openai_compat_keepalives_alone_do_not_satisfy_first_token(make_model: Make) -> None:
    model = make_model(first_token_timeout=0.3)
    started = time.monotonic()
    events, error = await failure(model, ask(directive(fail="stall", seconds=5, keepalive=0.02)))
    assert isinstance(error, FirstTokenTimeout)
    assert error.retryable and events == []
    assert 0.3 <= time.monotonic() - started < 1.0


async def test_openai_compat_headers_never_sent_is_first_token_timeout(make_model: Make) -> None:
    # The JSON path sends its headers at once but no content until ttft: that wait counts too.
    model = make_model(first_token_timeout=0.3)
    _, error = await failure(model, ask(directive(fail="json", ttft=5)))
    assert isinstance(error, FirstTokenTimeout)


@pytest.mark.parametrize("keepalive", [0.0, 0.02], ids=["silent", "keepalives"])
async def test_openai_compat_stall_mid_stream_is_idle_timeout(make_model: Make, keepalive: float) -> None:
    model = make_model(idle_timeout=0.3)
    started = time.monotonic()
    step = directive(fail="stall_mid", after_chunks=2, seconds=5, keepalive=keepalive)
    events, error = await failure(model, ask(step))
    assert isinstance(error, IdleTimeout)
    assert len([e for e in events if isinstance(e, TextDelta)]) == 2
    assert time.monotonic() - started < 1.0


async def test_openai_compat_cut_stream_raises_protocol_error(make_model: Make) -> None:
    events, error = await failure(make_model(), ask("cut " + directive(fail="cut", after_chunks=3)))
    assert isinstance(error, UpstreamProtocolError)
    assert error.retryable
    assert text_of(events) == wire.answer_text("cut", 12)


async def test_openai_compat_plain_json_completion_becomes_events(make_model: Make) -> None:
    events = await collect(make_model(), ask("json " + directive(fail="json", ttft=0.1, keepalive=0.02)))
    assert [type(e) for e in events] == [TextDelta, Usage, Finish]
    assert text_of(events) == wire.answer_text("json", 40)
    assert finish_of(events).reason == "stop"


async def test_openai_compat_reasoning_is_kept_apart_from_text(make_model: Make) -> None:
    events = await collect(make_model(), ask("think " + directive(fail="reasoning")))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert reasoning == wire.REASONING
    assert text_of(events) == wire.answer_text("think", 40)
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert all(isinstance(e, ReasoningDelta) for e in events[:first_text])
    [usage] = [e for e in events if isinstance(e, Usage)]
    assert usage.extra["reasoning_tokens"] == len(wire.REASONING)


EXPECTED_CALLS = tuple(ToolCall(cid, name, orjson.dumps(args).decode()) for cid, name, args in wire.TOOL_CALLS)


async def test_openai_compat_tool_call_deltas_assembled_by_index(make_model: Make) -> None:
    events = await collect(make_model(), ask(directive(fail="tool_call")))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert {d.index for d in deltas} == {0, 1}
    assert len(deltas) > 2  # arguments really arrived in pieces
    finish = finish_of(events)
    assert finish.reason == "tool_calls"
    assert finish.tool_calls == EXPECTED_CALLS
    assert text_of(events) == ""


async def test_openai_compat_plain_json_with_reasoning_and_tool_calls(make_model: Make) -> None:
    model = make_model()
    events = await collect(model, ask(directive(fail="tool_call", json=True)))
    assert [type(e) for e in events] == [ToolCallDelta, ToolCallDelta, Usage, Finish]
    assert finish_of(events).tool_calls == EXPECTED_CALLS
    assert finish_of(events).reason == "tool_calls"
    events = await collect(model, ask("think " + directive(fail="reasoning", json=True)))
    assert [type(e) for e in events] == [ReasoningDelta, TextDelta, Usage, Finish]
    assert events[0] == ReasoningDelta(wire.REASONING)


async def test_openai_compat_stream_options_rejected_retries_without_and_remembers(
    make_model: Make, upstream: Upstream
) -> None:
    upstream.script(*[{"fail": "reject_stream_options"}] * 3)
    model = make_model()
    first = await collect(model, ask("one"))
    second = await collect(model, ask("two"))
    assert text_of(first) == wire.answer_text("one", 40)
    assert text_of(second) == wire.answer_text("two", 40)
    assert not any(isinstance(e, Usage) for e in first + second)  # no usage without include_usage
    stats = upstream.stats()
    sent = [r["body"] for r in stats["recent_requests"]]
    assert len(sent) == 3
    assert "stream_options" in sent[0]
    assert "stream_options" not in sent[1] and "stream_options" not in sent[2]
    assert stats["outcomes"] == {"reject_stream_options": 1, "ok": 2}


async def test_openai_compat_other_400_is_final_and_not_retried(make_model: Make, upstream: Upstream) -> None:
    _, error = await failure(make_model(), ask(directive(fail="400", message="messages[0] is malformed")))
    assert isinstance(error, UpstreamStatusError)
    assert (error.status_code, error.retryable) == (400, False)
    assert "messages[0] is malformed" in error.message
    assert upstream.stats()["requests"] == 1


@pytest.mark.parametrize(
    ("step", "expected"),
    [({"retry_after": 2}, 2.0), ({"retry_after": 2, "retry_after_ms": 1500}, 1.5), ({}, None)],
    ids=["seconds", "ms-wins", "absent"],
)
async def test_openai_compat_429_is_retryable_with_retry_after(
    make_model: Make, step: dict[str, Any], expected: float | None
) -> None:
    _, error = await failure(make_model(), ask(directive(fail="429", **step)))
    assert isinstance(error, UpstreamStatusError)
    assert (error.status_code, error.retryable, error.retry_after) == (429, True, expected)
    assert error.code == "upstream_rate_limited"
    assert "Rate Limit Reached" in error.message


@pytest.mark.parametrize("status", ["500", "503"])
async def test_openai_compat_server_errors_are_retryable(make_model: Make, status: str) -> None:
    _, error = await failure(make_model(), ask(directive(fail=status)))
    assert isinstance(error, UpstreamStatusError)
    assert error.status_code == int(status) and error.retryable


@pytest.mark.parametrize(
    ("status", "code"), [("402", "upstream_insufficient_balance"), ("401", "upstream_auth_failed")]
)
async def test_openai_compat_402_and_401_are_not_retryable(make_model: Make, status: str, code: str) -> None:
    _, error = await failure(make_model(), ask(directive(fail=status)))
    assert isinstance(error, UpstreamStatusError)
    assert (error.status_code, error.retryable, error.code) == (int(status), False, code)


async def test_openai_compat_wrong_key_is_real_401(make_model: Make, keyed_upstream: Upstream) -> None:
    model = make_model(base_url=keyed_upstream.url, auth=StaticKey("sk-wrong"))
    _, error = await failure(model, ask("hi"))
    assert isinstance(error, UpstreamStatusError) and error.status_code == 401 and not error.retryable
    good = make_model(base_url=keyed_upstream.url, auth=StaticKey(API_KEY))
    assert finish_of(await collect(good, ask("hi"))).reason == "stop"


async def test_openai_compat_oauth_token_is_sent_as_bearer(make_model: Make, keyed_upstream: Upstream) -> None:
    auth = OAuth2ClientCredentials(keyed_upstream.url + "/oauth/token", "kefu-mock", "kefu-mock-secret")
    try:
        model = make_model(base_url=keyed_upstream.url, auth=auth)
        for _ in range(2):
            assert finish_of(await collect(model, ask("hi"))).reason == "stop"
        assert keyed_upstream.stats()["oauth_tokens_issued"] == 1
    finally:
        await auth.aclose()


async def test_openai_compat_connection_refused_is_connect_error(make_model: Make) -> None:
    model = make_model(base_url=f"http://127.0.0.1:{free_port()}/v1")
    _, error = await failure(model, ask("hi"))
    assert isinstance(error, UpstreamConnectError)
    assert error.retryable and error.code == "upstream_unavailable"


@pytest.mark.parametrize(
    ("message", "retryable"),
    [(None, True), ("content violates the usage policy", False)],
    ids=["overload", "policy"],
)
async def test_openai_compat_error_event_mid_stream(make_model: Make, message: str | None, retryable: bool) -> None:
    step: dict[str, Any] = {"fail": "error_event", "after_chunks": 2}
    if message:
        step["message"] = message
    events, error = await failure(make_model(), ask(directive(**step)))
    assert type(error) is UpstreamError
    assert error.retryable is retryable
    assert len(events) == 2


async def test_openai_compat_aclose_aborts_upstream(make_model: Make, upstream: Upstream) -> None:
    stream = make_model().stream(ask(directive(tps=100, tokens=400)))
    first = await anext(stream)
    assert isinstance(first, TextDelta)
    await stream.aclose()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        stats = upstream.stats()
        if stats["disconnects"] == 1 and stats["active"] == 0:
            break
        await asyncio.sleep(0.02)
    assert (stats["disconnects"], stats["active"]) == (1, 0)


async def test_openai_compat_serialises_messages_tools_and_options(make_model: Make, upstream: Upstream) -> None:
    call = ToolCall("call_1", "lookup_order", '{"order_id":"A1"}')
    request = ChatRequest(
        messages=(
            ChatMessage("system", "你是客服"),
            ChatMessage("user", "订单 A1 到哪了？", name="u1"),
            ChatMessage("assistant", "", tool_calls=(call,)),
            ChatMessage("tool", '{"status":"shipped"}', tool_call_id="call_1"),
        ),
        model="deepseek-v4-pro",
        max_tokens=128,
        temperature=0.2,
        tools=(ToolSpec("lookup_order", "Find an order", {"type": "object", "properties": {}}),),
        user="user-42",
    )
    events = await collect(make_model(max_tokens=999), request)
    assert finish_of(events).model == "deepseek-v4-pro"
    body = upstream.stats()["last_request"]["body"]
    assert body["model"] == "deepseek-v4-pro"
    assert (body["max_tokens"], body["temperature"], body["user"]) == (128, 0.2, "user-42")
    assert body["messages"] == [
        {"role": "system", "content": "你是客服"},
        {"role": "user", "content": "订单 A1 到哪了？", "name": "u1"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": '{"order_id":"A1"}'},
                }
            ],
        },
        {"role": "tool", "content": '{"status":"shipped"}', "tool_call_id": "call_1"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "description": "Find an order",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    assert "reasoning_content" not in orjson.dumps(body).decode()


async def test_openai_compat_sends_bearer_key(make_model: Make, keyed_upstream: Upstream) -> None:
    model = make_model(base_url=keyed_upstream.url + "/v1", auth=StaticKey(API_KEY))
    await collect(model, ask("hi"))
    headers = keyed_upstream.stats()["last_request"]["headers"]
    assert "authorization" not in headers  # the mock never records it
    assert headers["content-type"] == "application/json"


async def test_openai_compat_concurrent_streams_spread_over_small_pools(make_model: Make, upstream: Upstream) -> None:
    model = make_model(max_connections=40)  # two pools of 20 connections
    question = "many " + directive(tps=400, chunk_chars=4, tokens=20)

    async def one() -> str:
        return text_of(await collect(model, ask(question)))

    answers = await asyncio.gather(*(one() for _ in range(30)))
    assert set(answers) == {wire.answer_text("many", 20)}
    assert len(model._clients) == 2
    assert model._busy == [0, 0]
    assert upstream.stats()["outcomes"] == {"ok": 30}


async def test_openai_compat_finish_reason_is_passed_through(make_model: Make) -> None:
    events = await collect(make_model(), ask(directive(finish_reason="length")))
    assert finish_of(events).reason == "length"


@pytest.mark.parametrize("as_json", [False, True], ids=["stream", "json"])
async def test_openai_compat_insufficient_resource_finish_is_retryable_error(make_model: Make, as_json: bool) -> None:
    step = directive(finish_reason="insufficient_system_resource", json=as_json)
    _, error = await failure(make_model(), ask(step))
    assert error.retryable and error.code == "upstream_overloaded"


async def test_openai_compat_no_response_headers_is_first_token_timeout(make_model: Make) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        model = make_model(base_url=f"http://127.0.0.1:{port}", first_token_timeout=0.3)
        started = time.monotonic()
        _, error = await failure(model, ask("hi"))
        assert isinstance(error, FirstTokenTimeout)
        assert time.monotonic() - started < 1.0
    finally:
        server.close()


async def test_openai_compat_unsupported_scheme_is_not_retryable(make_model: Make) -> None:
    _, error = await failure(make_model(base_url="ftp://127.0.0.1/v1"), ask("hi"))
    assert isinstance(error, UpstreamConnectError) and not error.retryable


async def test_openai_compat_stream_survives_external_cancel_semantics(make_model: Make) -> None:
    # A cancel that is not the watchdog's must surface as CancelledError, not as a timeout.
    model = make_model(first_token_timeout=5)

    async def consume() -> None:
        await collect(model, ask(directive(fail="stall", seconds=5, keepalive=0.02)))

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
