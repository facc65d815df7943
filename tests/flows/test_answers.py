"""Slot answers that are checked: an answer must look like what is asked for; questions and small talk are not
answers (and not wrong answers); cancels in shoppers' words; corrections at the confirm step; values in the first
message; the offer after a bare order number."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from kefu.flows.interpreter import FlowInterpreter
from kefu.flows.model import FlowSet
from kefu.flows.offer import bare_order_id
from kefu.flows.repair import is_cancel, value_after_correction
from kefu.flows.slots import parse_answer
from tests.flows.support import Chat, StubTools, context

TODAY = date(2026, 11, 12)


@pytest.mark.parametrize(
    "text",
    ["不弄了", "先不改了", "不退了", "不想退了", "算了不查了", "没事了", "不用查了", "forget it", "nah forget about it"]
    + ["哦那还是别改了吧", "不退了 谢谢", "no thanks", "暂时不需要了"],
)
def test_cancels_in_shoppers_words(text: str) -> None:
    assert is_cancel(text)


@pytest.mark.parametrize("text", ["不退款 换货", "不想要了", "取消订单", "不是", "不对", "好的", "DD20261101001"])
def test_not_cancels(text: str) -> None:
    assert not is_cancel(text)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("浙江省杭州市西湖区文三路100号", True),
        ("幸福小区3栋2单元501", True),
        ("100 Main Street, Springfield", True),
        ("杭州", False),
        ("改了地址多久能生效？", False),  # a question is never an address
        ("送到公司可以吗", False),
        ("没问题", False),
    ],
)
def test_address_needs_address_parts_and_is_not_a_question(demo_flows: FlowSet, text: str, ok: bool) -> None:
    address = demo_flows.flows["change_address"].slots["address"]
    assert address.type == "address"
    assert (parse_answer(address, text, TODAY) == text) is ok


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("穿着小了", "不想要了"),
        ("不喜欢颜色", "不想要了"),
        ("质量太差了开线了", "质量问题"),
        ("洗了一次就起球了", "质量问题"),
        ("我拍的燕麦色 寄来的是藏青的", "发错货"),  # "拍的*寄来": a synonym with a gap
        ("尺码不太合适", "不想要了"),  # loose: one extra character inside 尺码不合适
        ("it arrived broken", "质量问题"),
        ("选2", "质量问题"),
        ("今天天气不错", None),
    ],
)
def test_reasons_in_shoppers_words_map_to_choices(demo_flows: FlowSet, text: str, reason: str | None) -> None:
    assert parse_answer(demo_flows.flows["return_request"].slots["reason"], text, TODAY) == reason


async def test_plain_no_at_confirm_cancels(chat: Chat, tools: StubTools) -> None:
    await chat.run("return_request", "DD20261101001 要退货", "1234", "不想要了")
    reply = await chat.say("不要了")
    assert reply.outcome == "cancelled" and "create_return" not in tools.names()


def test_value_after_correction() -> None:
    names = ("地址", "收货地址")
    assert value_after_correction("地址写错了 是上海市静安区南京西路1266号", names) == "上海市静安区南京西路1266号"
    assert value_after_correction("应该是 杭州市", names) == "杭州市"
    assert value_after_correction("确认", names) is None


async def _at_address(chat: Chat) -> None:
    reply = await chat.run("change_address", "改地址", "DD20261110003", "1234")
    assert "新的完整收货地址" in reply.text


async def test_question_at_address_step_is_never_saved_or_written(interpreter: FlowInterpreter) -> None:
    tools: StubTools = interpreter.tools  # type: ignore[assignment]
    asked: list[str] = []

    async def faq(text: str) -> str | None:
        asked.append(text)
        return "付款后 48 小时内发货。"

    chat = Chat(interpreter, ctx=context(faq=faq))
    await _at_address(chat)
    reply = await chat.say("你们一般多久发货啊")
    assert asked == ["你们一般多久发货啊"] and "48 小时" in reply.text and "新的完整收货地址" in reply.text
    assert reply.state is not None and "address" not in reply.state["slots"] and reply.state["attempts"] == {}
    reply = await chat.say("没问题")
    assert reply.state is not None and "address" not in reply.state["slots"]
    assert "change_address" not in tools.names()


async def test_small_talk_at_a_step_asks_again_without_counting(chat: Chat, tools: StubTools) -> None:
    await chat.start("order_status", "DD20261105002 到哪了")
    for text in ("在吗", "谢谢", "好的"):
        reply = await chat.say(text)
        assert "后四位" in reply.text and "没有识别" not in reply.text
    assert chat.state is not None and chat.state["attempts"] == {}
    assert tools.names() == []


async def test_correction_of_reason_at_confirm_confirms_again(chat: Chat, tools: StubTools) -> None:
    await chat.run("return_request", "DD20261101001 要退货", "1234", "不想要了")
    reply = await chat.say("不对 是质量问题 袖口开线了")
    assert reply.slots["reason"] == "质量问题" and "确认" in reply.text and "create_return" not in tools.names()
    done = await chat.say("对")
    assert done.outcome == "completed"
    created = [args for name, args, _ in tools.calls if name == "create_return"]
    assert created == [{"order_id": "DD20261101001", "reason": "质量问题"}]


async def test_address_correction_at_confirm_without_marker(chat: Chat, tools: StubTools) -> None:
    await _at_address(chat)
    await chat.say("上海市静安区南京西路1626号 赵敏")
    reply = await chat.say("地址写错了 是上海市静安区南京西路1266号 赵敏")
    assert "南京西路1266号" in reply.text and "change_address" not in tools.names()
    await chat.say("确认")
    assert tools.orders["DD20261110003"]["address"] == "上海市静安区南京西路1266号 赵敏"


async def test_first_message_fills_order_and_reason(chat: Chat) -> None:
    reply = await chat.start("return_request", "DD20261101001 衣服穿着小了 我要退")
    assert reply.slots == {"order_id": "DD20261101001", "reason": "不想要了"}


async def test_first_message_fills_a_marked_address(chat: Chat, tools: StubTools) -> None:
    reply = await chat.start("change_address", "把DD20261110003地址改成杭州市西湖区文三路100号")
    assert reply.slots == {"order_id": "DD20261110003", "address": "杭州市西湖区文三路100号"}
    assert "后四位" in reply.text
    confirm = await chat.say("1234")
    assert "确认把订单 DD20261110003 的收货地址改为「杭州市西湖区文三路100号」" in confirm.text
    assert "change_address" not in tools.names()


@pytest.mark.parametrize(
    ("text", "order"),
    [("DD20261101001", "DD20261101001"), ("订单号 dd20261101001", "DD20261101001"), ("DD20261101001 退货", None)],
)
def test_bare_order_id(demo_flows: FlowSet, text: str, order: str | None) -> None:
    assert bare_order_id(text, demo_flows) == order


async def test_offer_after_a_bare_order_id_then_pick(interpreter: FlowInterpreter) -> None:
    ctx = context()
    offer = interpreter.offer("DD20261101001", ctx)
    assert offer is not None and offer.outcome is None and offer.state is not None
    assert "DD20261101001" in offer.text and set(offer.suggestions) == {"查物流", "退货退款", "改地址"}
    picked = await interpreter.take_offer(offer.state, "退货退款", ctx, None)
    assert picked is not None and picked.flow == "return_request"
    assert picked.slots["order_id"] == "DD20261101001" and "后四位" in picked.text
    routed = await interpreter.take_offer(offer.state, "查物流", ctx, interpreter.route("查物流"))
    assert routed is not None and routed.flow == "order_status"
    assert await interpreter.take_offer(offer.state, "运费多少", ctx, None) is None
    assert interpreter.offer("我的快递到哪了", ctx) is None


async def test_a_slot_reader_reads_what_the_rules_could_not_and_is_validated(interpreter: FlowInterpreter) -> None:
    asked: list[tuple[str, str]] = []
    answers = iter(["不存在的原因", "质量问题"])

    async def read_slot(expected: str, text: str) -> str | None:
        asked.append((expected, text))
        return next(answers)

    chat = Chat(interpreter, ctx=replace(context(), read_slot=read_slot))
    await chat.run("return_request", "DD20261101001 要退货", "1234")
    invalid = await chat.say("唉 一言难尽")
    assert invalid.state is not None and "reason" not in invalid.state["slots"]  # not an option: dropped
    read = await chat.say("用了两次 拉链那块儿就不行了")
    assert read.slots["reason"] == "质量问题" and "确认" in read.text
    assert asked[0][0].startswith("one of: 不想要了") and asked[1][1] == "用了两次 拉链那块儿就不行了"
    await chat.say("在吗")  # small talk is never sent to the reader
    assert len(asked) == 2
