"""A realistic conversation mix full of personal numbers, then a search for those numbers everywhere they must not
be: every log line of the server, every request body the model provider received, and (after the retention
sweep) the stored transcripts and the shopper's export. Real ``kefu serve`` with the demo bot, the mock upstream
over loopback."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import httpx

from kefu.config import DEMO_BOT_DIR
from tests.support import KefuServer, MockLLM, auth, chat

Make = Callable[..., KefuServer]

# What the shopper types (full-width, spaced, dashed, dotted) and the digits that must not appear anywhere.
MESSAGES = [
    "在吗 我手机号 １３８００１３８０００ 订单一直没到",
    "电话138-0013-8000，身份证 11010519491231002X 帮我登记一下会员",
    "退款打到这张卡 6222 0212 3456 7890 128 可以吗",
    "我邮箱 zhang.san@example.com 发票发这里 联系人 139.0013.9000",
    "My number is +86 137 0013 7000, where is my parcel?",
]
SECRETS = ["13800138000", "11010519491231002X", "6222021234567890128", "zhang.san@example.com", "13900139000"]
SECRETS += ["13700137000"]


def digits_only(text: str) -> str:
    return re.sub(r"[\s\-.·]", "", text.translate({cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}))


def leaks(text: str) -> list[str]:
    flat = digits_only(text)
    return [s for s in SECRETS if s in text or s in flat]


def test_numbers_never_reach_the_logs_or_the_provider(make_server: Make, fresh_mock: MockLLM) -> None:
    server = make_server(
        fresh_mock,
        KEFU_DEMO="1",
        KEFU_BOT_DIR=str(DEMO_BOT_DIR),
        KEFU_LOG_LEVEL="debug",
        KEFU_RETENTION_ANONYMISE_HOURS="0.0005",  # 1.8 s
        KEFU_RETENTION_SWEEP_SECONDS="0",
    )
    fresh_mock.script(*({"text": "好的，已为您记录 [手机号1]。"} for _ in MESSAGES))
    sessions: list[str] = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        session = None
        for message in MESSAGES:
            events = chat(http, "leaky-user", message, session)
            assert events[-1].event in ("done", "error"), events[-1]
            session = events[0].data["session_id"]
        sessions.append(session or "")
        # A second conversation: a number the shopper writes at a flow's step, and a bad request with one.
        events = chat(http, "leaky-user", "帮我修改订单地址")
        sessions.append(events[0].data["session_id"])
        chat(http, "leaky-user", "DD20261110003 手机 13800138000", sessions[-1])
        bad = http.post("/v1/chat", json={"message": "13800138000\x00"}, headers=auth("leaky-user"))
        assert bad.status_code == 422
        stored = [http.get(f"/v1/sessions/{sid}", headers=auth("leaky-user")).json()["messages"] for sid in sessions]
        time.sleep(2.0)
        swept = http.post("/v1/admin/privacy/sweep", headers={"Authorization": "Bearer test-api-key"}).json()
        assert swept["anonymised"] == 2, swept
        after = [http.get(f"/v1/sessions/{sid}", headers=auth("leaky-user")).json() for sid in sessions]
        export = http.get("/v1/me/export", headers=auth("leaky-user")).text
    log = server.stop()
    assert "turn_finished" in log  # the log was captured
    assert leaks(log) == [], [line for line in log.splitlines() if leaks(line)][:5]
    bodies = [json.dumps(r["body"], ensure_ascii=False) for r in fresh_mock.stats()["recent_requests"]]
    assert bodies, "the model was asked"
    for body in bodies:
        assert leaks(body) == [], body
    sent = "".join(bodies)
    assert all(p in sent for p in ("[手机号1]", "[身份证号1]", "[银行卡号1]", "[邮箱1]")), sent[-2000:]
    # The transcript kept what the shopper wrote and saw until the retention sweep anonymised it; since then no
    # number is left anywhere kefu stores the conversation.
    assert "１３８００１３８０００" in stored[0][0]["content"]
    assert leaks(json.dumps(after, ensure_ascii=False)) == [] and leaks(export) == []
    assert "[手机号]" in after[0]["messages"][0]["content"]
