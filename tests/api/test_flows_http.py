"""Task flows through the public API: real ``kefu serve`` processes, the demo shop's merchant API over loopback,
the mock upstream for the model path; restarts and a second replica continue a flow at the same step."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from kefu.config import DEMO_BOT_DIR
from tests.support import KefuServer, MockLLM, SSEEvent, answer_text, chat

Make = Callable[..., KefuServer]
ADMIN = {"Authorization": "Bearer test-api-key"}


def demo_server(make_server: Make, mock: MockLLM | None = None, **extra: str) -> KefuServer:
    return make_server(mock, **({"KEFU_DEMO": "1", "KEFU_BOT_DIR": str(DEMO_BOT_DIR)} | extra))


def done_of(events: list[SSEEvent]) -> dict[str, Any]:
    assert events[-1].event == "done", events[-1]
    return events[-1].data


def say(http: httpx.Client, user: str, text: str, session: str | None) -> tuple[str, dict[str, Any], str]:
    events = chat(http, user, text, session)
    return answer_text(events), done_of(events), events[0].data["session_id"]


def test_bare_order_number_offers_its_flows_as_suggestions(make_server: Make) -> None:
    server = demo_server(make_server)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        text, done, sid = say(http, "shopper-offer", "DD20261105002", None)
        assert "DD20261105002" in text
        assert "查物流" in done["suggestions"] and len(done["suggestions"]) >= 2
        text, done, _ = say(http, "shopper-offer", "查物流", sid)  # a tapped suggestion starts that flow, order filled
        assert done["flow"] == {"name": "order_status", "status": "running"}
        assert "后四位" in text or "后 4 位" in text


def test_flow_order_status_completes_over_http_and_is_stored(make_server: Make) -> None:
    server = demo_server(make_server)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        text, done, sid = say(http, "shopper-1", "我的快递到哪了", None)
        assert done["source"] == "flow" and done["flow"] == {"name": "order_status", "status": "running"}
        assert "订单号" in text
        text, done, _ = say(http, "shopper-1", "DD20261105002", sid)
        assert "后四位" in text
        text, done, _ = say(http, "shopper-1", "１２３４", sid)  # full-width digits
        assert done["flow"]["status"] == "completed"
        assert "SF1234567890" in text and "运输中" in text
        stored = http.get(f"/v1/sessions/{sid}", headers=chat_headers("shopper-1")).json()["messages"]
        assert [m["role"] for m in stored] == ["user", "assistant"] * 3
        assert {m["source"] for m in stored if m["role"] == "assistant"} == {"flow"}
        assert stored[-1]["content"] == text
        metrics = http.get("/metrics").text
        assert 'kefu_flow_turns_total{flow="order_status",status="completed"} 1.0' in metrics
        assert 'kefu_tool_calls_total{outcome="ok",tool="track_parcel"} 1.0' in metrics


def chat_headers(user: str) -> dict[str, str]:
    from tests.support import auth

    return auth(user)


def test_flow_continues_at_the_same_step_after_a_restart(make_server: Make) -> None:
    server = demo_server(make_server)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        _, _, sid = say(http, "shopper-2", "我要退货", None)
        say(http, "shopper-2", "DD20261101001", sid)
    server.restart()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        text, done, _ = say(http, "shopper-2", "1234", sid)  # the pending question was the phone digits
        assert done["flow"] == {"name": "return_request", "status": "running"}
        assert "原因" in text
        text, done, _ = say(http, "shopper-2", "质量问题", sid)
        assert "确认" in text
        text, done, _ = say(http, "shopper-2", "确认", sid)
        assert done["flow"]["status"] == "completed" and "退货单号" in text


def test_flow_started_by_the_model_with_its_extracted_slots(make_server: Make, mock_llm: MockLLM) -> None:
    mock_llm.reset()
    server = demo_server(make_server, mock_llm)
    call = {"name": "start_flow_order_status", "arguments": {"order_id": "DD20261105002", "phone_last4": "12"}}
    mock_llm.script({"tool_calls": [call]})
    with httpx.Client(base_url=server.url, timeout=30) as http:
        text, done, sid = say(http, "shopper-3", "麻烦处理一下我之前说的事", None)  # vague: the rules start nothing
        assert done["source"] == "flow" and done["flow"]["name"] == "order_status"
        assert done["model"] == "mock-chat"
        # The model's order id passed the slot rules; its "12" is no phone suffix, so kefu asks for it.
        assert "后四位" in text and "订单号" not in text
        sent = mock_llm.stats()["last_request"]["body"]
        offered = {t["function"]["name"] for t in sent["tools"]}
        assert {"start_flow_order_status", "start_flow_return_request"} <= offered
        text, done, _ = say(http, "shopper-3", "1234", sid)
        assert done["flow"]["status"] == "completed" and "SF1234567890" in text
        assert mock_llm.stats()["last_request"]["body"] == sent  # the running flow needed no model call


def test_flow_handoff_is_recorded_and_listed_for_admins(make_server: Make) -> None:
    server = demo_server(make_server)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        text, done, sid = say(http, "shopper-4", "转人工", None)
        assert done["flow"]["name"] == "human" and done["handoff"]["id"].startswith("ho_")
        listed = http.get("/v1/admin/handoffs", headers=ADMIN).json()["handoffs"]
        assert [(h["id"], h["session_id"], h["user_id"]) for h in listed] == [(done["handoff"]["id"], sid, "shopper-4")]
        assert http.get("/v1/admin/handoffs", headers=chat_headers("shopper-4")).status_code == 403


def test_bot_reload_switches_flows_without_restart_and_refuses_a_broken_bot(make_server: Make, tmp_path: Path) -> None:
    bot = tmp_path / "bot"
    shutil.copytree(DEMO_BOT_DIR, bot, ignore=shutil.ignore_patterns("__pycache__", "*.py", "tests"))
    server = demo_server(make_server, KEFU_BOT_DIR=str(bot))
    human = bot / "flows" / "human.yaml"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        text, _, _ = say(http, "shopper-5", "转人工", None)
        assert "人工客服已收到" not in text
        human.write_text(
            human.read_text(encoding="utf-8").replace("已为您", "人工客服已收到，已为您"), encoding="utf-8"
        )
        reloaded = http.post("/v1/admin/bot/reload", headers=ADMIN)
        assert reloaded.status_code == 200, reloaded.text
        assert "human" in reloaded.json()["flows"]
        text, _, _ = say(http, "shopper-5", "转人工", None)
        assert "人工客服已收到" in text
        (bot / "flows" / "broken.yaml").write_text(
            "name: broken\ndescription: 坏的\nsteps:\n  - call: no_such_tool\n", encoding="utf-8"
        )
        refused = http.post("/v1/admin/bot/reload", headers=ADMIN)
        assert refused.status_code == 422
        error = refused.json()["error"]
        assert error["code"] == "invalid_bot" and "broken.yaml:4" in error["message"]
        text, _, _ = say(http, "shopper-5", "转人工", None)  # the running bot stayed
        assert "人工客服已收到" in text


def test_server_refuses_to_start_on_an_invalid_bot(tmp_path: Path) -> None:
    bot = tmp_path / "bot"
    (bot / "flows").mkdir(parents=True)
    (bot / "flows" / "bad.yaml").write_text("name: bad\ndescription: x\nsteps:\n  - collect: nope\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "kefu", "serve", "--port", "1"],
        env={"PATH": "/usr/bin:/bin", "KEFU_BOT_DIR": str(bot), "KEFU_DATABASE_URL": f"sqlite:///{tmp_path}/k.db"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "bad.yaml:4" in result.stdout + result.stderr


@pytest.mark.redis
@pytest.mark.postgres
def test_flow_started_on_one_replica_continues_on_the_other(
    make_server: Make, redis_url: str, postgres_db: str
) -> None:
    shared = {
        "KEFU_REDIS_URL": redis_url,
        "KEFU_REDIS_PREFIX": f"kefu-test-{uuid.uuid4().hex[:8]}",
        "KEFU_DATABASE_URL": postgres_db,
    }
    a, b = demo_server(make_server, **shared), demo_server(make_server, **shared)
    with httpx.Client(base_url=a.url, timeout=30) as http_a, httpx.Client(base_url=b.url, timeout=30) as http_b:
        _, _, sid = say(http_a, "roamer", "我的订单地址填错了要改", None)
        text, done, _ = say(http_b, "roamer", "DD20261110003", sid)
        assert done["flow"] == {"name": "change_address", "status": "running"} and "后四位" in text
        say(http_a, "roamer", "1234", sid)
        text, done, _ = say(http_b, "roamer", "北京市朝阳区建国路88号", sid)
        assert "确认" in text
        text, done, _ = say(http_a, "roamer", "确认", sid)
        assert done["flow"]["status"] == "completed"
        stored = http_b.get(f"/v1/sessions/{sid}", headers=chat_headers("roamer")).json()["messages"]
        assert len(stored) == 10 and len({m["turn_id"] for m in stored}) == 5


def test_flow_tool_arguments_never_take_the_user_id_from_the_model(make_server: Make, mock_llm: MockLLM) -> None:
    mock_llm.reset()
    server = demo_server(make_server, mock_llm)
    call = {"name": "start_flow_order_status", "arguments": {"order_id": "DD20261105002", "user_id": "victim"}}
    mock_llm.script({"tool_calls": [call]})
    with httpx.Client(base_url=server.url, timeout=30) as http:
        _, done, sid = say(http, "attacker", "那个事怎么样了", None)
        assert done["source"] == "flow"
        _, done, _ = say(http, "attacker", "1234", sid)
    log = server.stop()
    calls = [line for line in log.splitlines() if "tool_call" in line and "verify_phone" in line]
    assert calls and all("victim" not in line and "attacker" in line for line in calls)
    assert orjson.dumps(call)  # the model's arguments were well-formed; they were just not trusted
