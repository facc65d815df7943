"""The model reading a flow's slot answer (kefu.engine.slot_reader) against the mock upstream over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from kefu.engine.slot_reader import FUNCTION, ModelSlotReader
from kefu.engine.usage import Budget, UsageMeter, utc_day
from kefu.llm.auth import StaticKey
from kefu.llm.openai_compat import OpenAICompatModel
from kefu.llm.prices import PriceTable
from kefu.obs.metrics import Metrics
from kefu.store.usage_spend import MemorySpend
from tests.support import MockLLM

CHOICE = "one of: 不想要了, 质量问题, 发错货, 其他"
PHONE = "an 11-digit mobile number"


@pytest.fixture
async def model(fresh_mock: MockLLM) -> AsyncIterator[OpenAICompatModel]:
    made = OpenAICompatModel(
        fresh_mock.url + "/v1", "mock-chat", StaticKey("sk-test"), first_token_timeout=5.0, idle_timeout=5.0
    )
    yield made
    await made.aclose()


def answers(value: Any) -> dict[str, Any]:
    """A scripted step: the model calls the slot function with ``value``."""
    return {"tool_calls": [{"name": FUNCTION, "arguments": {"value": value}}]}


def reads(metrics: Metrics, result: str) -> float:
    return metrics.registry.get_sample_value("kefu_flow_slot_reads_total", {"result": result}) or 0.0


def sent(mock: MockLLM) -> dict[str, Any]:
    body: dict[str, Any] = mock.stats()["last_request"]["body"]
    return body


async def test_the_first_call_is_the_answer_with_the_slot_function_offered(
    fresh_mock: MockLLM, model: OpenAICompatModel
) -> None:
    metrics = Metrics()
    reader = ModelSlotReader(model, metrics=metrics)
    fresh_mock.script(answers("质量问题"))
    assert await reader(CHOICE, "穿了一次就开胶了") == "质量问题"
    body = sent(fresh_mock)
    assert [t["function"]["name"] for t in body["tools"]] == [FUNCTION]
    assert body["messages"][0]["role"] == "system" and CHOICE in body["messages"][0]["content"]
    assert body["messages"][-1] == {"role": "user", "content": "穿了一次就开胶了"}
    assert reads(metrics, "value") == 1


async def test_a_phone_number_goes_out_as_a_placeholder_and_comes_back_as_the_shoppers(
    fresh_mock: MockLLM, model: OpenAICompatModel
) -> None:
    reader = ModelSlotReader(model)
    fresh_mock.script(answers("[手机号1]"))
    value = await reader(PHONE, "新号码是 138-1234-5678 以后打这个")
    assert value == "138-1234-5678"  # as the shopper wrote it; the slot's rules normalise it
    wire = orjson.dumps(sent(fresh_mock)).decode()
    assert "[手机号1]" in wire
    assert "5678" not in wire and "13812345678" not in wire


async def test_null_reads_nothing(fresh_mock: MockLLM, model: OpenAICompatModel) -> None:
    metrics = Metrics()
    reader = ModelSlotReader(model, metrics=metrics)
    fresh_mock.script(answers(None))
    assert await reader(CHOICE, "我再想想吧") is None
    assert reads(metrics, "none") == 1


@pytest.mark.parametrize(
    ("step", "result"),
    [
        ({"fail": "500"}, "error"),
        ({"fail": "400"}, "error"),
        ({"tool_calls": [{"name": FUNCTION, "arguments": "{not json"}]}, "malformed"),
        ({"tool_calls": [{"name": FUNCTION, "arguments": {"reason": "质量问题"}}]}, "malformed"),
        ({"tool_calls": [{"name": "start_flow_order_status", "arguments": {"value": "质量问题"}}]}, "malformed"),
        ({"text": "质量问题"}, "malformed"),  # text instead of a call: nothing read
    ],
)
async def test_failures_and_unreadable_calls_read_nothing(
    fresh_mock: MockLLM, model: OpenAICompatModel, step: dict[str, Any], result: str
) -> None:
    metrics = Metrics()
    reader = ModelSlotReader(model, metrics=metrics)
    fresh_mock.script(step, step, step, step)  # retries (none here without the resilient chain) find it too
    assert await reader(CHOICE, "穿了一次就开胶了") is None
    assert reads(metrics, result) == 1


async def test_a_model_that_does_not_answer_in_time_reads_nothing(
    fresh_mock: MockLLM, model: OpenAICompatModel
) -> None:
    metrics = Metrics()
    reader = ModelSlotReader(model, metrics=metrics, timeout=0.3)
    fresh_mock.script({"fail": "stall", "seconds": 3})
    assert await reader(CHOICE, "穿了一次就开胶了") is None
    assert reads(metrics, "timeout") == 1


async def test_the_call_is_metered_and_a_spent_budget_skips_it(fresh_mock: MockLLM, model: OpenAICompatModel) -> None:
    metrics = Metrics()
    meter = UsageMeter(ledger=None, prices=PriceTable(), metrics=metrics)
    reader = ModelSlotReader(model, metrics=metrics, usage=meter)
    fresh_mock.script(answers("发错货"))
    assert await reader(CHOICE, "寄来的根本不是我拍的那件") == "发错货"
    tokens = metrics.registry.get_sample_value("kefu_llm_tokens_total", {"model": "mock-chat", "kind": "completion"})
    assert tokens is not None and tokens > 0

    spend = MemorySpend()
    spend.seed(utc_day(datetime.now(UTC)), "CNY", 10)
    budget = Budget(spend, limit_nano=1, currency="CNY", metrics=metrics)
    spent = ModelSlotReader(
        model, metrics=metrics, usage=UsageMeter(ledger=None, prices=PriceTable(), metrics=metrics, budget=budget)
    )
    before = fresh_mock.stats()["requests"]
    fresh_mock.script(answers("发错货"))
    assert await spent(CHOICE, "寄来的根本不是我拍的那件") is None
    assert fresh_mock.stats()["requests"] == before
    assert reads(metrics, "over_budget") == 1
