"""Flows offered to a model as functions, and the model's calls read back and validated."""

from __future__ import annotations

from kefu.flows.interpreter import FlowInterpreter
from tests.flows.support import Chat, StubTools


def test_functions_describe_each_flow_with_slot_schemas(interpreter: FlowInterpreter) -> None:
    specs = {spec.name: spec for spec in interpreter.functions()}
    assert set(specs) == {
        "start_flow_order_status",
        "start_flow_return_request",
        "start_flow_change_address",
        "start_flow_human",
    }
    params = specs["start_flow_return_request"].parameters
    assert params["type"] == "object" and "required" not in params
    props = params["properties"]
    assert props["order_id"]["pattern"] == r"^(?:[A-Za-z]{0,4}\d{6,20})$"
    assert props["phone_last4"]["pattern"] == r"^\d{4}$"
    assert props["reason"]["enum"] == ["不想要了", "质量问题", "发错货", "其他"]
    assert specs["start_flow_change_address"].parameters["properties"]["address"]["minLength"] == 6
    assert "Request a return" in specs["start_flow_return_request"].description


def test_parse_function_call_keeps_known_slots(interpreter: FlowInterpreter) -> None:
    parsed = interpreter.parse_function_call("start_flow_return_request", '{"order_id": "DD20261101001", "x": 1}')
    assert parsed == ("return_request", {"order_id": "DD20261101001"})


def test_parse_function_call_tolerates_bad_arguments(interpreter: FlowInterpreter) -> None:
    assert interpreter.parse_function_call("start_flow_human", "{not json") == ("human", {})
    assert interpreter.parse_function_call("start_flow_human", "[1, 2]") == ("human", {})


def test_parse_function_call_rejects_other_functions(interpreter: FlowInterpreter) -> None:
    assert interpreter.parse_function_call("get_order", "{}") is None
    assert interpreter.parse_function_call("start_flow_unknown", "{}") is None


async def test_model_slots_are_validated_like_answers(chat: Chat, tools: StubTools) -> None:
    first = await chat.start(
        "return_request", "我要退货", {"order_id": "dd-20261101001", "phone_last4": "12345", "reason": "质量问题"}
    )
    assert first.slots == {"order_id": "DD20261101001", "reason": "质量问题"}
    assert "后四位" in first.text
    confirm = await chat.say("1234")
    assert "确认为订单 DD20261101001" in confirm.text
    assert tools.names() == ["verify_phone", "check_return_eligibility"]


async def test_start_of_unknown_flow_fails_politely(interpreter: FlowInterpreter) -> None:
    reply = await interpreter.start("nope", "hi", Chat(interpreter).ctx)
    assert reply.outcome == "failed" and reply.state is None and reply.text
