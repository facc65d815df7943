"""Built-in repair: corrections, cancel, digressions, attempts, confirmation of writes, retry after failures."""

from __future__ import annotations

from kefu.flows.interpreter import FlowInterpreter
from tests.flows.support import Chat, StubTools, context


async def _at_reason(chat: Chat) -> None:
    reply = await chat.run("return_request", "我想退货", "DD20261101001", "1234")
    assert "原因" in reply.text


async def test_correction_of_phone_redoes_verify(chat: Chat, tools: StubTools) -> None:
    await _at_reason(chat)
    reply = await chat.say("不对,是4321")
    assert "已更新为 4321" in reply.text and "不一致" in reply.text
    verifies = [args for name, args, _ in tools.calls if name == "verify_phone"]
    assert [v["phone_last4"] for v in verifies] == ["1234", "4321"]
    assert reply.state is not None and "verify" not in reply.state["results"]


async def test_correction_naming_the_slot_redoes_verify_and_continues(chat: Chat, tools: StubTools) -> None:
    await chat.start("order_status", "DD20261105002 到哪了")
    wrong = await chat.say("5678")
    assert "不一致" in wrong.text
    done = await chat.say("手机号错了 应该是1234")
    assert done.outcome == "completed" and "运输中" in done.text
    assert tools.names().count("verify_phone") == 2


async def test_correction_of_order_id_at_confirmation_redoes_the_checks(chat: Chat, tools: StubTools) -> None:
    await _at_reason(chat)
    assert "确认为订单 DD20261101001" in (await chat.say("不想要了")).text
    reply = await chat.say("改成 DD20261001004")
    assert "已更新为 DD20261001004" in reply.text
    assert reply.outcome == "completed" and "7 天" in reply.text
    assert tools.names().count("check_return_eligibility") == 2
    assert "create_return" not in tools.names()


async def test_correction_at_confirmation_asks_confirmation_again(chat: Chat, tools: StubTools) -> None:
    await chat.run("change_address", "改地址", "DD20261110003", "1234", "浙江省杭州市西湖区文三路100号")
    reply = await chat.say("地址写错了，应该是浙江省杭州市滨江区江南大道8号")
    assert "确认把订单 DD20261110003 的收货地址改为「浙江省杭州市滨江区江南大道8号」" in reply.text
    assert "change_address" not in tools.names()
    done = await chat.say("确认")
    assert done.outcome == "completed"
    assert tools.orders["DD20261110003"]["address"] == "浙江省杭州市滨江区江南大道8号"


async def test_order_id_given_while_phone_is_asked_replaces_the_order(chat: Chat) -> None:
    await chat.start("order_status", "DD20261105002 到哪了")
    reply = await chat.say("DD20261110003")
    assert "已更新为 DD20261110003" in reply.text and "后四位" in reply.text
    assert reply.slots["order_id"] == "DD20261110003"


async def test_cancel_leaves_the_flow_politely(chat: Chat, tools: StubTools) -> None:
    await chat.start("return_request", "我想退货 DD20261101001")
    reply = await chat.say("算了")
    assert reply.outcome == "cancelled" and reply.state is None and "取消" in reply.text
    assert tools.calls == []


async def test_cancel_in_english_answers_in_english(interpreter: FlowInterpreter) -> None:
    chat = Chat(interpreter, context("en"))
    await chat.start("order_status", "where is my order")
    reply = await chat.say("never mind")
    assert reply.outcome == "cancelled" and reply.text.startswith("OK, I've cancelled")


async def test_no_at_confirmation_cancels_without_writing(chat: Chat, tools: StubTools) -> None:
    await _at_reason(chat)
    await chat.say("发错货")
    reply = await chat.say("不")
    assert reply.outcome == "cancelled" and "create_return" not in tools.names()


async def test_unclear_confirmation_answer_reasks_and_does_not_write(chat: Chat, tools: StubTools) -> None:
    await _at_reason(chat)
    await chat.say("其他")
    reply = await chat.say("嗯……让我想想")
    assert reply.outcome is None and "请回复“确认”" in reply.text and "确认为订单" in reply.text
    assert "create_return" not in tools.names()
    done = await chat.say("是的")
    assert done.outcome == "completed"
    assert [(n, confirmed) for n, _, confirmed in tools.calls if n == "create_return"] == [("create_return", True)]


async def test_digression_is_answered_then_the_question_asked_again(interpreter: FlowInterpreter) -> None:
    asked: list[str] = []

    async def faq(text: str) -> str | None:
        asked.append(text)
        return "全场满99元包邮。" if "运费" in text else None

    chat = Chat(interpreter, context(faq=faq))
    await chat.start("order_status", "DD20261105002 到哪了")
    reply = await chat.say("对了，运费多少？")
    assert reply.text.startswith("全场满99元包邮。") and "后四位" in reply.text
    assert reply.state is not None and reply.state["attempts"] == {}
    assert asked == ["对了，运费多少？"]
    assert (await chat.say("1234")).outcome == "completed"


