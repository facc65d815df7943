"""Several kefu processes sharing Redis and PostgreSQL: resume, cancel, locks and lost turns across them."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.support import MockLLM, SSEEvent, answer_text, auth, iter_sse

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

SLOW = {"tps": 40, "tokens": 60, "chunk_chars": 2}


@pytest.fixture
def pair(make_server, mock_llm: MockLLM, redis_url: str, postgres_db: str):  # type: ignore[no-untyped-def]
    mock_llm.reset()
    shared = {
        "KEFU_REDIS_URL": redis_url,
        "KEFU_REDIS_PREFIX": f"kefu-test-{uuid.uuid4().hex[:8]}",
        "KEFU_DATABASE_URL": postgres_db,
        "KEFU_TURN_LEASE_SECONDS": "1.5",
    }
    return make_server(mock_llm, **shared), make_server(mock_llm, **shared)


def _start_and_read(http: httpx.Client, user: str, n: int) -> list[SSEEvent]:
    seen: list[SSEEvent] = []
    with http.stream("POST", "/v1/chat", json={"message": "跨进程"}, headers=auth(user)) as response:
        for event in iter_sse(response):
            if event is not None:
                seen.append(event)
            if len(seen) == n:
                break
    return seen


def test_turn_started_on_one_process_resumes_on_the_other(pair, mock_llm: MockLLM) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    mock_llm.script(SLOW)
    with httpx.Client(base_url=a.url, timeout=30) as http_a, httpx.Client(base_url=b.url, timeout=30) as http_b:
        seen = _start_and_read(http_a, "roamer", 3)
        turn_id = seen[0].data["turn_id"]
        headers = {**auth("roamer"), "Last-Event-ID": seen[-1].id or ""}
        with http_b.stream("GET", f"/v1/chat/turns/{turn_id}/events", headers=headers) as response:
            assert response.status_code == 200
            rest = [e for e in iter_sse(response) if e is not None]
        ids = [e.id for e in seen + rest]
        assert ids == [f"{turn_id}:{i}" for i in range(1, len(ids) + 1)]
        assert rest[-1].event == "done"
        stored = http_b.get(f"/v1/sessions/{seen[0].data['session_id']}", headers=auth("roamer")).json()
        assert stored["messages"][-1]["content"] == answer_text(seen + rest)


def test_session_lock_and_cancel_work_across_processes(pair, mock_llm: MockLLM) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    mock_llm.script(SLOW)
    with httpx.Client(base_url=a.url, timeout=30) as http_a, httpx.Client(base_url=b.url, timeout=30) as http_b:
        with http_a.stream("POST", "/v1/chat", json={"message": "长回答"}, headers=auth("twin")) as response:
            it = iter_sse(response)
            first = next(e for e in it if e is not None)
            busy = http_b.post(
                "/v1/chat", json={"message": "再来", "session_id": first.data["session_id"]}, headers=auth("twin")
            )
            assert busy.status_code == 409
            cancel = http_b.post(f"/v1/chat/turns/{first.data['turn_id']}/cancel", headers=auth("twin"))
            assert cancel.json()["cancelled"] is True
            rest = [e for e in it if e is not None]
        assert rest[-1].event == "error" and rest[-1].data["code"] == "cancelled"
        messages = http_b.get(f"/v1/sessions/{first.data['session_id']}", headers=auth("twin")).json()["messages"]
        assert messages[-1]["status"] == "interrupted"


def test_reader_learns_when_the_process_running_the_turn_dies(pair, mock_llm: MockLLM) -> None:  # type: ignore[no-untyped-def]
    a, b = pair
    mock_llm.script({"tps": 10, "tokens": 200, "chunk_chars": 2})
    with httpx.Client(base_url=a.url, timeout=30) as http_a, httpx.Client(base_url=b.url, timeout=30) as http_b:
        seen = _start_and_read(http_a, "orphan", 3)
        a.stop(kill=True)
        started = time.monotonic()
        turn_id = seen[0].data["turn_id"]
        headers = {**auth("orphan"), "Last-Event-ID": seen[-1].id or ""}
        with http_b.stream("GET", f"/v1/chat/turns/{turn_id}/events", headers=headers) as response:
            rest = [e for e in iter_sse(response) if e is not None]
        assert rest[-1].event == "error"
        assert rest[-1].data["code"] == "turn_lost" and rest[-1].data["retryable"] is True
        assert time.monotonic() - started < 15
        messages = http_b.get(f"/v1/sessions/{seen[0].data['session_id']}", headers=auth("orphan")).json()["messages"]
        assert messages[-1]["role"] == "assistant" and messages[-1]["status"] == "interrupted"
        assert messages[-1]["content"].startswith(answer_text(seen))
        # the session is usable again once the dead turn is closed
        again = http_b.post(
            "/v1/chat", json={"message": "还在吗", "session_id": seen[0].data["session_id"]}, headers=auth("orphan")
        )
        assert again.status_code == 200


def test_serve_with_two_workers_shares_state(make_server, mock_llm: MockLLM, redis_url: str, postgres_db: str) -> None:  # type: ignore[no-untyped-def]
    mock_llm.reset()
    server = make_server(
        mock_llm,
        workers=2,
        KEFU_REDIS_URL=redis_url,
        KEFU_DATABASE_URL=postgres_db,
        KEFU_REDIS_PREFIX=f"kefu-test-{uuid.uuid4().hex[:8]}",
    )
    with httpx.Client(base_url=server.url, timeout=30) as http:
        sessions = set()
        for _ in range(6):  # new connections land on either worker
            with httpx.Client(base_url=server.url, timeout=30) as fresh:
                with fresh.stream("POST", "/v1/chat", json={"message": "hi"}, headers=auth("multi")) as r:
                    events = [e for e in iter_sse(r) if e is not None]
            assert events[-1].event == "done"
            sessions.add(events[0].data["session_id"])
        for session_id in sessions:
            assert http.get(f"/v1/sessions/{session_id}", headers=auth("multi")).status_code == 200
