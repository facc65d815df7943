"""The typed turn events and their one JSON form (the public ``/v1/chat`` event contract)."""

from __future__ import annotations

import orjson
import pytest

from kefu.engine.events import (
    EVENT_TYPES,
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    FlowStatus,
    HandoffEvent,
    Logged,
    SessionEvent,
    SourceRef,
    TurnEvent,
    decode_event,
    encode,
)

FULL_DONE = DoneEvent(
    "t_1",
    finish_reason="stop",
    source="flow",
    model="deepseek-chat",
    usage={"prompt_tokens": 3, "completion_tokens": 4},
    sources=(SourceRef("ship-fee", "运费多少？"),),
    suggestions=("怎么退货",),
    cached=True,
    flow=FlowStatus("order_status", "running"),
    handoff_id="ho_1",
    handoff_offered=True,
    handoff_state="queued",
)
EXAMPLES: list[TurnEvent] = [
    SessionEvent("s_1", "t_1"),
    DeltaEvent("你好，\n世界 😀"),
    DoneEvent("t_1", finish_reason="length", source="llm"),
    FULL_DONE,
    ErrorEvent("upstream_rate_limited", "slow down", retryable=True),
    HandoffEvent("ho_1", "queued", "shopper_asked", position=2, offline=True),
    HandoffEvent("ho_1", "agent", "button", agent="小艾"),
]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_every_event_survives_the_log(event: TurnEvent) -> None:
    name, data = encode(event)
    assert name == event.name
    assert "\n" not in data  # one SSE data line
    assert decode_event(name, data) == event
    assert Logged(7, name, data).event == event


def test_the_list_of_event_types_is_complete_and_names_are_unique() -> None:
    assert {type(e) for e in EXAMPLES} == set(EVENT_TYPES)
    assert len({t.name for t in EVENT_TYPES}) == len(EVENT_TYPES)


def test_done_json_is_the_public_contract() -> None:
    assert orjson.loads(encode(DoneEvent("t_1", finish_reason="stop", source="faq"))[1]) == {
        "turn_id": "t_1",
        "finish_reason": "stop",
        "source": "faq",
        "model": None,
        "usage": None,
    }
    full = orjson.loads(encode(FULL_DONE)[1])
    assert full["sources"] == [{"id": "ship-fee", "title": "运费多少？"}]
    assert full["flow"] == {"name": "order_status", "status": "running"}
    assert full["handoff"] == {"id": "ho_1", "state": "queued"}
    assert (full["cached"], full["handoff_offered"], full["suggestions"]) == (True, True, ["怎么退货"])


def test_only_done_and_error_end_a_turn() -> None:
    assert [Logged(1, *encode(e)).final for e in EXAMPLES] == [False, False, True, True, True, False, False]


def test_an_unknown_event_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown turn event"):
        decode_event("agent", "{}")
