"""Data-subject requests and retention through the public API: real ``kefu serve`` processes (demo bot), the mock
upstream, SQLite or PostgreSQL, memory or Redis hot state."""

from __future__ import annotations

import hashlib
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from kefu.config import DEMO_BOT_DIR
from tests.support import KefuServer, MockLLM, answer_text, auth, chat, iter_sse

Make = Callable[..., KefuServer]
ADMIN = {"Authorization": "Bearer test-api-key"}
PHONE = "13800138000"


def demo(make_server: Make, mock: MockLLM | None, **extra: str) -> KefuServer:
    return make_server(mock, **({"KEFU_DEMO": "1", "KEFU_BOT_DIR": str(DEMO_BOT_DIR)} | extra))


def converse(http: httpx.Client, user: str) -> tuple[list[str], list[str]]:
    """A conversation with a flow and a handoff, and a second one; returns (session ids, turn ids)."""
    sessions, turns = [], []
    events = chat(http, user, f"我要改地址，手机{PHONE}")
    sid = events[0].data["session_id"]
    sessions.append(sid)
    turns.append(events[0].data["turn_id"])
    for text in ("DD20261110003", "1234", "转人工"):
        events = chat(http, user, text, sid)
        turns.append(events[0].data["turn_id"])
    assert http.post(f"/v1/sessions/{sid}/handoff", json={}, headers=auth(user)).status_code in (200, 201, 409)
    events = chat(http, user, "运费多少")
    sessions.append(events[0].data["session_id"])
    turns.append(events[0].data["turn_id"])
    return sessions, turns


def test_a_shopper_lists_exports_and_erases_their_data(make_server: Make, fresh_mock: MockLLM) -> None:
    server = demo(make_server, fresh_mock)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        sessions, turns = converse(http, "erin")
        chat(http, "other", "运费多少")
        listed = http.get("/v1/sessions", params={"limit": 1}, headers=auth("erin")).json()
        assert len(listed["sessions"]) == 1 and listed["next_cursor"]
        rest = http.get("/v1/sessions", params={"cursor": listed["next_cursor"]}, headers=auth("erin")).json()
        assert {s["session_id"] for s in listed["sessions"] + rest["sessions"]} == set(sessions)
        assert rest["next_cursor"] is None
        assert http.get("/v1/sessions", params={"cursor": "garbage"}, headers=auth("erin")).status_code == 422
        assert http.get("/v1/sessions", params={"limit": 1000}, headers=auth("erin")).status_code == 422

        # Someone else's conversations are not there for them: 404, as for one that does not exist.
        for sid in sessions:
            assert http.get(f"/v1/sessions/{sid}", headers=auth("other")).status_code == 404
            assert http.delete(f"/v1/sessions/{sid}", headers=auth("other")).status_code == 404
        assert http.get(f"/v1/chat/turns/{turns[0]}/events", headers=auth("other")).status_code == 404
        theirs = http.get("/v1/me/export", headers=auth("other")).json()["sessions"]
        assert len(theirs) == 1 and not set(sessions) & {s["session_id"] for s in theirs}

        export = http.get("/v1/me/export", headers=auth("erin")).json()
        assert export["user_id"] == "erin" and len(export["sessions"]) == 2
        first = next(s for s in export["sessions"] if s["session_id"] == sessions[0])
        assert any(PHONE in m["content"] for m in first["messages"])
        assert first["handoffs"] and "desk_notes" not in first

        # Before erasure a turn's events can be replayed; after, not even from the turn log.
        assert http.get(f"/v1/chat/turns/{turns[0]}/events", headers=auth("erin")).status_code == 200
        erased = http.delete("/v1/me", headers=auth("erin"))
        assert erased.status_code == 200, erased.text
        counts = erased.json()["erased"]
        assert counts["sessions"] == 2 and counts["messages"] >= 8 and counts["handoff_requests"] >= 1
        for sid in sessions:
            assert http.get(f"/v1/sessions/{sid}", headers=auth("erin")).status_code == 404
        for turn in turns:
            assert http.get(f"/v1/chat/turns/{turn}/events", headers=auth("erin")).status_code == 404
        assert http.get("/v1/sessions", headers=auth("erin")).json()["sessions"] == []
        assert len(http.get("/v1/sessions", headers=auth("other")).json()["sessions"]) == 1  # others untouched

        audit = http.get("/v1/admin/privacy/audit", headers=ADMIN).json()["records"]
        erase = next(r for r in audit if r["action"] == "erase")
        assert erase["subject"] == hashlib.sha256(b"erin").hexdigest() and erase["actor"] == "shopper"
        assert "erin" not in str(audit)
        assert http.get("/v1/admin/privacy/audit").status_code == 401


