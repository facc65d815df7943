"""Transcripts survive a restart; PII never reaches the server's log."""

from __future__ import annotations

import httpx

from tests.support import KefuServer, MockLLM, answer_text, auth, chat


def test_history_survives_restart(make_server, mock_llm: MockLLM) -> None:  # type: ignore[no-untyped-def]
    mock_llm.reset()
    server: KefuServer = make_server(mock_llm)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        events = chat(http, "persist", "记住我：订单 A1001")
    session_id = events[0].data["session_id"]
    server.restart()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        stored = http.get(f"/v1/sessions/{session_id}", headers=auth("persist")).json()["messages"]
        assert [m["content"] for m in stored] == ["记住我：订单 A1001", answer_text(events)]
        # the model still gets the earlier turn as context after the restart
        chat(http, "persist", "我的订单号是？", session_id)
    sent = mock_llm.stats()["last_request"]["body"]["messages"]
    assert "记住我：订单 A1001" in [m["content"] for m in sent]


def test_server_log_masks_phone_numbers(make_server, mock_llm: MockLLM) -> None:  # type: ignore[no-untyped-def]
    mock_llm.reset()
    server: KefuServer = make_server(mock_llm, KEFU_LOG_LEVEL="debug")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        chat(http, "pii", "我的手机号 13812345678，身份证 11010519491231002X")
        mock_llm.script({"fail": "500"})
        chat(http, "pii", "再问一次 13812345678")
    output = server.stop()
    assert "13812345678" not in output
    assert "11010519491231002X" not in output
    assert "turn_finished" in output


def test_session_ttl_starts_fresh_context_but_keeps_transcript(make_server, mock_llm: MockLLM) -> None:  # type: ignore[no-untyped-def]
    import time

    mock_llm.reset()
    server: KefuServer = make_server(mock_llm, KEFU_SESSION_TTL="1")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        first = chat(http, "ttl", "第一句")
        session_id = first[0].data["session_id"]
        chat(http, "ttl", "第二句", session_id)
        sent = [m["content"] for m in mock_llm.stats()["last_request"]["body"]["messages"]]
        assert "第一句" in sent  # within the TTL the context is kept
        time.sleep(1.5)
        chat(http, "ttl", "第三句", session_id)
        sent = [m["content"] for m in mock_llm.stats()["last_request"]["body"]["messages"]]
        assert "第一句" not in sent and "第二句" not in sent and sent[-1] == "第三句"
        stored = http.get(f"/v1/sessions/{session_id}", headers=auth("ttl")).json()["messages"]
        assert [m["content"] for m in stored if m["role"] == "user"] == ["第一句", "第二句", "第三句"]
