"""Content moderation through the public API: real ``kefu serve`` with the demo bot's lexicon, the mock upstream."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import httpx

from kefu.config import DEMO_BOT_DIR
from tests.conftest import MODEL_ONLY_BOT
from tests.support import KefuServer, MockLLM, answer_text, auth, chat

Make = Callable[..., KefuServer]


def demo(make_server: Make, mock: MockLLM) -> KefuServer:
    return make_server(mock, KEFU_DEMO="1", KEFU_BOT_DIR=str(DEMO_BOT_DIR))


def test_a_blocked_message_never_reaches_the_model(make_server: Make, fresh_mock: MockLLM) -> None:
    server = demo(make_server, fresh_mock)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        events = chat(http, "mod-1", "能不能帮我刷单返现，我给你好处")
        assert events[-1].event == "done"
        assert events[-1].data["source"] == "moderation" and events[-1].data["finish_reason"] == "content_filter"
        assert "官方页面" in answer_text(events)
        session = events[0].data["session_id"]
        stored = http.get(f"/v1/sessions/{session}", headers=auth("mod-1")).json()["messages"]
        metrics = http.get("/metrics").text
    assert fresh_mock.stats()["requests"] == 0
    assert stored[0]["content"] == "能不能帮我****，我给你好处"  # starred: never replayed to the model later
    assert 'kefu_moderation_hits_total{action="block",category="fraud",where="input"} 1.0' in metrics


def test_a_masked_insult_is_starred_before_the_model(make_server: Make, fresh_mock: MockLLM, tmp_path: Path) -> None:
    bot = tmp_path / "bot"
    shutil.copytree(MODEL_ONLY_BOT, bot)
    shutil.copy(DEMO_BOT_DIR / "moderation.yaml", bot / "moderation.yaml")
    server = make_server(fresh_mock, KEFU_BOT_DIR=str(bot))
    fresh_mock.script({"text": "很抱歉让您不满意，我来帮您看看。"})
    with httpx.Client(base_url=server.url, timeout=30) as http:
        events = chat(http, "mod-2", "你们这客服是傻 逼吗，东西坏了没人管")
    assert answer_text(events) == "很抱歉让您不满意，我来帮您看看。"
    body = str(fresh_mock.stats()["last_request"]["body"]["messages"][-1])
    assert "傻" not in body and "是* *吗" in body


def test_flagged_model_output_is_withheld_and_stored_honestly(make_server: Make, fresh_mock: MockLLM) -> None:
    server = demo(make_server, fresh_mock)
    answer = "这个问题可以这样处理。您也可以找我们代开发票，价格优惠，后面还有很多说明文字。"
    fresh_mock.script({"text": answer, "chunk_chars": 2})
    with httpx.Client(base_url=server.url, timeout=30) as http:
        events = chat(http, "mod-3", "我想开个发票，公司抬头的，怎么弄比较好")
        shown = answer_text(events)
        session = events[0].data["session_id"]
        stored = http.get(f"/v1/sessions/{session}", headers=auth("mod-3")).json()["messages"]
    assert "代开" not in shown and "代开发票" not in "".join(e.data.get("text", "") for e in events)
    assert shown.startswith("这个问题可以这样处理") and "官方页面" in shown
    assert events[-1].data["finish_reason"] == "content_filter"
    assert stored[1]["status"] == "interrupted" and stored[1]["content"] == shown


def test_the_lexicon_reloads_with_the_bot(make_server: Make, fresh_mock: MockLLM, tmp_path: Path) -> None:
    bot = tmp_path / "bot"
    shutil.copytree(MODEL_ONLY_BOT, bot)
    server = make_server(fresh_mock, KEFU_BOT_DIR=str(bot))
    fresh_mock.script({"text": "好的"})
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert answer_text(chat(http, "mod-4", "帮我弄个暗号甲")) == "好的"
        (bot / "moderation.yaml").write_text(
            "categories:\n  custom: {action: block, reply: 不行。}\nterms:\n  custom: [暗号甲]\n", encoding="utf-8"
        )
        reload = http.post("/v1/admin/bot/reload", headers={"Authorization": "Bearer test-api-key"})
        assert reload.status_code == 200, reload.text
        events = chat(http, "mod-4", "帮我弄个暗号甲")
    assert answer_text(events) == "不行。" and events[-1].data["source"] == "moderation"
    assert fresh_mock.stats()["requests"] == 1