def test_deleting_one_conversation_leaves_nothing_to_replay(make_server: Make, fresh_mock: MockLLM) -> None:
    server = demo(make_server, fresh_mock)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        events = chat(http, "ida", f"我的电话 {PHONE}，运费多少")
        sid, turn = events[0].data["session_id"], events[0].data["turn_id"]
        replay = http.get(f"/v1/chat/turns/{turn}/events", params={"after": 0}, headers=auth("ida"))
        assert replay.status_code == 200 and "event: done" in replay.text
        assert http.delete(f"/v1/sessions/{sid}", headers=auth("ida")).status_code == 204
        assert http.get(f"/v1/chat/turns/{turn}/events", params={"after": 0}, headers=auth("ida")).status_code == 404


def test_erasure_stops_a_running_turn_first(make_server: Make, fresh_mock: MockLLM) -> None:
    server = demo(make_server, fresh_mock, KEFU_TURN_LEASE_SECONDS="1.5")
    fresh_mock.script({"ttft": 0.05, "tps": 20, "tokens": 400})  # a 20-second answer
    with httpx.Client(base_url=server.url, timeout=30) as http:
        seen: list[str] = []
        with http.stream(
            "POST", "/v1/chat", json={"message": "讲讲你们的售后政策", "session_id": None}, headers=auth("jay")
        ) as response:
            assert response.status_code == 200
            stream = iter_sse(response)
            for event in stream:
                if event is not None:
                    seen.append(event.event)
                    if event.event == "delta":
                        break
            started = time.monotonic()
            erased = http.delete("/v1/me", headers=auth("jay"))
            assert erased.status_code == 200, erased.text
            assert erased.json()["erased"]["sessions"] == 1 and time.monotonic() - started < 10
            seen += [e.event for e in stream if e is not None]
        assert seen[-1] == "error"  # the stream ended; it did not run on for 20 s
        assert http.get("/v1/sessions", headers=auth("jay")).json()["sessions"] == []


def test_admin_export_and_erase_by_user_id(make_server: Make, fresh_mock: MockLLM, tmp_path: Path) -> None:
    server = demo(make_server, fresh_mock)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        sessions, _ = converse(http, "fay")
        assert http.get("/v1/admin/privacy/users/nobody/export", headers=ADMIN).status_code == 404
        assert http.get("/v1/admin/privacy/users/fay/export").status_code == 401
        export = http.get("/v1/admin/privacy/users/fay/export?include_notes=true", headers=ADMIN).json()
        assert export["desk_notes_included"] is True and len(export["sessions"]) == 2
        assert http.delete("/v1/admin/privacy/users/fay", headers=ADMIN).json()["erased"]["sessions"] == 2
        assert http.delete("/v1/admin/privacy/users/fay", headers=ADMIN).status_code == 404
    server.stop()
    # Nothing about the user, their sessions or turns is left in any table of the database.
    db = sqlite3.connect(tmp_path / "kefu.db")
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        rows = db.execute(f'SELECT * FROM "{table}"').fetchall()  # noqa: S608 (table names from the schema)
        dump = repr(rows)
        assert "'fay'" not in dump, table
        for sid in sessions:
            assert sid not in dump, table


