"""``/v1/chat`` end to end: a real kefu server and the mock upstream over loopback HTTP."""

from __future__ import annotations

import threading
import time

import httpx

from kefu.bot.texts import CannedTexts
from tests.support import MockLLM, SSEEvent, answer_text, auth, chat, iter_sse

SLOW = {"tps": 40, "tokens": 60, "chunk_chars": 2}


def _session(client: httpx.Client, user: str, session_id: str) -> dict:  # type: ignore[type-arg]
    response = client.get(f"/v1/sessions/{session_id}", headers=auth(user))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_chat_streams_answer_with_ordered_ids(client: httpx.Client) -> None:
    events = chat(client, "alice", "你好，请问发货要多久？")
    assert events[0].event == "session"
    turn_id = events[0].data["turn_id"]
    assert [e.id for e in events] == [f"{turn_id}:{i}" for i in range(1, len(events) + 1)]
    assert events[-1].event == "done"
    done = events[-1].data
    assert done["turn_id"] == turn_id and done["source"] == "llm" and done["model"] == "mock-chat"
    assert done["usage"]["completion_tokens"] > 0
    text = answer_text(events)
    assert "发货" in text
    stored = _session(client, "alice", events[0].data["session_id"])["messages"]
    assert [(m["role"], m["status"]) for m in stored] == [("user", "complete"), ("assistant", "complete")]
    assert stored[1]["content"] == text and stored[0]["content"] == "你好，请问发货要多久？"


def test_chat_sse_headers_disable_buffering(client: httpx.Client) -> None:
    with client.stream("POST", "/v1/chat", json={"message": "hi"}, headers=auth("alice")) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        list(iter_sse(response))


def test_chat_sends_history_to_model(client: httpx.Client, fresh_mock: MockLLM) -> None:
    first = chat(client, "bob", "我叫小明")
    session_id = first[0].data["session_id"]
    chat(client, "bob", "我叫什么？", session_id)
    sent = fresh_mock.stats()["last_request"]["body"]["messages"]
    contents = [m["content"] for m in sent]
    assert sent[0]["role"] == "system"
    assert contents[1] == "我叫小明" and contents[2] == answer_text(first)
    assert contents[-1] == "我叫什么？"
    assert sent[-1]["role"] == "user"


def test_chat_cancel_stores_interrupted(client: httpx.Client, fresh_mock: MockLLM) -> None:
    fresh_mock.script(SLOW)
    with client.stream("POST", "/v1/chat", json={"message": "讲个长故事"}, headers=auth("carol")) as response:
        events: list[SSEEvent] = []
        for event in iter_sse(response):
            if event is None:
                continue
            events.append(event)
            if event.event == "delta" and len(events) == 3:
                turn_id = events[0].data["turn_id"]
                r = client.post(f"/v1/chat/turns/{turn_id}/cancel", headers=auth("carol"))
                assert r.status_code == 200 and r.json()["cancelled"] is True
    assert events[-1].event == "error"
    assert events[-1].data["code"] == "cancelled"
    partial = answer_text(events)
    stored = _session(client, "carol", events[0].data["session_id"])["messages"]
    assert stored[-1]["role"] == "assistant" and stored[-1]["status"] == "interrupted"
    assert stored[-1]["content"] == partial and partial


def test_chat_upstream_cut_gives_error_and_interrupted_row(client: httpx.Client, fresh_mock: MockLLM) -> None:
    fresh_mock.script({"fail": "cut", "after_chunks": 3})
    events = chat(client, "dave", "你好")
    assert events[-1].event == "error"
    assert events[-1].data["retryable"] is True
    assert all(e.event != "done" for e in events)
    stored = _session(client, "dave", events[0].data["session_id"])["messages"]
    assert stored[-1]["status"] == "interrupted"
    assert stored[-1]["content"] == answer_text(events) != ""


def test_chat_upstream_429_before_text_gives_degraded_answer_not_white_screen(
    client: httpx.Client, fresh_mock: MockLLM
) -> None:
    fresh_mock.script({"fail": "429", "retry_after": 1}, {"fail": "429", "retry_after": 1}, {"fail": "429"})
    events = chat(client, "erin", "讲个笑话吧")
    assert [e.event for e in events][0] == "session" and events[-1].event == "done"
    assert events[-1].data["source"] == "fallback" and events[-1].data["model"] is None
    assert events[-1].data["handoff_offered"] is True
    text = answer_text(events)
    assert "人工" in text
    stored = _session(client, "erin", events[0].data["session_id"])["messages"]
    assert [(m["role"], m["status"], m["source"]) for m in stored] == [
        ("user", "complete", None),
        ("assistant", "complete", "fallback"),
    ]
    assert 'code="upstream_rate_limited"' in client.get("/metrics").text


def test_chat_greeting_while_the_provider_answers_429_gets_the_bots_greeting(
    client: httpx.Client, fresh_mock: MockLLM
) -> None:
    fresh_mock.script({"fail": "429", "retry_after": 1}, {"fail": "429", "retry_after": 1}, {"fail": "429"})
    events = chat(client, "erin2", "在吗")
    assert events[-1].event == "done" and events[-1].data["source"] == "smalltalk"
    assert answer_text(events) == CannedTexts().text("smalltalk_greeting", "zh")


