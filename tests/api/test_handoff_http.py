"""People in the loop through the public API, on real ``kefu serve`` processes: the shopper asks for a person, the
bot falls silent (counted at the mock upstream), an agent claims and answers through the desk API, the feed
delivers every event exactly once across a reconnect, the agent hands back to the bot, closes, the shopper rates.
Two replicas on Redis + PostgreSQL for the cross-replica case."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx
import orjson

from kefu.config import DEMO_BOT_DIR
from kefu.handoff.webhooks import verify
from tests.support import ROOT, KefuServer, MockLLM, SSEEvent, answer_text, auth, chat, free_port, iter_sse

Make = Callable[..., KefuServer]
ADMIN = {"Authorization": "Bearer test-api-key"}
PASSWORD = "correct horse battery"


def add_agent(server: KefuServer, name: str, role: str = "agent", display: str | None = None) -> None:
    """``kefu agent add`` against the server's database, as an operator would."""
    args = [sys.executable, "-m", "kefu", "agent", "add", name, "--role", role, "--password-stdin"]
    if display:
        args += ["--display-name", display]
    done = subprocess.run(
        args,
        input=PASSWORD + "\n",
        env={**server.env, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def login(http: httpx.Client, name: str) -> dict[str, str]:
    response = http.post("/desk/api/login", json={"name": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert "kefu_desk" in response.headers.get("set-cookie", "") and "HttpOnly" in response.headers["set-cookie"]
    return {"Authorization": f"Bearer {response.json()['token']}"}


def say(http: httpx.Client, user: str, text: str, session: str | None) -> tuple[str, list[SSEEvent], str]:
    events = chat(http, user, text, session)
    return answer_text(events), events, events[0].data["session_id"]


def feed(
    http: httpx.Client,
    path: str,
    headers: dict[str, str],
    stop: Callable[[list[SSEEvent]], bool],
    after: int | None = None,
) -> list[SSEEvent]:
    """Read a conversation feed until ``stop(events)``."""
    got: list[SSEEvent] = []
    params = {"after": after} if after is not None else None
    with http.stream("GET", path, headers=headers, params=params, timeout=30) as response:
        assert response.status_code == 200, response.read()
        for event in iter_sse(response):
            if event is None:
                continue
            got.append(event)
            if stop(got):
                break
    return got


def seqs(events: list[SSEEvent]) -> list[int]:
    return [int(e.id.rsplit(":", 1)[1]) for e in events if e.id]


def demo(make_server: Make, mock: MockLLM | None = None, **extra: str) -> KefuServer:
    return make_server(
        mock, **({"KEFU_DEMO": "1", "KEFU_BOT_DIR": str(DEMO_BOT_DIR), "KEFU_SSE_HEARTBEAT": "1"} | extra)
    )


def test_handoff_loop_over_http_bot_silent_while_a_person_owns_it(make_server: Make, mock_llm: MockLLM) -> None:
    mock_llm.reset()
    server = demo(make_server, mock_llm)
    add_agent(server, "alice", display="小艾")
    add_agent(server, "bob")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        text, events, sid = say(http, "shopper", "转人工", None)
        names = [e.event for e in events]
        assert names[-2:] == ["handoff", "done"]
        handoff = events[-2].data
        done = events[-1].data
        assert handoff["state"] == "queued" and handoff["reason"] == "shopper_asked" and handoff["position"] == 0
        assert done["handoff"] == {"id": handoff["id"], "state": "queued"} and "已为您登记转人工" in text

        # Queued: the bot never answers, whatever is asked (no model call, no FAQ, no flow).
        before = mock_llm.stats()["requests"]
        for question in ("怎么退货", "我的快递到哪了", "讲个笑话"):
            text, events, _ = say(http, "shopper", question, sid)
            assert text == "" and events[-1].data["source"] == "human"
            assert events[-2].event == "handoff" and events[-2].data["state"] == "queued"
        assert mock_llm.stats()["requests"] == before

        alice, bob = login(http, "alice"), login(http, "bob")
        queue = http.get("/desk/api/queue", headers=alice).json()["conversations"]
        assert [(c["session_id"], c["state"], c["unread"]) for c in queue] == [(sid, "queued", 3)]
        assert queue[0]["preview"] == "讲个笑话" and queue[0]["reason_code"] == "shopper_asked"

        # Two agents claim at once: exactly one wins.
        results: list[int] = []

        def claim(headers: dict[str, str]) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as own:
                results.append(own.post(f"/desk/api/conversations/{sid}/claim", headers=headers).status_code)

        threads = [threading.Thread(target=claim, args=(h,)) for h in (alice, bob)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [200, 409]
        assert http.get(f"/desk/api/conversations/{sid}", headers=ADMIN).status_code == 403  # a key is no agent
        # A non-admin agent cannot open a conversation another agent has.
        mine, theirs = (
            (alice, bob)
            if http.get(f"/desk/api/conversations/{sid}", headers=alice).status_code == 200
            else (bob, alice)
        )
        assert http.get(f"/desk/api/conversations/{sid}", headers=theirs).status_code == 403
        refused = http.post(f"/desk/api/conversations/{sid}/messages", headers=theirs, json={"text": "x"})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_yours"

        sent = http.post(f"/desk/api/conversations/{sid}/messages", headers=mine, json={"text": "您好，我来帮您"})
        assert sent.status_code == 200
        text, events, _ = say(http, "shopper", "我的订单DD20261105002还没到", sid)
        assert text == "" and events[-2].data["state"] == "agent"
        assert mock_llm.stats()["requests"] == before

        # The shopper's feed: every event once, in order; resuming after a seq gives exactly the rest.
        shopper = auth("shopper")
        got = feed(http, f"/v1/sessions/{sid}/events", shopper, lambda ev: any(e.event == "agent" for e in ev))
        agent_msgs = [e for e in got if e.event == "agent"]
        assert agent_msgs[0].data["text"] == "您好，我来帮您" and agent_msgs[0].data["agent"]["name"]
        assert seqs(got) == sorted(set(seqs(got))) and seqs(got)[0] == 1
        kinds = [e.event for e in got]
        assert kinds[0] == "handoff" and "notice" in kinds  # queued, then "已接入" after the claim
        middle = seqs(got)[1]
        rest = feed(http, f"/v1/sessions/{sid}/events", shopper, lambda ev: ev[-1].event == "agent", after=middle)
        assert seqs(rest)[0] == middle + 1 and set(seqs(rest)).isdisjoint(seqs(got)[:2])
        # Someone else's session: 404 (as for one that does not exist).
        assert http.get(f"/v1/sessions/{sid}/events", headers=auth("intruder")).status_code == 404

        # The desk's feed includes the shopper's relayed messages.
        desk_events = feed(
            http,
            f"/desk/api/conversations/{sid}/events",
            mine,
            lambda ev: any(e.event == "user" and "DD20261105002" in e.data["text"] for e in ev),
        )
        assert [e.data["text"] for e in desk_events if e.event == "user"][:3] == [
            "怎么退货",
            "我的快递到哪了",
            "讲个笑话",
        ]

        # Private notes: only their author (and admins).
        assert (
            http.post(
                f"/desk/api/conversations/{sid}/notes", headers=mine, json={"text": "VIP 客户", "private": True}
            ).status_code
            == 200
        )
        assert (
            http.post(f"/desk/api/conversations/{sid}/notes", headers=mine, json={"text": "已查物流"}).status_code
            == 200
        )
        notes = http.get(f"/desk/api/conversations/{sid}", headers=mine).json()["notes"]
        assert [n["text"] for n in notes] == ["VIP 客户", "已查物流"]

        # Back to the bot: the next question gets a bot answer again (the FAQ here, still no model call).
        assert http.post(f"/desk/api/conversations/{sid}/release", headers=mine).status_code == 200
        text, events, _ = say(http, "shopper", "怎么退货", sid)
        assert events[-1].data["source"] == "faq" and "退" in text

        # A second handoff, closed with an outcome, rated once.
        text, events, _ = say(http, "shopper", "转人工", sid)
        assert events[-2].data["state"] == "queued"
        assert http.post(f"/desk/api/conversations/{sid}/claim", headers=mine).status_code == 200
        assert http.post(f"/v1/sessions/{sid}/rating", headers=shopper, json={"score": 5}).status_code == 409
        closed = http.post(f"/desk/api/conversations/{sid}/close", headers=mine, json={"outcome": "resolved"})
        assert closed.status_code == 200 and closed.json()["handoff"]["state"] == "closed"
        assert http.post(f"/v1/sessions/{sid}/rating", headers=shopper, json={"score": 9}).status_code == 422
        assert (
            http.post(f"/v1/sessions/{sid}/rating", headers=shopper, json={"score": 5, "comment": "很快"}).status_code
            == 204
        )
        assert http.post(f"/v1/sessions/{sid}/rating", headers=shopper, json={"score": 4}).status_code == 409
        state = http.get(f"/v1/sessions/{sid}/handoff", headers=shopper).json()
        assert state["state"] == "closed" and state["handoff"]["rating"] == 5
        transcript = http.get(f"/v1/sessions/{sid}", headers=shopper).json()["messages"]
        assert [m["content"] for m in transcript if m["role"] == "agent"] == ["您好，我来帮您"]
        metrics = http.get("/metrics").text
        assert "kefu_csat_sum 5.0" in metrics and 'kefu_handoffs_total{reason="shopper_asked"} 2.0' in metrics
        admin_list = http.get("/v1/admin/handoffs?status=", headers=ADMIN).json()["handoffs"]
        assert [h["status"] for h in admin_list] == ["bot", "closed"]


def test_desk_endpoints_are_for_agents_only(make_server: Make) -> None:
    server = demo(make_server)
    add_agent(server, "carol")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/desk/api/queue").status_code == 401
        assert http.get("/desk/api/queue", headers=auth("shopper")).status_code == 403
        assert http.get("/desk/api/queue", headers=ADMIN).status_code == 403
        bad = http.post("/desk/api/login", json={"name": "carol", "password": "wrong password"})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "bad_credentials"
        carol = login(http, "carol")
        assert http.get("/desk/api/me", headers=carol).json()["agent"]["name"] == "carol"
        assert http.get("/desk/api/webhooks", headers=carol).status_code == 403  # admins only
        assert http.post("/desk/api/logout", headers=carol).status_code == 204
        assert http.get("/desk/api/me", headers=carol).status_code == 401
        # The shopper's button on a session with no running turn; idempotent while queued.
        _, _, sid = say(http, "shopper2", "你好", None)
        first = http.post(f"/v1/sessions/{sid}/handoff", headers=auth("shopper2"), json={})
        again = http.post(f"/v1/sessions/{sid}/handoff", headers=auth("shopper2"), json={})
        assert first.status_code == again.status_code == 200
        assert first.json()["handoff"]["id"] == again.json()["handoff"]["id"]
        assert first.json()["handoff"]["reason"] == "button"
        assert http.post(f"/v1/sessions/{sid}/handoff", headers=auth("someone"), json={}).status_code == 404
        # "回到机器人": the shopper takes it back from the queue.
        text, events, _ = say(http, "shopper2", "回到机器人", sid)
        assert events[-2].data["state"] == "bot" and "智能助手" in text


def test_handoff_across_two_replicas_on_redis_and_postgres(make_server: Make, redis_url: str, postgres_db: str) -> None:
    shared = {
        "KEFU_REDIS_URL": redis_url,
        "KEFU_REDIS_PREFIX": f"kefu-test-{uuid.uuid4().hex[:8]}",
        "KEFU_DATABASE_URL": postgres_db,
    }
    a, b = demo(make_server, **shared), demo(make_server, **shared)
    add_agent(a, "dave", display="小D")
    with httpx.Client(base_url=a.url, timeout=30) as http_a, httpx.Client(base_url=b.url, timeout=30) as http_b:
        _, events, sid = say(http_a, "roamer", "转人工", None)
        assert events[-2].data["state"] == "queued"
        dave = login(http_b, "dave")
        got: list[SSEEvent] = []
        ready = threading.Event()

        def listen() -> None:
            with httpx.Client(base_url=a.url, timeout=30) as own:
                with own.stream("GET", f"/v1/sessions/{sid}/events", headers=auth("roamer")) as response:
                    for event in iter_sse(response):
                        ready.set()
                        if event is not None:
                            got.append(event)
                            if event.event == "agent" and event.data["text"] == "第二条":
                                return

        listener = threading.Thread(target=listen)
        listener.start()
        ready.wait(10)
        assert http_b.post(f"/desk/api/conversations/{sid}/claim", headers=dave).status_code == 200
        for text in ("第一条", "第二条"):
            assert (
                http_b.post(f"/desk/api/conversations/{sid}/messages", headers=dave, json={"text": text}).status_code
                == 200
            )
        listener.join(20)
        assert not listener.is_alive()
        assert [e.data["text"] for e in got if e.event == "agent"] == ["第一条", "第二条"]
        assert [e.data["agent"]["name"] for e in got if e.event == "agent"] == ["小D", "小D"]
        # The shopper's message on replica A reaches the desk's queue (unread) on replica B.
        _, events, _ = say(http_a, "roamer", "收到", sid)
        assert events[-1].data["source"] == "human"
        queue = http_b.get("/desk/api/queue", headers=dave).json()["conversations"]
        assert queue[0]["unread"] >= 1 and queue[0]["preview"] == "收到"


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:  # noqa: N802 (the http.server API)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


def test_webhooks_are_signed_and_a_dead_receiver_does_not_hold_up_turns(make_server: Make, tmp_path: Path) -> None:
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    dead_port = free_port()  # nothing listens there
    bot = tmp_path / "bot"
    shutil.copytree(DEMO_BOT_DIR, bot)
    (bot / "handoff.yaml").write_text(
        "webhooks:\n"
        f"  - {{name: team, url: 'http://127.0.0.1:{receiver.server_port}/hook', secret_env: TEST_HOOK_SECRET}}\n"
        f"  - {{name: gone, url: 'http://127.0.0.1:{dead_port}/hook', events: [handoff.requested]}}\n",
        encoding="utf-8",
    )
    server = demo(make_server, KEFU_BOT_DIR=str(bot), TEST_HOOK_SECRET="s3cret")
    add_agent(server, "erin", role="admin")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http_:
            _, events, sid = say(http_, "hooked", "转人工", None)
            assert events[-2].data["state"] == "queued"  # answered although one receiver is dead
            erin = login(http_, "erin")
            assert http_.post(f"/desk/api/conversations/{sid}/claim", headers=erin).status_code == 200
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(_Receiver.received) < 2:
                time.sleep(0.1)
            kinds = [orjson.loads(body)["event"] for _, body in _Receiver.received]
            assert kinds[:2] == ["handoff.requested", "conversation.assigned"]
            headers, body = _Receiver.received[0]
            assert verify("s3cret", headers["x-kefu-signature"], body)
            assert not verify("wrong", headers["x-kefu-signature"], body)
            assert orjson.loads(body)["data"]["session_id"] == sid
            while time.monotonic() < deadline:
                deliveries = http_.get("/desk/api/webhooks", headers=erin).json()["deliveries"]
                gone = [d for d in deliveries if d["target"] == "gone"]
                if gone and gone[0]["attempts"] >= 1 and gone[0]["last_error"]:
                    break
                time.sleep(0.2)
            assert gone and gone[0]["status"] == "pending" and gone[0]["last_error"]
            # Deleting the conversation deletes its deliveries too (their bodies quote it).
            assert http_.delete(f"/v1/sessions/{sid}", headers=auth("hooked")).status_code == 204
            left = http_.get("/desk/api/webhooks", headers=erin).json()["deliveries"]
            assert [d for d in left if d["session_id"] == sid] == []
    finally:
        receiver.shutdown()