def test_retention_anonymises_then_deletes(make_server: Make, fresh_mock: MockLLM) -> None:
    # 0.0005 h = 1.8 s; 0.00004 days = 3.5 s: the sweep is run by hand (KEFU_RETENTION_SWEEP_SECONDS=0).
    server = demo(
        make_server,
        fresh_mock,
        KEFU_RETENTION_ANONYMISE_HOURS="0.0005",
        KEFU_RETENTION_DELETE_DAYS="0.00004",
        KEFU_RETENTION_SWEEP_SECONDS="0",
    )
    fresh_mock.script({"text": "好的，已记下 [手机号1]。"})
    with httpx.Client(base_url=server.url, timeout=30) as http:
        events = chat(http, "gus", f"我的电话是 {PHONE}，邮箱 gus@example.com，东西还没收到怎么办呀")
        sid = events[0].data["session_id"]
        assert PHONE in answer_text(events)
        assert http.post("/v1/admin/privacy/sweep", headers=ADMIN).json() == {
            "ran": True,
            "anonymised": 0,
            "deleted": 0,
            "rows": {},
            "turn_logs": 0,
        }
        time.sleep(2.0)
        swept = http.post("/v1/admin/privacy/sweep", headers=ADMIN).json()
        assert swept["anonymised"] == 1 and swept["deleted"] == 0
        messages = http.get(f"/v1/sessions/{sid}", headers=auth("gus")).json()["messages"]
        assert messages[0]["content"] == "我的电话是 [手机号]，邮箱 [邮箱]，东西还没收到怎么办呀"
        assert PHONE not in str(messages) and "[手机号]" in messages[1]["content"]
        time.sleep(2.0)
        swept = http.post("/v1/admin/privacy/sweep", headers=ADMIN).json()
        assert swept["deleted"] == 1
        assert http.get(f"/v1/sessions/{sid}", headers=auth("gus")).status_code == 404
        sweeps = http.get("/v1/admin/privacy/audit", headers=ADMIN).json()["records"]
        assert [r["action"] for r in sweeps][:2] == ["sweep", "sweep"] and sweeps[0]["subject"] is None


@pytest.mark.redis
def test_erasure_leaves_no_key_in_redis(make_server: Make, fresh_mock: MockLLM, redis_url: str) -> None:
    prefix = f"kefu-erase-{uuid.uuid4().hex[:8]}"
    server = demo(make_server, fresh_mock, KEFU_REDIS_URL=redis_url, KEFU_REDIS_PREFIX=prefix)
    client = redis.Redis.from_url(redis_url)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        sessions, turns = converse(http, "hal")
        before = [k.decode() for k in client.scan_iter(f"{prefix}*")]
        assert any(t in k for k in before for t in turns), before  # the turn logs were there
        assert http.delete("/v1/admin/privacy/users/hal", headers=ADMIN).status_code == 200
        after = [k.decode() for k in client.scan_iter(f"{prefix}*")]
    left = [k for k in after if any(i in k for i in (*sessions, *turns, "hal"))]
    assert left == [], left
    for key in after:  # what is left is global (rate limits, locks of jobs, the answer cache), never about hal
        value = client.dump(key) or b""
        assert not any(i.encode() in value for i in (*sessions, *turns)), key


def test_the_server_sweeps_in_the_background(make_server: Make, fresh_mock: MockLLM) -> None:
    # 0.0003 h = 1.1 s idle; a sweep every 0.5 s.
    server = demo(make_server, fresh_mock, KEFU_RETENTION_ANONYMISE_HOURS="0.0003", KEFU_RETENTION_SWEEP_SECONDS="0.5")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        sid = chat(http, "kim", f"电话 {PHONE}，运费多少")[0].data["session_id"]
        deadline = time.monotonic() + 15
        first = ""
        while time.monotonic() < deadline:
            first = http.get(f"/v1/sessions/{sid}", headers=auth("kim")).json()["messages"][0]["content"]
            if PHONE not in first:
                break
            time.sleep(0.2)
        assert first == "电话 [手机号]，运费多少"
        records = http.get("/v1/admin/privacy/audit", headers=ADMIN).json()["records"]
        assert any(r["action"] == "sweep" and r["actor"] == "sweep" and r["details"]["anonymised"] for r in records)
