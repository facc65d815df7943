"""Peak protections seen from outside: shared answers for identical questions, rate limits."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from tests.support import KefuServer, MockLLM, answer_text, auth, chat


async def _ask(http: httpx.AsyncClient, user: str, message: str) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    events: list[tuple[str, dict]] = []  # type: ignore[type-arg]
    async with http.stream("POST", "/v1/chat", json={"message": message}, headers=auth(user)) as response:
        assert response.status_code == 200
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((event, json.loads(line.split(":", 1)[1])))
    return events


async def test_identical_questions_share_one_upstream_call(make_server, mock_llm: MockLLM) -> None:  # type: ignore[no-untyped-def]
    mock_llm.reset()
    server: KefuServer = make_server(mock_llm, KEFU_ANSWER_CACHE_TTL="60")
    mock_llm.script({"tps": 40, "tokens": 40})
    before = mock_llm.stats()["requests"]
    limits = httpx.Limits(max_connections=60)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
        results = await asyncio.gather(*(_ask(http, f"shopper-{i}", "什么时候发货？") for i in range(50)))
        assert mock_llm.stats()["requests"] - before == 1
        texts = {"".join(d["text"] for e, d in events if e == "delta") for events in results}
        assert len(texts) == 1 and texts.pop()
        assert all(events[-1][0] == "done" and events[-1][1]["source"] == "llm" for events in results)
        # a repeat after the flight landed is replayed from the cache, at once and without an upstream call
        again = await _ask(http, "late-shopper", "什么时候 发货?")
        assert again[-1][1].get("cached") is True
        assert mock_llm.stats()["requests"] - before == 1
        metrics = (await http.get("/metrics")).text
    counts = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("kefu_answer_cache_total{")
    }
    # one turn led the flight; the other 49 joined it (or, if they arrived after it landed, hit the cache)
    assert counts.get("joined", 0) + counts.get("hit", 0) == 49 + 1, counts
    assert counts.get("hit", 0) >= 1


async def test_personal_questions_are_never_shared(make_server, mock_llm: MockLLM) -> None:  # type: ignore[no-untyped-def]
    mock_llm.reset()
    server: KefuServer = make_server(mock_llm, KEFU_ANSWER_CACHE_TTL="60")
    before = mock_llm.stats()["requests"]
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        await asyncio.gather(*(_ask(http, f"p{i}", "我的手机 13800138000 订单到哪了") for i in range(3)))
    assert mock_llm.stats()["requests"] - before == 3


def test_rate_limit_per_user_is_429_with_retry_after_and_stores_nothing(make_server, mock_llm: MockLLM) -> None:  # type: ignore[no-untyped-def]
    mock_llm.reset()
    server: KefuServer = make_server(mock_llm, KEFU_RATE_LIMIT_USER="3/minute")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        first = chat(http, "eager", "一")
        session_id = first[0].data["session_id"]
        chat(http, "eager", "二", session_id)
        chat(http, "eager", "三", session_id)
        before = http.get(f"/v1/sessions/{session_id}", headers=auth("eager")).json()
        refused = http.post("/v1/chat", json={"message": "四", "session_id": session_id}, headers=auth("eager"))
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert http.get(f"/v1/sessions/{session_id}", headers=auth("eager")).json() == before
        # another user is not affected
        assert answer_text(chat(http, "patient", "一"))
        assert 'kefu_rate_limited_total{scope="user"} 1.0' in http.get("/metrics").text


def test_rate_limit_per_api_key_and_ip(make_server, mock_llm: MockLLM) -> None:  # type: ignore[no-untyped-def]
    mock_llm.reset()
    server: KefuServer = make_server(mock_llm, KEFU_RATE_LIMIT_API_KEY="2/minute", KEFU_RATE_LIMIT_IP="4/minute")
    key = {"Authorization": "Bearer test-api-key"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        codes = []
        for i in range(3):
            r = http.post("/v1/chat", json={"message": "hi"}, headers={**key, "X-Kefu-User": f"u{i}"})
            codes.append(r.status_code)
            r.read()
        assert codes == [200, 200, 429]
        codes = [http.post("/v1/chat", json={"message": "hi"}, headers=auth(f"v{i}")).status_code for i in range(3)]
        # the IP had used 2 of its 4 (a request refused by an earlier limit is not counted against later ones)
        assert codes == [200, 200, 429]


@pytest.mark.redis
def test_rate_limit_counters_are_shared_across_processes(make_server, mock_llm: MockLLM, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    mock_llm.reset()
    shared = {"KEFU_REDIS_URL": redis_url, "KEFU_REDIS_PREFIX": f"kefu-test-{uuid.uuid4().hex[:8]}"}
    a = make_server(mock_llm, KEFU_RATE_LIMIT_USER="3/minute", **shared)
    b = make_server(mock_llm, KEFU_RATE_LIMIT_USER="3/minute", **shared)
    with httpx.Client(base_url=a.url, timeout=30) as http_a, httpx.Client(base_url=b.url, timeout=30) as http_b:
        chat(http_a, "roaming", "一")
        chat(http_b, "roaming", "二")
        chat(http_a, "roaming", "三")
        assert http_b.post("/v1/chat", json={"message": "四"}, headers=auth("roaming")).status_code == 429
