"""With a model configured, the model reads a slot answer the flow's rules could not: a real ``kefu serve`` with
the demo bot and the mock upstream, at the return flow's reason step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from kefu.config import DEMO_BOT_DIR
from kefu.engine.slot_reader import FUNCTION
from tests.support import KefuServer, MockLLM, answer_text, chat

Make = Callable[..., KefuServer]
FREE_FORM = "我家猫一看见它就炸毛"  # names no reason the rules know (the model may call it 不想要了)


def demo_server(make_server: Make, mock: MockLLM, **extra: str) -> KefuServer:
    return make_server(mock, **({"KEFU_DEMO": "1", "KEFU_BOT_DIR": str(DEMO_BOT_DIR)} | extra))


def say(http: httpx.Client, user: str, text: str, session: str | None) -> tuple[str, dict[str, Any], str]:
    events = chat(http, user, text, session)
    assert events[-1].event == "done", events[-1]
    return answer_text(events), events[-1].data, events[0].data["session_id"]


def at_reason_step(http: httpx.Client, user: str) -> str:
    _, _, sid = say(http, user, "我要退货", None)
    say(http, user, "DD20261101001", sid)
    text, done, _ = say(http, user, "1234", sid)
    assert done["flow"] == {"name": "return_request", "status": "running"} and "原因" in text
    return sid


def slot_value(value: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": FUNCTION, "arguments": {"value": value}}]}


def test_the_model_reads_a_free_form_reason_and_its_value_is_validated(make_server: Make, fresh_mock: MockLLM) -> None:
    server = demo_server(make_server, fresh_mock)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        sid = at_reason_step(http, "shopper-slot")
        asked = fresh_mock.stats()["requests"]
        assert asked == 0  # the rules read the order number and the digits: no model call

        fresh_mock.script(slot_value("七彩祥云"))  # not one of the options: not written, the step is asked again
        text, done, _ = say(http, "shopper-slot", FREE_FORM, sid)
        assert done["flow"] == {"name": "return_request", "status": "running"}
        assert "请从这几项里选一个" in text and "确认" not in text
        sent = fresh_mock.stats()["last_request"]["body"]
        assert [t["function"]["name"] for t in sent["tools"]] == [FUNCTION]
        assert sent["messages"][-1]["content"] == FREE_FORM

        fresh_mock.script(slot_value("不想要了"))
        text, done, _ = say(http, "shopper-slot", FREE_FORM, sid)
        assert done["source"] == "flow" and done["flow"]["status"] == "running"
        assert "确认" in text and "不想要了" in text
        text, done, _ = say(http, "shopper-slot", "确认", sid)
        assert done["flow"]["status"] == "completed" and "退货单号" in text
        assert fresh_mock.stats()["requests"] == 2  # one read per free-form answer, nothing else
        metrics = http.get("/metrics").text
        assert 'kefu_flow_slot_reads_total{result="value"} 2.0' in metrics


def test_with_model_slots_off_the_rules_alone_read_answers(make_server: Make, fresh_mock: MockLLM) -> None:
    server = demo_server(make_server, fresh_mock, KEFU_FLOW_MODEL_SLOTS="0")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        sid = at_reason_step(http, "shopper-rules")
        fresh_mock.script(slot_value("不想要了"))
        text, done, _ = say(http, "shopper-rules", FREE_FORM, sid)
        assert done["flow"]["status"] == "running" and "请从这几项里选一个" in text
        assert fresh_mock.stats()["requests"] == 0
