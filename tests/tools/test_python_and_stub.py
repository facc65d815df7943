"""Python tools by dotted path, and stubs for conversation tests: the same rules as HTTP tools."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from kefu.content.problems import Problems
from kefu.tools.base import ToolResult
from kefu.tools.registry import ToolRegistry
from tests.tools.conftest import CTX

PY_TOOLS = """\
    tools:
      - name: stock_sync
        description: stock (sync)
        risk: read
        kind: python
        function: tests.tools.pytools:stock_sync
        parameters: {type: object, properties: {sku: {type: string}}, required: [sku]}
        bind: {user_id: user.id}
      - name: stock_async
        description: stock (async)
        risk: read
        kind: python
        function: tests.tools.pytools:stock_async
        parameters: {type: object, properties: {sku: {type: string}}, required: [sku]}
      - name: refuse
        description: r
        risk: read
        kind: python
        function: tests.tools.pytools:refuse
        parameters: {type: object, properties: {sku: {type: string}}}
      - name: broken
        description: b
        risk: write
        kind: python
        function: tests.tools.pytools:broken
        parameters: {type: object, properties: {sku: {type: string}}}
"""


@pytest.fixture
async def tools(bot: Callable[..., Path]) -> AsyncIterator[ToolRegistry]:
    problems = Problems()
    registry = ToolRegistry.load(bot(py=PY_TOOLS), problems, env={})
    assert problems.items == [], problems.report()
    yield registry
    await registry.aclose()


async def test_python_sync_tool_gets_bound_user(tools: ToolRegistry) -> None:
    result = await tools.call("stock_sync", {"sku": "A1", "user_id": "forged"}, CTX)
    assert result.ok and result.data == {"sku": "A1", "stock": 7, "for": "u-verified"}


async def test_python_async_tool_gets_context(tools: ToolRegistry) -> None:
    result = await tools.call("stock_async", {"sku": "A1"}, CTX)
    assert result.ok and result.data == {"sku": "A1", "session": "s-1"}


async def test_python_tool_may_return_a_result(tools: ToolRegistry) -> None:
    result = await tools.call("refuse", {"sku": "Z"}, CTX)
    assert (result.ok, result.error, result.message) == (False, "not_found", "no Z")


async def test_python_tool_exception_is_a_failed_result(tools: ToolRegistry) -> None:
    assert (await tools.call("broken", {"sku": "Z"}, CTX)).error == "not_confirmed"
    result = await tools.call("broken", {"sku": "Z"}, CTX, confirmed=True)
    assert result.error == "unavailable" and "database down" in (result.message or "")


async def test_python_tool_validates_arguments(tools: ToolRegistry) -> None:
    result = await tools.call("stock_async", {"sku": 3}, CTX)
    assert result.error == "invalid_arguments"


async def test_stub_replays_results_and_records_calls(tools: ToolRegistry) -> None:
    tools.stub("stock_sync", [{"stock": 1}, ToolResult(ok=False, error="timeout")])
    first = await tools.call("stock_sync", {"sku": "A"}, CTX)
    second = await tools.call("stock_sync", {"sku": "B"}, CTX)
    third = await tools.call("stock_sync", {"sku": "C"}, CTX)
    assert first.data == {"stock": 1} and second.error == "timeout" and third.error == "timeout"
    assert tools.calls == [("stock_sync", {"sku": s, "user_id": "u-verified"}) for s in "ABC"]


async def test_stub_keeps_confirmation_and_validation(tools: ToolRegistry) -> None:
    tools.stub("create_return", {"return_id": "R1"}, risk="write")
    assert (await tools.call("create_return", {"order_id": "1"}, CTX)).error == "not_confirmed"
    assert tools.calls == []
    done = await tools.call("create_return", {"order_id": "1"}, CTX, confirmed=True)
    assert done.ok and done.data == {"return_id": "R1"} and tools.risk("create_return") == "write"
    tools.stub("stock_sync", {"stock": 1})
    assert (await tools.call("stock_sync", {}, CTX)).error == "invalid_arguments"
