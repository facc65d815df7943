"""The state snapshot: plain JSON, survives a new interpreter (another replica), and flow definitions changing."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from kefu.content.problems import Problems
from kefu.flows.interpreter import FlowInterpreter
from kefu.flows.model import FlowSet
from kefu.flows.spec import load_flows
from kefu.flows.state import FlowState, StateError
from kefu.text.lexicon import Lexicon
from tests.flows.support import RISKS, Chat, StubTools, context

FLOW = """\
name: pickup
description: 预约取件
slots:
  order_id: {type: order_id, prompt: 请提供订单号}
  day: {type: date, prompt: 哪天取件？}
  count: {type: number, integer: true, min: 1, max: 9, prompt: 几件？}
steps:
  - collect: order_id
  - collect: day
  - collect: count
  - end: 已预约 {slots.day} 取件 {slots.count} 件
"""


def load_text(tmp_path: Path, body: str) -> FlowSet:
    folder = tmp_path / "flows"
    folder.mkdir(exist_ok=True)
    (folder / "pickup.yaml").write_text(textwrap.dedent(body), encoding="utf-8")
    problems = Problems()
    flows = load_flows(tmp_path, problems, RISKS, lexicon=Lexicon.build())
    assert not problems.errors, problems.report()
    return flows


async def test_snapshot_is_plain_json_and_another_engine_continues(demo_flows: FlowSet, tools: StubTools) -> None:
    first = await FlowInterpreter(demo_flows, tools).start("order_status", "DD20261105002 到哪了", context())
    assert first.state is not None
    wire = json.dumps(first.state)
    reply = await FlowInterpreter(demo_flows, tools).handle(json.loads(wire), "1234", context())
    assert reply.outcome == "completed" and "运输中" in reply.text


def test_state_round_trips_through_json() -> None:
    state = FlowState(flow="f", fingerprint="x", step=2, awaiting="slot", slots={"a": 1}, attempts={"a": 2})
    state.results["verify"] = {"ok": True, "data": {"verified": True}, "error": None, "message": None}
    state.saved_at["verify"] = 1
    again = FlowState.from_json(json.loads(json.dumps(state.to_json())))
    assert again == state


@pytest.mark.parametrize(
    "bad", [None, [], {"v": 99}, {"v": 1}, {"v": 1, "flow": "f", "fingerprint": "x", "step": "two"}]
)
def test_malformed_snapshot_is_rejected(bad: object) -> None:
    with pytest.raises(StateError):
        FlowState.from_json(bad)


async def test_handle_with_garbage_state_ends_politely(interpreter: FlowInterpreter) -> None:
    reply = await interpreter.handle({"v": 1}, "1234", context())
    assert reply.outcome == "failed" and reply.state is None and reply.text


async def test_handle_for_a_removed_flow_ends_politely(interpreter: FlowInterpreter) -> None:
    state = FlowState(flow="gone", fingerprint="x", awaiting="slot").to_json()
    reply = await interpreter.handle(state, "1234", context())
    assert reply.outcome == "failed" and "暂时不可用" in reply.text


async def test_typed_slots_across_turns(tmp_path: Path) -> None:
    chat = Chat(FlowInterpreter(load_text(tmp_path, FLOW), StubTools()))
    await chat.start("pickup", "预约取件 DD20261105002")
    await chat.say("明天")
    done = await chat.say("三件")
    assert done.text == "已预约 2026-11-13 取件 3 件"
    assert done.slots == {"order_id": "DD20261105002", "day": "2026-11-13", "count": 3}


async def test_changed_flow_restarts_keeping_valid_slots(tmp_path: Path) -> None:
    chat = Chat(FlowInterpreter(load_text(tmp_path, FLOW), StubTools()))
    await chat.start("pickup", "预约取件 DD20261105002")
    await chat.say("明天")
    changed = FLOW.replace("  day: {type: date, prompt: 哪天取件？}\n", "  day: {type: number, prompt: 几号？}\n")
    chat.interpreter = FlowInterpreter(load_text(tmp_path, changed), StubTools())
    reply = await chat.say("两件")
    assert "从头继续" in reply.text and "几号" in reply.text
    # the old date no longer fits; "两件" is not taken in passing: two empty number slots make it ambiguous
    assert reply.slots == {"order_id": "DD20261105002"}


async def test_reworded_flow_keeps_its_place(tmp_path: Path) -> None:
    chat = Chat(FlowInterpreter(load_text(tmp_path, FLOW), StubTools()))
    await chat.run("pickup", "预约取件 DD20261105002", "明天")
    chat.interpreter = FlowInterpreter(load_text(tmp_path, FLOW.replace("已预约", "好的，已预约")), StubTools())
    done = await chat.say("2")
    assert done.text == "好的，已预约 2026-11-13 取件 2 件"


async def test_goto_loop_without_a_question_is_stopped(tmp_path: Path) -> None:
    looping = FLOW.replace(
        "  - end: 已预约 {slots.day} 取件 {slots.count} 件", "  - label: again\n    say: 嗯\n    goto: again"
    )
    chat = Chat(FlowInterpreter(load_text(tmp_path, looping), StubTools()))
    reply = await chat.run("pickup", "DD20261105002", "明天", "1")
    assert reply.outcome == "failed" and reply.handoff_offered


async def test_set_and_branch_on_slots(tmp_path: Path) -> None:
    body = FLOW.replace(
        "  - end: 已预约 {slots.day} 取件 {slots.count} 件",
        "  - set: {order_id: 'X{slots.count}'}\n"
        "  - branch:\n      - when: {var: slots.count, in: [1, 2]}\n        goto: few\n"
        "  - end: 很多件\n  - label: few\n    end: 少量 {slots.order_id}",
    )
    chat = Chat(FlowInterpreter(load_text(tmp_path, body), StubTools()))
    assert (await chat.run("pickup", "DD20261105002", "明天", "2")).text == "少量 X2"
    chat = Chat(FlowInterpreter(load_text(tmp_path, body), StubTools()))
    assert (await chat.run("pickup", "DD20261105002", "明天", "5")).text == "很多件"
