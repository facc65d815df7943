"""Guarantee: while a person owns a conversation the bot never answers (no model call, no flow, no FAQ), on any
replica; handoffs start from the button, the model's ``request_human``, frustration and repeated failure; a person's
replies become the bot's history when the conversation comes back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from kefu.errors import Conflict
from kefu.handoff.config import HandoffConfig
from kefu.handoff.service import Desk
from kefu.llm.base import ToolCall
from tests.engine.conftest import ALICE, Engine
from tests.engine.fakes import FakeModel, Script, broken, texts


@dataclass(frozen=True)
class FakeAgent:
    id: str
    display_name: str
    is_admin: bool = False


AMY = FakeAgent("ag_amy", "小艾")
BEN = FakeAgent("ag_ben", "小本")


async def test_the_bot_never_answers_while_a_person_owns_the_conversation_on_any_replica(engine: Engine) -> None:
    model_a, model_b = FakeModel(["bot answer"]), FakeModel(["never"])
    desk = engine.desk()
    a = engine.replica(model_a, desk=desk)
    b = engine.replica(model_b, desk=engine.desk())
    first = await a.chat.start_turn(ALICE, "hello")
    assert texts(await engine.follow_all(a, first)) == "bot answer"

    ticket = await a.chat.hand_over(ALICE, first.session_id, "please")
    assert ticket.handoff.status == "queued" and ticket.handoff.reason_code == "button" and ticket.created
    for replica, question in ((a, "where is my parcel"), (b, "怎么退货"), (b, "still there?")):
        handle = await replica.chat.start_turn(ALICE, question, first.session_id)
        events = await engine.follow_all(replica, handle)
        assert [e.name for e in events] == ["session", "handoff", "done"]
        assert orjson.loads(events[-1].data)["source"] == "human"
    assert (model_a.calls, model_b.calls) == (1, 0)

    await desk.claim(first.session_id, AMY)
    handle = await b.chat.start_turn(ALICE, "hi person", first.session_id)
    events = await engine.follow_all(b, handle)
    assert orjson.loads(events[1].data)["state"] == "agent" and orjson.loads(events[1].data)["agent"] is None
    assert (model_a.calls, model_b.calls) == (1, 0)
    # The shopper's messages are in the transcript and in the feed the desk reads, in order.
    feed = await _feed(desk, first.session_id)
    assert [d["text"] for k, d in feed if k == "user"] == [
        "where is my parcel",
        "怎么退货",
        "still there?",
        "hi person",
    ]


async def test_a_persons_replies_are_history_when_the_bot_takes_over_again(engine: Engine) -> None:
    model = FakeModel(["first"], ["after"])
    desk = engine.desk()
    a = engine.replica(model, desk=desk)
    first = await a.chat.start_turn(ALICE, "hello")
    await engine.follow_all(a, first)
    await a.chat.hand_over(ALICE, first.session_id)
    await desk.claim(first.session_id, AMY)
    await desk.send(first.session_id, AMY, "您的包裹明天到")
    await desk.release(first.session_id, AMY)

    handle = await a.chat.start_turn(ALICE, "thanks, and the invoice?", first.session_id)
    assert texts(await engine.follow_all(a, handle)) == "after"
    sent = [(m.role, m.content) for m in model.requests[1].messages if m.role != "system"]
    assert sent == [
        ("user", "hello"),
        ("assistant", "first"),
        ("assistant", "[人工客服 小艾] 您的包裹明天到"),
        ("user", "thanks, and the invoice?"),
    ]


async def test_the_model_can_hand_over_with_request_human(engine: Engine) -> None:
    call = ToolCall("c1", "request_human", '{"reason": "refund dispute"}')
    model = FakeModel(Script(["我帮您转人工。"], finish="tool_calls", tool_calls=(call,)))
    a = engine.replica(model, desk=engine.desk())
    handle = await a.chat.start_turn(ALICE, "I want my money back now")
    events = await engine.follow_all(a, handle)
    assert "request_human" in {t.name for t in model.requests[0].tools}
    handoff, done = orjson.loads(events[-2].data), orjson.loads(events[-1].data)
    assert handoff["state"] == "queued" and handoff["reason"] == "model"
    assert done["source"] == "human" and done["handoff"] == {"id": handoff["id"], "state": "queued"}
    assert texts(events).startswith("我帮您转人工。")
    stored = await engine.desks[0].handoffs(status="open")
    assert [(h.reason, h.context["recent"][-1]["content"]) for h in stored] == [
        ("refund dispute", "I want my money back now")
    ]


async def test_frustration_hands_over_without_asking_the_model(engine: Engine) -> None:
    model = FakeModel(["unused"])
    a = engine.replica(model, desk=engine.desk())
    handle = await a.chat.start_turn(ALICE, "机器人听不懂 叫人工")
    events = await engine.follow_all(a, handle)
    assert orjson.loads(events[-2].data)["reason"] == "frustration" and model.calls == 0


async def test_two_apologies_in_a_row_hand_over(engine: Engine) -> None:
    model = FakeModel([broken()])  # every call fails before its first token: the bot can only apologise
    a = engine.replica(model, desk=engine.desk(HandoffConfig(repeated_failures=2)))
    first = await a.chat.start_turn(ALICE, "question one")
    events = await engine.follow_all(a, first)
    assert orjson.loads(events[-1].data)["handoff_offered"] is True and events[-2].name == "delta"
    second = await a.chat.start_turn(ALICE, "question two", first.session_id)
    events = await engine.follow_all(a, second)
    assert orjson.loads(events[-2].data)["reason"] == "repeated_failure"


async def test_exactly_one_of_two_simultaneous_claims_wins(engine: Engine) -> None:
    desk = engine.desk()
    a = engine.replica(FakeModel(["hi"]), desk=desk)
    handle = await a.chat.start_turn(ALICE, "hello")
    await engine.follow_all(a, handle)
    await a.chat.hand_over(ALICE, handle.session_id)
    results = await asyncio.gather(
        desk.claim(handle.session_id, AMY), engine.desk().claim(handle.session_id, BEN), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "HandoffRecord"]
    loser = AMY if isinstance(results[0], Conflict) else BEN
    with pytest.raises(Conflict):
        await desk.send(handle.session_id, loser, "mine?")


async def test_a_queued_request_nobody_takes_returns_to_the_bot(engine: Engine) -> None:
    now = [datetime.now(UTC)]
    config = HandoffConfig(queue_timeout=60)
    desk = engine.desk(config)
    a = engine.replica(FakeModel(["bot again"]), desk=desk)
    handle = await a.chat.start_turn(ALICE, "hello")
    await engine.follow_all(a, handle)
    await a.chat.hand_over(ALICE, handle.session_id)
    late = Desk(
        desk._store,
        engine.hub,
        config=config,
        metrics=a.metrics,
        presence=engine.presence,
        clock=lambda: now[0] + timedelta(seconds=61),
    )
    early = Desk(
        desk._store,
        engine.hub,
        config=config,
        metrics=a.metrics,
        presence=engine.presence,
        clock=lambda: now[0] + timedelta(seconds=30),
    )
    assert await early.expire_queue() == 0
    assert await late.expire_queue() == 1 and await late.expire_queue() == 0
    state, _, _ = await desk.state(handle.session_id)
    assert state == "bot"
    assert (await _feed(desk, handle.session_id))[-1] == ("notice", {"text": config.texts.timeout})
    again = await a.chat.start_turn(ALICE, "anyone?", handle.session_id)
    assert texts(await engine.follow_all(a, again)) == "bot again"


async def _feed(desk: Desk, session_id: str) -> list[tuple[str, dict[str, object]]]:
    events = await desk._store.events(session_id, 0)
    return [(e.kind, orjson.loads(e.data)) for e in events]


async def test_a_transfer_gives_the_conversation_to_the_other_agent_only(engine: Engine) -> None:
    desk = engine.desk()
    a = engine.replica(FakeModel(["hi"]), desk=desk)
    handle = await a.chat.start_turn(ALICE, "hello")
    await engine.follow_all(a, handle)
    await a.chat.hand_over(ALICE, handle.session_id)
    await desk.claim(handle.session_id, AMY)
    with pytest.raises(Conflict):
        await desk.transfer(handle.session_id, BEN, AMY)  # only the agent who has it (or an admin)
    moved = await desk.transfer(handle.session_id, AMY, BEN)
    assert moved.agent_id == BEN.id and moved.status == "agent"
    with pytest.raises(Conflict):
        await desk.send(handle.session_id, AMY, "still mine?")
    await desk.send(handle.session_id, BEN, "我来接手")
    feed = await _feed(desk, handle.session_id)
    assert ("notice", {"text": desk.config.texts.transferred.format(agent="小本")}) in feed
    assert feed[-1][0] == "agent" and feed[-1][1]["agent"] == {"name": "小本"}
    assert [item.handoff.agent_id for item in await desk.queue(AMY)] == []  # no longer in Amy's queue
    assert [item.handoff.agent_id for item in await desk.queue(BEN)] == [BEN.id]
