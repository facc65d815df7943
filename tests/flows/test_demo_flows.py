"""The demo shop's flows end to end against the stub shop (state JSON round-tripped between turns)."""

from __future__ import annotations

from kefu.flows.interpreter import FlowInterpreter
from tests.flows.support import Chat, StubTools, context


async def test_order_status_shipped_answers_status_and_latest_event(chat: Chat, tools: StubTools) -> None:
    first = await chat.start("order_status", "我的快递到哪了")
    assert "订单号" in first.text and first.outcome is None
    assert "后四位" in (await chat.say("DD20261105002")).text
    done = await chat.say("1234")
    assert done.outcome == "completed" and done.state is None
    assert "运输中" in done.text and "快件已到达杭州转运中心" in done.text and "ZT123456" in done.text
    assert tools.names() == ["verify_phone", "get_order", "track_parcel"]


async def test_order_status_not_shipped_says_so(chat: Chat, tools: StubTools) -> None:
    done = await chat.run("order_status", "DD20261110003 到哪了", "1234")
    assert done.outcome == "completed"
    assert "还没有发货" in done.text
    assert "track_parcel" not in tools.names()


async def test_order_status_unknown_order_asks_again(chat: Chat) -> None:
    reply = await chat.run("order_status", "查订单 DD20269999999", "1234")
    assert reply.outcome is None
    assert "没有找到订单 DD20269999999" in reply.text
    done = await chat.say("DD20261105002")
    assert done.outcome == "completed" and "运输中" in done.text


async def test_return_request_happy_path_creates_one_return(chat: Chat, tools: StubTools) -> None:
    await chat.start("return_request", "我想退货")
    await chat.say("DD20261101001")
    assert "原因" in (await chat.say("1234")).text
    confirm = await chat.say("质量问题")
    assert "确认为订单 DD20261101001 提交退货申请吗" in confirm.text and "质量问题" in confirm.text
    assert "create_return" not in tools.names()
    done = await chat.say("确认")
    assert done.outcome == "completed"
    assert "RT0001" in done.text and "399" in done.text
    assert [c for c in tools.calls if c[0] == "create_return"] == [
        ("create_return", {"order_id": "DD20261101001", "reason": "质量问题"}, True)
    ]


async def test_return_request_outside_window_explains_and_ends(chat: Chat, tools: StubTools) -> None:
    done = await chat.run("return_request", "DD20261001004 想退货", "1234")
    assert done.outcome == "completed" and done.handoff_offered
    assert "7 天" in done.text and "2026-11-16" in done.text
    assert "create_return" not in tools.names()


async def test_return_request_not_delivered_explains(chat: Chat) -> None:
    done = await chat.run("return_request", "我要退货 DD20261105002", "1234")
    assert done.outcome == "completed" and "还没有签收" in done.text


async def test_return_request_reason_by_number_and_synonym(interpreter: FlowInterpreter) -> None:
    by_number = Chat(interpreter)
    reply = await by_number.run("return_request", "退货 DD20261101001", "1234", "1")
    assert reply.slots["reason"] == "不想要了"
    by_synonym = Chat(interpreter)
    reply = await by_synonym.run("return_request", "退货 DD20261101001", "1234", "收到就坏了")
    assert reply.slots["reason"] == "质量问题"


async def test_change_address_happy_path(chat: Chat, tools: StubTools) -> None:
    await chat.run("change_address", "地址填错了要改", "DD20261110003", "1234")
    confirm = await chat.say("浙江省杭州市西湖区文三路100号")
    assert "确认把订单 DD20261110003 的收货地址改为「浙江省杭州市西湖区文三路100号」吗" in confirm.text
    done = await chat.say("好的")
    assert done.outcome == "completed" and "浙江省杭州市西湖区文三路100号" in done.text
    assert tools.orders["DD20261110003"]["address"] == "浙江省杭州市西湖区文三路100号"


async def test_change_address_shipped_order_offers_human(chat: Chat, tools: StubTools) -> None:
    done = await chat.run("change_address", "改地址 DD20261105002", "1234")
    assert done.outcome == "completed" and done.handoff_offered
    assert "已经发货" in done.text
    assert "change_address" not in tools.names()


async def test_change_address_short_address_is_reasked(chat: Chat) -> None:
    reply = await chat.run("change_address", "改地址 DD20261110003", "1234", "杭州")
    assert reply.outcome is None and "太短" in reply.text


async def test_human_flow_records_a_handoff(chat: Chat) -> None:
    done = await chat.start("human", "转人工")
    assert done.outcome == "handoff" and done.state is None
    assert done.handoff is not None and done.handoff.reason == "user_request"
    assert "已为您登记转人工" in done.text


async def test_english_conversation_gets_english_texts(interpreter: FlowInterpreter) -> None:
    chat = Chat(interpreter, context("en"))
    first = await chat.start("order_status", "where is my order")
    assert first.text.startswith("Please tell me your order number")
    assert "last 4 digits" in (await chat.say("DD20261105002")).text
    done = await chat.say("1234")
    assert done.text.startswith("Order DD20261105002: in transit")
    assert not any("\u4e00" <= c <= "\u9fff" for c in first.text)


async def test_english_return_confirmation_and_reason_label(interpreter: FlowInterpreter, tools: StubTools) -> None:
    chat = Chat(interpreter, context("en"))
    reply = await chat.run("return_request", "I want to return my order DD20261101001", "1234", "it arrived broken")
    assert "Reason: quality issue" in reply.text and 'Reply "yes"' in reply.text
    done = await chat.say("yes")
    assert done.outcome == "completed" and "RT0001" in done.text
