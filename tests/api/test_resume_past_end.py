"""Resuming a turn from a point past its last event: while the turn runs, heartbeats, and the stream ends when the
turn does (it used to wait, silent, until the finished turn's lease lapsed); once it is over, 204 at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from tests.support import KefuServer, MockLLM, auth, iter_sse

Make = Callable[..., KefuServer]


def test_resume_from_past_the_end_of_a_running_turn_beats_and_ends_with_the_turn(
    make_server: Make, fresh_mock: MockLLM
) -> None:
    # A lease far longer than the test: only the end of the turn may end the stream.
    server = make_server(fresh_mock, KEFU_SSE_HEARTBEAT="0.2", KEFU_TURN_LEASE_SECONDS="600")
    fresh_mock.script({"tokens": 400, "tps": 20, "chunk_chars": 1})  # 20 s of answer: cancelled long before
    started: dict[str, str] = {}

    def ask() -> None:
        with (
            httpx.Client(base_url=server.url, timeout=60) as http,
            http.stream("POST", "/v1/chat", json={"message": "慢慢说"}, headers=auth("res-user")) as response,
        ):
            for event in iter_sse(response):
                if event is not None and event.event == "session":
                    started["turn"] = event.data["turn_id"]

    asker = threading.Thread(target=ask)
    asker.start()
    deadline = time.monotonic() + 10
    while "turn" not in started and time.monotonic() < deadline:
        time.sleep(0.01)
    turn = started["turn"]
    frames: list[object] = []
    ended = float("inf")
    with httpx.Client(base_url=server.url, timeout=20) as http:
        headers = {**auth("res-user"), "Last-Event-ID": f"{turn}:9999"}
        with http.stream("GET", f"/v1/chat/turns/{turn}/events", headers=headers) as resumed:
            assert resumed.status_code == 200
            for frame in iter_sse(resumed):
                frames.append(frame)
                if frame is None and len(frames) == 1:  # the first heartbeat: now end the turn
                    assert http.post(f"/v1/chat/turns/{turn}/cancel", headers=auth("res-user")).json()["cancelled"]
                    ended = time.monotonic()
                # Before the fix it went on beating until the lease lapsed (here: 10 minutes).
                assert time.monotonic() - ended < 30, "the stream outlived its turn"
        # The stream ended, with heartbeats only: nothing lies past 9999.
        assert frames and all(frame is None for frame in frames)
        assert http.get(f"/v1/chat/turns/{turn}/events?after=9999", headers=auth("res-user")).status_code == 204
    asker.join(30)
