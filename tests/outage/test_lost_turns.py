"""A server dying mid-answer while nobody resumes the turn: another server's sweeper closes it and stores what was
said as ``interrupted``; nobody has to read the turn or ask again."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.outage.conftest import OwnRedis
from tests.support import KefuServer, MockLLM, SSEEvent, answer_text, auth, iter_sse

Make = Callable[..., KefuServer]


def test_a_dead_servers_turn_nobody_resumes_is_stored_by_the_sweeper(
    make_server: Make, fresh_mock: MockLLM, own_redis: OwnRedis
) -> None:
    """Regression: the partial answer of such a turn was never stored."""
    env = {
        "KEFU_REDIS_URL": own_redis.url,
        "KEFU_TURN_LEASE_SECONDS": "1",
        "KEFU_LOST_TURN_SWEEP_SECONDS": "0.5",
        "KEFU_COALESCE_MS": "0",
    }
    dying = make_server(fresh_mock, **env)
    fresh_mock.script({"tps": 10, "tokens": 200, "chunk_chars": 2})  # 20 s of answer
    seen: list[SSEEvent] = []
    with (
        httpx.Client(base_url=dying.url, timeout=30) as http,
        http.stream("POST", "/v1/chat", json={"message": "说慢点"}, headers=auth("swept")) as response,
    ):
        for event in iter_sse(response):
            if event is not None:
                seen.append(event)
            if len(seen) == 4:  # the session event and three deltas
                dying.stop(kill=True)
                break
    session_id = seen[0].data["session_id"]
    survivor = make_server(fresh_mock, **env)  # the same database and Redis; it never hears of the turn
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=survivor.url, timeout=10) as http:
        while len(messages := http.get(f"/v1/sessions/{session_id}", headers=auth("swept")).json()["messages"]) < 2:
            assert time.monotonic() < deadline, f"the dead turn was never closed: {messages}"
            time.sleep(0.2)
    assert [(m["role"], m["status"]) for m in messages] == [("user", "complete"), ("assistant", "interrupted")]
    assert messages[1]["content"].startswith(answer_text(seen))