async def test_digression_at_confirmation_reasks_confirmation(interpreter: FlowInterpreter, tools: StubTools) -> None:
    async def faq(text: str) -> str | None:
        return "退款原路退回，1–7 个工作日到账。"

    chat = Chat(interpreter, context(faq=faq))
    await chat.run("return_request", "我想退货", "DD20261101001", "1234", "不想要了")
    reply = await chat.say("退款多久到账")
    assert "1–7 个工作日" in reply.text and "确认为订单 DD20261101001" in reply.text
    assert "create_return" not in tools.names()


async def test_three_wrong_phone_digits_offer_a_human(chat: Chat, tools: StubTools) -> None:
    await chat.start("order_status", "DD20261105002 到哪了")
    assert (await chat.say("5678")).outcome is None
    assert (await chat.say("8765")).outcome is None
    reply = await chat.say("1111")
    assert reply.outcome == "failed" and reply.handoff_offered and reply.state is None
    assert "转人工" in reply.text
    assert tools.names() == ["verify_phone"] * 3


async def test_three_invalid_answers_offer_a_human(chat: Chat) -> None:
    await chat.start("order_status", "查订单")
    first = await chat.say("不知道")
    assert first.outcome is None and "格式不太对" in first.text
    await chat.say("忘了")
    reply = await chat.say("123")
    assert reply.outcome == "failed" and reply.handoff_offered


async def test_filled_slot_is_never_asked_again(chat: Chat) -> None:
    first = await chat.start("order_status", "订单 DD20261105002 到哪了")
    assert "后四位" in first.text and "订单号" not in first.text
    assert "不一致" in (await chat.say("0000")).text
    again = await chat.say("0001")
    assert "订单号" not in again.text


async def test_answer_also_fills_other_slots_it_mentions(chat: Chat, tools: StubTools) -> None:
    await chat.start("order_status", "查订单")
    done = await chat.say("DD20261105002，手机尾号 1234")
    assert done.outcome == "completed"
    assert tools.names() == ["verify_phone", "get_order", "track_parcel"]


async def test_unavailable_tool_keeps_the_step_and_retry_succeeds(chat: Chat, tools: StubTools) -> None:
    tools.fail["verify_phone"] = ["unavailable"]
    await chat.start("order_status", "DD20261105002 到哪了")
    busy = await chat.say("1234")
    assert busy.outcome is None and "系统有点忙" in busy.text
    assert busy.state is not None and busy.state["awaiting"] == "retry"
    assert busy.slots == {"order_id": "DD20261105002", "phone_last4": "1234"}
    done = await chat.say("再试试")
    assert done.outcome == "completed" and "运输中" in done.text
    assert tools.names() == ["verify_phone", "verify_phone", "get_order", "track_parcel"]


async def test_failed_write_is_retried_without_asking_confirmation_again(chat: Chat, tools: StubTools) -> None:
    tools.fail["create_return"] = ["timeout"]
    await chat.run("return_request", "我想退货", "DD20261101001", "1234", "质量问题")
    busy = await chat.say("确认")
    assert "系统有点忙" in busy.text and busy.outcome is None
    done = await chat.say("好了吗")
    assert done.outcome == "completed" and "RT0001" in done.text
    writes = [(n, confirmed) for n, _, confirmed in tools.calls if n == "create_return"]
    assert writes == [("create_return", True), ("create_return", True)]
    assert tools.returns == ["DD20261101001"]


async def test_repeated_tool_failures_offer_a_human(chat: Chat, tools: StubTools) -> None:
    tools.fail["get_order"] = ["http_503", "timeout", "unavailable"]
    await chat.run("order_status", "DD20261105002 到哪了", "1234")
    await chat.say("再试试")
    reply = await chat.say("再试试")
    assert reply.outcome == "failed" and reply.handoff_offered and "转接人工" in reply.text


async def test_cancel_while_waiting_to_retry(chat: Chat, tools: StubTools) -> None:
    tools.fail["verify_phone"] = ["unavailable"]
    await chat.run("order_status", "DD20261105002 到哪了", "1234")
    reply = await chat.say("不用了")
    assert reply.outcome == "cancelled" and tools.names() == ["verify_phone"]


async def test_corrections_do_not_reset_the_attempt_count(chat: Chat, tools: StubTools) -> None:
    await _at_reason(chat)
    assert "不一致" in (await chat.say("不对,是4321")).text
    assert (await chat.say("4322")).outcome is None
    reply = await chat.say("4323")
    assert reply.outcome == "failed" and reply.handoff_offered
    assert tools.names().count("verify_phone") == 4


def test_warm_builds_the_router_once(interpreter: FlowInterpreter) -> None:
    interpreter.warm()
    router = interpreter.router
    interpreter.warm()
    assert interpreter.router is router


def test_is_question_tells_questions_from_bare_answers() -> None:
    from kefu.flows.repair import is_question

    for question in (
        "运费多少",
        "退款多久到账",
        "你们支持七天无理由退货吗",
        "发票怎么开",
        "how long does shipping take?",
    ):
        assert is_question(question), question
    for answer in ("杭州", "上海市浦东新区", "DD20261101001", "质量问题", "1234"):
        assert not is_question(answer), answer
