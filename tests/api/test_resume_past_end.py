"""Resuming a running turn from a point past its last event is refused (422), instead of a stream that waited
for events that would never come."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from tests.support import KefuServer, MockLLM, auth, iter_sse

Make = Callable[..., KefuServer]


def test_resume_from_past_the_end_of_a_running_turn_is_refused(make_server: Make, fresh_mock: MockLLM) -> None:
    server = make_server(fresh_mock)
    fresh_mock.script({"tokens": 40, "tps": 20, "chunk_chars": 1})  # about 2 s of answer
    started: dict[str, str] = {}
    done = threading.Event()

    def ask() -> None:
        with (
            httpx.Client(base_url=server.url, timeout=30) as http,
            http.stream("POST", "/v1/chat", json={"message": "慢慢说"}, headers=auth("res-user")) as response,
        ):
            for event in iter_sse(response):
                if event is not None and event.event == "session":
                    started["turn"] = event.data["turn_id"]
        done.set()

    asker = threading.Thread(target=ask)
    asker.start()
    deadline = time.monotonic() + 10
    while "turn" not in started and time.monotonic() < deadline:
        time.sleep(0.01)
    with httpx.Client(base_url=server.url, timeout=5) as http:
        turn = started["turn"]
        refused = http.get(f"/v1/chat/turns/{turn}/events", params={"after": 9999}, headers=auth("res-user"))
        assert not done.is_set(), "the turn was still running"
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_resume_point"
        header = http.get(f"/v1/chat/turns/{turn}/events", headers={**auth("res-user"), "Last-Event-ID": f"{turn}:500"})
        assert header.status_code == 422
    asker.join(15)
    with httpx.Client(base_url=server.url, timeout=5) as http:  # once it is over: nothing left, 204
        assert http.get(f"/v1/chat/turns/{turn}/events?after=9999", headers=auth("res-user")).status_code == 204
