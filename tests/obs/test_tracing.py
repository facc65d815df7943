"""Traces: a turn through the real app (in process, the mock upstream over loopback) produces the expected spans,
parented under the turn; with tracing off it produces none."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import ValidationError

from kefu.app import create_app
from kefu.config import DEMO_BOT_DIR, Settings
from kefu.obs import tracing
from tests.conftest import MODEL_ONLY_BOT
from tests.support import JWT_SECRET, MockLLM, auth, iter_sse

REQUEST_ID = "trace-me-42"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    yield spans
    tracing.shutdown()


def settings_for(tmp_path: Path, mock: MockLLM, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'kefu.db'}",
        "jwt_secret": JWT_SECRET,
        "llm_base_url": mock.url + "/v1",
        "llm_api_key": "sk-test",
        "llm_model": "mock-chat",
        "bot_dir": MODEL_ONLY_BOT,
        "rate_limit_ip": "off",
        "rate_limit_user": "off",
        "lost_turn_sweep_seconds": 0,
        "retention_sweep_seconds": 0,
    }
    return Settings(_env_file=None, **(values | extra))


@asynccontextmanager
async def running(settings: Settings, exporter: InMemorySpanExporter | None) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan; tracing to ``exporter`` (None: as the settings say). Leaving the block stops
    the runtime, which waits for running turns, so every turn's spans have ended by then."""
    app = create_app(settings)
    if exporter is not None:
        tracing.configure(enabled=True, span_exporter=exporter)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kefu", timeout=30) as http:
            yield http


async def chat(http: httpx.AsyncClient, message: str, **headers: str) -> list[str]:
    response = await http.post(
        "/v1/chat", json={"message": message}, headers=auth("alice") | headers | {"X-Request-ID": REQUEST_ID}
    )
    assert response.status_code == 200, response.text
    events = [e.event for e in iter_sse(response) if e is not None]
    assert events[-1] == "done", events
    return events


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    named: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        named.setdefault(span.name, []).append(span)
    return named


@pytest.mark.parametrize("shared", [False, True], ids=["own-call", "shared-answer"])
async def test_a_model_turn_is_one_trace_with_its_steps_as_children(
    tmp_path: Path, fresh_mock: MockLLM, exporter: InMemorySpanExporter, shared: bool
) -> None:
    settings = settings_for(tmp_path, fresh_mock, answer_cache_ttl=300 if shared else 0)
    async with running(settings, exporter) as http:
        await chat(http, "你们几点下班？")
    named = by_name(exporter.get_finished_spans())

    (turn,) = named["kefu.turn"]
    assert turn.parent is None  # the root of its own trace
    attrs = dict(turn.attributes or {})
    assert attrs["kefu.request_id"] == REQUEST_ID
    assert attrs["kefu.outcome"] == "complete" and attrs["kefu.source"] == "llm"
    assert str(attrs["kefu.turn_id"]).startswith("t_")

    expected = ("kefu.kb.search", "kefu.llm.call", "kefu.store.question", "kefu.store.answer")
    assert turn.context is not None
    for name in expected:
        (child,) = named[name]
        assert child.parent is not None and child.parent.span_id == turn.context.span_id, name
        assert child.context is not None and child.context.trace_id == turn.context.trace_id, name
    assert "kefu.flow.step" not in named  # the model-only bot has no flows

    call = dict(named["kefu.llm.call"][0].attributes or {})
    assert call["kefu.model"] == "mock-chat" and call["kefu.answered_by"] == "mock-chat"
    assert call["kefu.provider"] and call["kefu.upstream"] == call["kefu.provider"]  # no failover: the primary
    assert call["kefu.finish_reason"] == "stop"
    assert isinstance(call["kefu.completion_tokens"], int) and call["kefu.completion_tokens"] > 0
    if shared:
        assert call["kefu.shared"] is True and call["kefu.leader"] is True
    else:
        assert isinstance(call["kefu.ttft_ms"], float) and "kefu.shared" not in call


