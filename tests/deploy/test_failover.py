"""Two kefu replicas sharing Redis and PostgreSQL behind nginx (deploy/nginx): a replica dies (SIGKILL) or is
stopped (SIGTERM) in the middle of a streamed answer, and the client carries on through the proxy."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kefu.engine.history import CUT_OFF
from tests.deploy.conftest import Cluster
from tests.support import KefuServer, MockLLM, SSEEvent, answer_text, auth, iter_sse

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

USER = "failover-shopper"


def active_turns(server: KefuServer) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "kefu_active_turns":
                return sample.value
    return 0.0


def runner_of_turn(cluster: Cluster) -> tuple[KefuServer, KefuServer]:
    """(the replica running the one active turn, the other one)."""
    a, b = cluster.replicas
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        busy = [active_turns(a), active_turns(b)]
        if busy == [1, 0]:
            return a, b
        if busy == [0, 1]:
            return b, a
        time.sleep(0.02)
    raise AssertionError(f"expected exactly one replica running a turn, saw {busy}")


def read_some(response: httpx.Response, n: int) -> tuple[list[SSEEvent], object]:
    """The first ``n`` events of a stream, and the iterator to read the rest."""
    it = iter_sse(response)
    seen: list[SSEEvent] = []
    for event in it:
        if event is not None:
            seen.append(event)
        if len(seen) == n:
            break
    return seen, it


def read_rest(it: object) -> list[SSEEvent]:
    """The remaining events until the stream ends or breaks (a killed replica cuts it)."""
    rest: list[SSEEvent] = []
    try:
        for event in it:  # type: ignore[attr-defined]
            if event is not None:
                rest.append(event)
    except httpx.HTTPError:
        pass
    return rest


def resume(http: httpx.Client, turn_id: str, last: SSEEvent) -> list[SSEEvent]:
    headers = {**auth(USER), "Last-Event-ID": last.id or ""}
    with http.stream("GET", f"/v1/chat/turns/{turn_id}/events", headers=headers) as response:
        assert response.status_code == 200, response.read()
        return [e for e in iter_sse(response) if e is not None]


def messages(http: httpx.Client, session_id: str) -> list[dict[str, str]]:
    response = http.get(f"/v1/sessions/{session_id}", headers=auth(USER))
    assert response.status_code == 200, response.text
    result: list[dict[str, str]] = response.json()["messages"]
    return result


def assert_seq(events: list[SSEEvent], turn_id: str) -> None:
    assert [e.id for e in events] == [f"{turn_id}:{i}" for i in range(1, len(events) + 1)]


def ask_again_and_check_history(
    http: httpx.Client, mock: MockLLM, session_id: str, before: list[dict[str, str]]
) -> list[dict[str, str]]:
    """The next message in the session is answered in full, with everything said so far sent to the model."""
    mock.script({})
    with http.stream(
        "POST", "/v1/chat", json={"message": "那我再问一次", "session_id": session_id}, headers=auth(USER)
    ) as response:
        assert response.status_code == 200, response.read()
        events = [e for e in iter_sse(response) if e is not None]
    assert events[-1].event == "done", events[-1]
    sent = mock.stats()["last_request"]["body"]["messages"]
    history = [(m["role"], m["content"]) for m in sent if m["role"] != "system"]
    # An interrupted answer goes back to the model marked as cut off, not as if it were complete.
    told = [(m["role"], m["content"] + (CUT_OFF if m["status"] == "interrupted" else "")) for m in before]
    assert history == [*told, ("user", "那我再问一次")]
    after = messages(http, session_id)
    assert after[: len(before)] == before
    assert [(m["role"], m["status"]) for m in after[len(before) :]] == [("user", "complete"), ("assistant", "complete")]
    assert after[-1]["content"] == answer_text(events)
    return after


def test_killed_replica_mid_stream(make_cluster: Callable[..., Cluster], mock_llm: MockLLM) -> None:
    mock_llm.reset()
    cluster = make_cluster(mock_llm)
    mock_llm.script({"tps": 10, "tokens": 200, "chunk_chars": 2})  # a 20-second answer
    with httpx.Client(base_url=cluster.proxy.url, timeout=30) as http:
        with http.stream("POST", "/v1/chat", json={"message": "我的订单到哪了？"}, headers=auth(USER)) as response:
            assert response.status_code == 200, response.read()
            seen, it = read_some(response, 3)
            turn_id, session_id = seen[0].data["turn_id"], seen[0].data["session_id"]
            victim, survivor = runner_of_turn(cluster)
            assert victim.proc is not None
            victim.proc.send_signal(signal.SIGKILL)
            seen += read_rest(it)
        victim.proc.wait(10)
        assert seen[-1].event == "delta", "a killed replica cannot have finished the turn"

        started = time.monotonic()
        rest = resume(http, turn_id, seen[-1])  # served by the survivor: nginx skips the dead replica
        assert time.monotonic() - started < 15
        assert rest[-1].event == "error"
        assert rest[-1].data["code"] == "turn_lost" and rest[-1].data["retryable"] is True
        assert_seq(seen + rest, turn_id)
        partial = answer_text(seen + rest)
        assert partial

        stored = messages(http, session_id)
        assert [(m["role"], m["status"]) for m in stored] == [("user", "complete"), ("assistant", "interrupted")]
        assert stored[0]["content"] == "我的订单到哪了？"
        assert stored[1]["content"] == partial

        ask_again_and_check_history(http, mock_llm, session_id, stored)
        assert active_turns(survivor) == 0


def test_sigterm_lets_a_streamed_turn_finish(make_cluster: Callable[..., Cluster], mock_llm: MockLLM) -> None:
    mock_llm.reset()
    cluster = make_cluster(mock_llm)
    mock_llm.script({"tps": 10, "tokens": 40, "chunk_chars": 2})  # a 4-second answer
    with httpx.Client(base_url=cluster.proxy.url, timeout=30) as http:
        with http.stream("POST", "/v1/chat", json={"message": "退货怎么办？"}, headers=auth(USER)) as response:
            assert response.status_code == 200, response.read()
            seen, it = read_some(response, 3)
            turn_id, session_id = seen[0].data["turn_id"], seen[0].data["session_id"]
            draining, survivor = runner_of_turn(cluster)
            assert draining.proc is not None
            draining.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            # Meanwhile new work goes to the other replica (the draining one no longer accepts connections).
            with httpx.Client(base_url=cluster.proxy.url, timeout=30) as other:
                mock_llm.script({})
                with other.stream("POST", "/v1/chat", json={"message": "在吗"}, headers=auth("bystander")) as r2:
                    assert r2.status_code == 200
                    assert [e for e in iter_sse(r2) if e is not None][-1].event == "done"
            seen += read_rest(it)
        assert seen[-1].event == "done", seen[-1]
        assert_seq(seen, turn_id)
        assert draining.proc.wait(20) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown
        stored = messages(http, session_id)
        assert [(m["role"], m["status"]) for m in stored] == [("user", "complete"), ("assistant", "complete")]
        assert stored[1]["content"] == answer_text(seen) and len(stored[1]["content"]) == 40
        ask_again_and_check_history(http, mock_llm, session_id, stored)
        assert active_turns(survivor) == 0


def test_sigterm_waits_for_a_turn_nobody_is_reading(make_cluster: Callable[..., Cluster], mock_llm: MockLLM) -> None:
    """The client went away before SIGTERM: the server has no open request, but the turn still finishes
    (KEFU_SHUTDOWN_GRACE) and a later resume on the other replica replays it to ``done``."""
    mock_llm.reset()
    cluster = make_cluster(mock_llm, KEFU_SHUTDOWN_GRACE="30")
    mock_llm.script({"tps": 10, "tokens": 80, "chunk_chars": 2})  # an 8-second answer
    with httpx.Client(base_url=cluster.proxy.url, timeout=30) as http:
        with http.stream("POST", "/v1/chat", json={"message": "发票怎么开？"}, headers=auth(USER)) as response:
            seen, _ = read_some(response, 2)
        turn_id, session_id = seen[0].data["turn_id"], seen[0].data["session_id"]
        draining, _survivor = runner_of_turn(cluster)
        assert draining.proc is not None
        draining.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert draining.proc.wait(40) in (0, -signal.SIGTERM)
        assert time.monotonic() - started > 3, "the process should have waited for its running turn"
        rest = resume(http, turn_id, seen[-1])
        assert rest[-1].event == "done", rest[-1]
        assert_seq(seen + rest, turn_id)
        stored = messages(http, session_id)
        assert [(m["role"], m["status"]) for m in stored] == [("user", "complete"), ("assistant", "complete")]
        assert stored[1]["content"] == answer_text(seen + rest) and len(stored[1]["content"]) == 80