def test_chat_provider_rejecting_stream_options_still_answers(client: httpx.Client, fresh_mock: MockLLM) -> None:
    fresh_mock.script({"fail": "reject_stream_options"})
    events = chat(client, "frank", "你好")
    assert events[-1].event == "done"
    assert answer_text(events)


def test_chat_resume_after_disconnect_returns_missing_events(client: httpx.Client, fresh_mock: MockLLM) -> None:
    fresh_mock.script(SLOW)
    seen: list[SSEEvent] = []
    with client.stream("POST", "/v1/chat", json={"message": "慢慢说"}, headers=auth("gina")) as response:
        for event in iter_sse(response):
            if event is not None:
                seen.append(event)
            if len(seen) == 3:
                break  # the browser drops
    turn_id = seen[0].data["turn_id"]
    headers = {**auth("gina"), "Last-Event-ID": seen[-1].id or ""}
    with client.stream("GET", f"/v1/chat/turns/{turn_id}/events", headers=headers) as response:
        assert response.status_code == 200
        rest = [e for e in iter_sse(response) if e is not None]
    ids = [e.id for e in seen + rest]
    assert ids == [f"{turn_id}:{i}" for i in range(1, len(ids) + 1)]  # no gap, no duplicate
    assert rest[-1].event == "done"
    full = answer_text(seen + rest)
    stored = _session(client, "gina", seen[0].data["session_id"])["messages"]
    assert stored[-1]["content"] == full and stored[-1]["status"] == "complete"
    # ?after= works the same, and a finished turn replays from the start
    with client.stream("GET", f"/v1/chat/turns/{turn_id}/events?after=0", headers=auth("gina")) as response:
        replay = [e for e in iter_sse(response) if e is not None]
    assert answer_text(replay) == full
    # nothing left after the last event: 204 stops EventSource reconnecting
    last = {**auth("gina"), "Last-Event-ID": replay[-1].id or ""}
    assert client.get(f"/v1/chat/turns/{turn_id}/events", headers=last).status_code == 204


def test_chat_disconnect_does_not_stop_the_turn(client: httpx.Client, fresh_mock: MockLLM) -> None:
    fresh_mock.script({"tps": 200, "tokens": 40})
    with client.stream("POST", "/v1/chat", json={"message": "hi"}, headers=auth("hank")) as response:
        first = next(e for e in iter_sse(response) if e is not None)
    session_id = first.data["session_id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        messages = _session(client, "hank", session_id)["messages"]
        if len(messages) == 2:
            break
        time.sleep(0.05)
    assert messages[-1]["role"] == "assistant" and messages[-1]["status"] == "complete"


def test_chat_second_turn_in_busy_session_is_409(client: httpx.Client, fresh_mock: MockLLM) -> None:
    fresh_mock.script(SLOW)
    with client.stream("POST", "/v1/chat", json={"message": "一"}, headers=auth("ivy")) as response:
        it = iter_sse(response)
        session = next(e for e in it if e is not None)
        r = client.post(
            "/v1/chat", json={"message": "二", "session_id": session.data["session_id"]}, headers=auth("ivy")
        )
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "turn_in_progress"
        client.post(f"/v1/chat/turns/{session.data['turn_id']}/cancel", headers=auth("ivy"))
        list(it)


def test_chat_heartbeat_comments_while_upstream_is_quiet(make_server, mock_llm: MockLLM) -> None:  # type: ignore[no-untyped-def]
    server = make_server(mock_llm, KEFU_SSE_HEARTBEAT="0.2")
    mock_llm.reset()
    mock_llm.script({"ttft": 1.0})
    with httpx.Client(base_url=server.url, timeout=30) as http:
        with http.stream("POST", "/v1/chat", json={"message": "hi"}, headers=auth("jack")) as response:
            frames = list(iter_sse(response))
    assert frames.count(None) >= 2
    assert [f.event for f in frames if f is not None][-1] == "done"


def test_chat_two_readers_see_the_same_events(client: httpx.Client, fresh_mock: MockLLM) -> None:
    fresh_mock.script(SLOW)
    watcher: list[SSEEvent] = []
    with client.stream("POST", "/v1/chat", json={"message": "hi"}, headers=auth("kate")) as response:
        it = iter_sse(response)
        first = next(e for e in it if e is not None)

        def watch() -> None:
            with httpx.Client(base_url=str(client.base_url), timeout=30) as other:
                url = f"/v1/chat/turns/{first.data['turn_id']}/events"
                with other.stream("GET", url, headers=auth("kate")) as r:
                    watcher.extend(e for e in iter_sse(r) if e is not None)

        thread = threading.Thread(target=watch)
        thread.start()
        mine = [first, *(e for e in it if e is not None)]
        thread.join(20)
    assert [e.id for e in watcher] == [e.id for e in mine]
