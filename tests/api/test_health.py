"""Health, readiness, metrics, and a server with no model configured."""

from __future__ import annotations

import httpx

from tests.support import KefuServer, auth, chat

ADMIN = {"Authorization": "Bearer test-api-key"}


def test_healthz_and_readyz(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz", headers=ADMIN)  # details are for operators (tests/api/test_hardening.py)
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] and body["checks"]["hot_state"]["ok"]
    assert body["checks"]["llm"]["model"] == "mock-chat"


def test_metrics_count_turns_and_ttft(client: httpx.Client) -> None:
    chat(client, "metrics-user", "你好")
    text = client.get("/metrics").text
    assert 'kefu_turns_total{outcome="complete",source="llm"}' in text
    assert "kefu_time_to_first_token_seconds_count" in text
    assert "kefu_active_streams" in text
    assert "kefu_upstream_errors_total" in text


def test_server_without_model_starts_and_says_so(make_server) -> None:  # type: ignore[no-untyped-def]
    server: KefuServer = make_server(None)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        ready = http.get("/readyz", headers=ADMIN).json()
        assert ready["status"] == "degraded"
        assert ready["checks"]["llm"]["ok"] is False
        assert "KEFU_LLM_API_KEY" in ready["checks"]["llm"]["detail"]
        events = chat(http, "u1", "讲讲你们的新品")
        assert [e.event for e in events] == ["session", "error"]
        assert events[-1].data["code"] == "llm_not_configured"
        assert events[-1].data["retryable"] is False
        stored = http.get(f"/v1/sessions/{events[0].data['session_id']}", headers=auth("u1")).json()
        assert [m["role"] for m in stored["messages"]] == ["user"]  # no blank answer row
        facade = http.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "讲讲你们的新品"}]},
            headers=auth("u1"),
        )
        assert facade.status_code == 503
        assert facade.json()["error"]["code"] == "llm_not_configured"
        assert facade.headers["x-should-retry"] == "false"
    output = server.stop()
    assert "llm_not_configured" in output or "NOT CONFIGURED" in output
