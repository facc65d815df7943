"""Request ids: on every response, and on every log line of the request, the detached turn's lines included,
without leaking into the next request."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from kefu.app import create_app
from kefu.config import Settings
from kefu.obs.logging import current_request_id
from tests.support import KefuServer, MockLLM, auth, iter_sse

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app in process, without its lifespan (``/healthz`` and the request guard need nothing below them)."""
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'k.db'}", _env_file=None)
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://kefu.test") as client:
        yield client


async def test_a_sane_incoming_id_is_echoed(http: httpx.AsyncClient) -> None:
    sane = "abc-123_DEF.456:/=+~" + "x" * 108  # 128 visible ASCII characters
    response = await http.get("/healthz", headers={"X-Request-ID": sane})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == sane


@pytest.mark.parametrize(
    "incoming",
    [
        None,
        "",
        "x" * 129,  # too long
        "has space",
        "tab\there",
        "中文".encode(),  # not ASCII
        b"caf\xe9",  # Latin-1, not ASCII
    ],
    ids=["absent", "empty", "too-long", "space", "tab", "utf-8", "latin-1"],
)
async def test_a_missing_or_insane_id_is_replaced(http: httpx.AsyncClient, incoming: str | bytes | None) -> None:
    value = incoming.encode() if isinstance(incoming, str) else incoming
    headers = {} if value is None else {b"X-Request-ID": value}
    response = await http.get("/healthz", headers=headers)
    assert response.status_code == 200
    assert GENERATED.fullmatch(response.headers["x-request-id"]), response.headers["x-request-id"]


async def test_generated_ids_differ_and_refusals_carry_one(http: httpx.AsyncClient) -> None:
    first = (await http.get("/healthz")).headers["x-request-id"]
    second = (await http.get("/healthz")).headers["x-request-id"]
    assert first != second
    # Refused by the request guard (before any route) and an unknown route: the header is there too.
    refused = await http.get("/healthz", headers={b"X-Kefu-Session": b"s_\x00", b"X-Request-ID": b"guarded"})
    assert refused.status_code == 422 and refused.headers["x-request-id"] == "guarded"
    missing = await http.get("/no-such-page", headers={"X-Request-ID": "lost"})
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "lost"
    assert missing.json()["error"]["code"] == "not_found"  # the error body keeps the contract's shape


async def test_the_id_does_not_outlive_its_request(http: httpx.AsyncClient) -> None:
    # ASGITransport runs the app in this very task: a binding that were not undone would still be visible here.
    await http.get("/healthz", headers={"X-Request-ID": "only-for-that-request"})
    assert current_request_id() is None


def log_lines(output: str) -> list[dict[str, Any]]:
    lines = []
    for raw in output.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines


def test_every_line_of_a_request_and_of_its_turn_carries_its_id(
    make_server: Callable[..., KefuServer], fresh_mock: MockLLM
) -> None:
    server = make_server(fresh_mock, KEFU_LOG_JSON="1")
    turn_ids: dict[str, str] = {}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for request_id in ("req-first", None, "req-third"):
            headers = auth("alice") | ({"X-Request-ID": request_id} if request_id else {})
            with client.stream("POST", "/v1/chat", json={"message": "你好"}, headers=headers) as response:
                assert response.status_code == 200
                events = [e for e in iter_sse(response) if e is not None]
            assert events[-1].event == "done"
            answered_id = response.headers["x-request-id"]
            assert answered_id == request_id if request_id else GENERATED.fullmatch(answered_id)
            turn_ids[events[0].data["turn_id"]] = answered_id
    lines = log_lines(server.stop())
    finished = {line["turn_id"]: line for line in lines if line.get("event") == "turn_finished"}
    assert finished.keys() == turn_ids.keys()
    for turn_id, request_id in turn_ids.items():
        # Logged by the turn's own task, after the request that started it may have ended.
        assert finished[turn_id]["request_id"] == request_id, finished[turn_id]
    started = [line for line in lines if line.get("event") == "kefu_started"]
    assert started and "request_id" not in started[0]  # nothing outside a request has one
