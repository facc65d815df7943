"""The access log (KEFU_ACCESS_LOG=1): one masked line per request, without query string or headers; an SSE
response is logged when its stream ends. The real app in process, the mock upstream over loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kefu.app import create_app
from kefu.config import Settings
from tests.conftest import MODEL_ONLY_BOT
from tests.support import JWT_SECRET, MockLLM, auth, token_for

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def lines(capsys: pytest.CaptureFixture[str]) -> Lines:
    """Every JSON log line written so far (kefu logs to whatever sys.stderr is at the time)."""
    seen: list[dict[str, Any]] = []

    def read() -> list[dict[str, Any]]:
        for raw in capsys.readouterr().err.splitlines():
            try:
                seen.append(json.loads(raw))
            except ValueError:
                continue
        return seen

    return read


def access_lines(lines: Lines) -> list[dict[str, Any]]:
    return [line for line in lines() if line.get("event") == "http_request"]


def make_app(tmp_path: Path, mock: MockLLM, *, access_log: bool) -> FastAPI:
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'kefu.db'}",
        jwt_secret=JWT_SECRET,
        llm_base_url=mock.url + "/v1",
        llm_api_key="sk-test",
        llm_model="mock-chat",
        bot_dir=MODEL_ONLY_BOT,
        rate_limit_ip="off",
        rate_limit_user="off",
        lost_turn_sweep_seconds=0,
        retention_sweep_seconds=0,
        log_json=True,
        access_log=access_log,
    )
    return create_app(settings)


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kefu", timeout=30) as http:
            yield http


async def test_off_by_default(tmp_path: Path, fresh_mock: MockLLM, lines: Lines) -> None:
    async with client_of(make_app(tmp_path, fresh_mock, access_log=False)) as http:
        assert (await http.get("/healthz")).status_code == 200
    assert access_lines(lines) == []


async def test_one_line_per_request_without_query_or_credentials(
    tmp_path: Path, fresh_mock: MockLLM, lines: Lines
) -> None:
    token = token_for("alice")
    async with client_of(make_app(tmp_path, fresh_mock, access_log=True)) as http:
        ok = await http.get(
            "/healthz?access_token=query-secret-123", headers={"Authorization": f"Bearer {token}", "X-Request-ID": "r1"}
        )
        assert ok.status_code == 200
        refused = await http.get("/v1/sessions/s_none")  # no token
        assert refused.status_code == 401
    first, second = access_lines(lines)
    assert first["method"] == "GET" and first["path"] == "/healthz" and first["status"] == 200
    assert first["request_id"] == "r1" and isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert first["level"] == "info" and first["timestamp"]
    assert second["path"] == "/v1/sessions/s_none" and second["status"] == 401
    assert second["request_id"] == refused.headers["x-request-id"]
    written = json.dumps(lines())
    assert "query-secret-123" not in written and token not in written and "access_token" not in written


async def test_personal_numbers_in_the_path_are_masked(tmp_path: Path, fresh_mock: MockLLM, lines: Lines) -> None:
    async with client_of(make_app(tmp_path, fresh_mock, access_log=True)) as http:
        response = await http.get("/v1/sessions/13800138000", headers=auth("alice"))
        assert response.status_code == 404
    (line,) = access_lines(lines)
    assert line["path"] == "/v1/sessions/[PHONE]" and line["status"] == 404
    assert "13800138000" not in json.dumps(lines())


async def test_a_stream_is_logged_when_it_ends(tmp_path: Path, fresh_mock: MockLLM, lines: Lines) -> None:
    app = make_app(tmp_path, fresh_mock, access_log=True)
    body = json.dumps({"message": "你好"}).encode()
    headers = [(b"host", b"kefu"), (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in auth("alice").items()]
    headers.append((b"x-request-id", b"stream-1"))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat",
        "raw_path": b"/v1/chat",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("kefu", 80),
    }
    ended = asyncio.Event()
    sent: list[bytes] = []
    logged_mid_stream: list[dict[str, Any]] | None = None
    status: list[int] = []
    requests = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await ended.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal logged_mid_stream
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            if message.get("body"):
                if not sent:  # the first frame (the session event) is out: the stream is open
                    logged_mid_stream = access_lines(lines)
                sent.append(message["body"])
            if not message.get("more_body", False):
                ended.set()

    async with app.router.lifespan_context(app):
        await app(scope, receive, send)  # type: ignore[arg-type]
    assert status == [200]
    assert b"event: done" in b"".join(sent)
    assert logged_mid_stream == []  # nothing was logged while the stream was open ...
    (line,) = access_lines(lines)  # ... and one line once it ended
    assert line["method"] == "POST" and line["path"] == "/v1/chat" and line["status"] == 200
    assert line["request_id"] == "stream-1"