async def test_after_a_failover_the_model_call_names_the_route_that_answered(
    tmp_path: Path, fresh_mock: MockLLM, exporter: InMemorySpanExporter
) -> None:
    backup = [{"base_url": fresh_mock.url + "/v1", "api_key": "sk-test", "model": "mock-backup", "name": "backup"}]
    settings = settings_for(tmp_path, fresh_mock, answer_cache_ttl=0, llm_fallbacks=json.dumps(backup))
    fresh_mock.script({"fail": "401"})  # the primary's key is refused: no retry, the next route answers
    async with running(settings, exporter) as http:
        await chat(http, "你们几点下班？")
    (call,) = by_name(exporter.get_finished_spans())["kefu.llm.call"]
    attrs = dict(call.attributes or {})
    assert attrs["kefu.upstream"] == "backup" and attrs["kefu.provider"] != "backup"
    assert attrs["kefu.answered_by"] == "mock-backup" and attrs["kefu.model"] == "mock-chat"


async def test_faq_and_flow_turns_trace_the_kb_search_and_the_flow_step(
    tmp_path: Path, fresh_mock: MockLLM, exporter: InMemorySpanExporter
) -> None:
    settings = settings_for(tmp_path, fresh_mock, bot_dir=DEMO_BOT_DIR)
    async with running(settings, exporter) as http:
        await chat(http, "运费多少？")  # the demo shop's FAQ: no model call
        await chat(http, "我要退货")  # starts the return flow
    named = by_name(exporter.get_finished_spans())
    assert len(named["kefu.turn"]) == 2
    assert "kefu.llm.call" not in named
    confidences = {dict(s.attributes or {}).get("kefu.confidence") for s in named["kefu.kb.search"]}
    assert "high" in confidences
    flows = [dict(s.attributes or {}) for s in named["kefu.flow.step"]]
    assert any(a.get("kefu.flow") and a.get("kefu.status") == "running" for a in flows), flows
    sources = {dict(s.attributes or {})["kefu.source"] for s in named["kefu.turn"]}
    assert sources == {"faq", "flow"}


async def test_tracing_off_records_nothing(tmp_path: Path, fresh_mock: MockLLM, exporter: InMemorySpanExporter) -> None:
    tracing.configure(enabled=True, span_exporter=exporter)
    # create_app with KEFU_OTEL off (the default) turns tracing off for the process.
    async with running(settings_for(tmp_path, fresh_mock), None) as http:
        assert not tracing.enabled()
        await chat(http, "你们几点下班？")
    assert exporter.get_finished_spans() == ()
    assert tracing.span("kefu.x", a=1) is tracing.NO_SPAN
    assert tracing.start_span("kefu.x") is tracing.NO_SPAN


def test_an_error_marks_the_span_without_personal_numbers(exporter: InMemorySpanExporter) -> None:
    tracing.configure(enabled=True, span_exporter=exporter)
    with pytest.raises(ValueError), tracing.span("kefu.outer"), tracing.span("kefu.inner", note=None):
        raise ValueError("tool failed for phone 13800138000")
    inner, outer = exporter.get_finished_spans()
    assert inner.parent is not None and outer.context is not None and inner.parent.span_id == outer.context.span_id
    assert inner.status.status_code is StatusCode.ERROR
    assert "13800138000" not in str(inner.status.description)
    message = str(dict(inner.events[0].attributes or {})["exception.message"])
    assert "13800138000" not in message and "[PHONE]" in message
    assert "kefu.note" not in dict(inner.attributes or {})  # None values are left out


async def test_a_cancelled_span_is_not_an_error(exporter: InMemorySpanExporter) -> None:
    tracing.configure(enabled=True, span_exporter=exporter)

    async def slow() -> None:
        with tracing.span("kefu.slow"):
            await asyncio.sleep(30)

    task = asyncio.create_task(slow())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {})["kefu.cancelled"] is True


def test_enabled_without_the_sdk_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if the extra were not installed
    with pytest.raises(tracing.TracingUnavailable, match=r"kefu\[otel\]"):
        tracing.configure(enabled=True)
    assert not tracing.enabled()


@pytest.mark.parametrize("kind", ["otlp", "console"])
def test_the_configured_exporters_start(kind: tracing.Exporter) -> None:
    tracing.configure(enabled=True, exporter=kind)  # nothing is sent until a span ends
    try:
        assert tracing.enabled()
    finally:
        tracing.shutdown()
    assert not tracing.enabled()


def test_an_unknown_exporter_is_refused() -> None:
    with pytest.raises(ValidationError, match="otel_exporter"):
        Settings(_env_file=None, otel_exporter="zipkin")
