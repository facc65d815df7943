"""Redis and PostgreSQL going away under a running kefu: JSON 503s instead of plain-text 500s, an ``error`` event
instead of a cut stream, an honest status in the transcript, and recovery when they come back."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.outage.conftest import OwnPostgres, OwnRedis
from tests.support import KefuServer, MockLLM, auth, chat, iter_sse

Make = Callable[..., KefuServer]


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "store_unavailable" and error["retryable"] is True
    assert int(response.headers["Retry-After"]) >= 1


def test_redis_down_before_a_turn_is_a_json_503(make_server: Make, fresh_mock: MockLLM, own_redis: OwnRedis) -> None:
    server = make_server(fresh_mock, KEFU_REDIS_URL=own_redis.url)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        ok = http.post("/v1/chat", json={"message": "在吗"}, headers=auth("o-1"))
        assert ok.status_code == 200
        own_redis.kill()
        assert_unavailable(http.post("/v1/chat", json={"message": "在吗"}, headers=auth("o-1")))
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["hot_state"]["ok"] is False
        own_redis.start()  # same port: kefu reconnects by itself
        deadline = time.monotonic() + 10
        while (again := http.post("/v1/chat", json={"message": "在吗"}, headers=auth("o-1"))).status_code != 200:
            assert time.monotonic() < deadline, again.text
            time.sleep(0.2)


def test_redis_dying_mid_answer_ends_the_stream_with_an_error_and_keeps_the_answer(
    make_server: Make, fresh_mock: MockLLM, own_redis: OwnRedis
) -> None:
    server = make_server(fresh_mock, KEFU_REDIS_URL=own_redis.url, KEFU_COALESCE_MS="0")
    fresh_mock.script({"tokens": 60, "tps": 30, "chunk_chars": 1})  # two seconds of answer
    seen: list[str] = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        with http.stream("POST", "/v1/chat", json={"message": "说点什么"}, headers=auth("o-2")) as response:
            events = []
            for event in iter_sse(response):
                if event is None:
                    continue
                events.append(event)
                if event.event == "delta":
                    seen.append(event.data["text"])
                    if len(seen) == 5:
                        own_redis.kill()
        assert events[-1].event == "error", events[-1]
        assert events[-1].data["code"] == "store_unavailable" and events[-1].data["retryable"] is True
        session = events[0].data["session_id"]
        deadline = time.monotonic() + 15
        while True:  # the turn stores its answer when the model is done
            messages = http.get(f"/v1/sessions/{session}", headers=auth("o-2")).json()["messages"]
            if len(messages) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    answer = messages[1]
    assert answer["status"] == "interrupted"
    assert answer["content"].startswith("".join(seen)) and len(answer["content"]) >= len("".join(seen))


def test_postgres_down_is_a_json_503_and_kefu_recovers(
    make_server: Make, fresh_mock: MockLLM, own_postgres: OwnPostgres
) -> None:
    server = make_server(fresh_mock, KEFU_DATABASE_URL=own_postgres.url)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        session = chat(http, "o-3", "在吗")[0].data["session_id"]
        own_postgres.kill()
        assert_unavailable(http.post("/v1/chat", json={"message": "在吗"}, headers=auth("o-3")))
        assert_unavailable(http.get(f"/v1/sessions/{session}", headers=auth("o-3")))
        assert http.get("/readyz").status_code == 503
        own_postgres.start()
        deadline = time.monotonic() + 15
        while (again := http.get(f"/v1/sessions/{session}", headers=auth("o-3"))).status_code != 200:
            assert time.monotonic() < deadline, again.text
            time.sleep(0.3)
        assert http.post("/v1/chat", json={"message": "还在吗"}, headers=auth("o-3")).status_code == 200
