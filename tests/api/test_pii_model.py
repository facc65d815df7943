"""What reaches the model provider: shoppers' numbers go out as placeholders and come back as themselves.

Real ``kefu serve`` processes against the mock upstream, which records every request body it receives.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from kefu.config import DEMO_BOT_DIR
from tests.support import KefuServer, MockLLM, answer_text, auth, chat

Make = Callable[..., KefuServer]
PHONE = "13800138000"
ID = "11010519491231002X"


def bodies(mock: MockLLM) -> list[str]:
    return [json.dumps(r["body"], ensure_ascii=False) for r in mock.stats()["recent_requests"]]


def test_numbers_reach_the_model_as_placeholders_and_the_shopper_as_themselves(
    make_server: Make, fresh_mock: MockLLM
) -> None:
    server = make_server(fresh_mock)
    fresh_mock.script(
        {"text": "好的，已记下您的手机[手机号1]，身份证【身份证号1】。"},
        {"text": "您之前留的号码是 [手机号1]。"},
    )
    with httpx.Client(base_url=server.url, timeout=30) as http:
        events = chat(http, "pii-user", f"我的手机 138 0013 8000，身份证{ID}，帮我登记")
        session = events[0].data["session_id"]
        assert answer_text(events) == f"好的，已记下您的手机138 0013 8000，身份证{ID}。"
        second = chat(http, "pii-user", f"再确认一下，是 {PHONE} 吗", session)
        assert answer_text(second) == "您之前留的号码是 138 0013 8000。"
        stored = http.get(f"/v1/sessions/{session}", headers=auth("pii-user")).json()["messages"]
    sent = bodies(fresh_mock)
    assert len(sent) == 2
    for body in sent:
        assert PHONE not in body and "138 0013 8000" not in body and ID not in body
    # The same number, written two ways, is one placeholder across the whole request (history included).
    assert "我的手机 [手机号1]，身份证[身份证号1]" in sent[1] and "是 [手机号1] 吗" in sent[1]
    # The transcript keeps what the shopper saw.
    assert stored[1]["content"] == f"好的，已记下您的手机138 0013 8000，身份证{ID}。"


def test_placeholders_off_by_configuration(make_server: Make, fresh_mock: MockLLM) -> None:
    server = make_server(fresh_mock, KEFU_PII_MASK="email")
    fresh_mock.script({"text": "ok"})
    with httpx.Client(base_url=server.url, timeout=30) as http:
        chat(http, "pii-user2", f"电话 {PHONE} 邮箱 a.b@example.com")
    body = bodies(fresh_mock)[0]
    assert PHONE in body and "a.b@example.com" not in body and "[邮箱1]" in body


def test_tool_calls_get_the_real_values(make_server: Make, fresh_mock: MockLLM) -> None:
    """The model can only pass on the placeholder it saw; the flow (and the merchant) get the shopper's number."""
    server = make_server(fresh_mock, KEFU_DEMO="1", KEFU_BOT_DIR=str(DEMO_BOT_DIR))
    address = "北京市朝阳区建国路88号 张三 [手机号1]"
    args: dict[str, Any] = {"order_id": "DD20261110003", "phone_last4": "1234", "address": address}
    fresh_mock.script({"tool_calls": [{"name": "start_flow_change_address", "arguments": args}]})
    with httpx.Client(base_url=server.url, timeout=30) as http:
        events = chat(http, "pii-user3", f"麻烦处理下 DD20261110003，北京市朝阳区建国路88号 张三 {PHONE}")
    assert PHONE not in bodies(fresh_mock)[0]
    assert events[-1].event == "done", events[-1]
    assert f"建国路88号 张三 {PHONE}" in answer_text(events)
