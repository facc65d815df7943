"""Python tools referenced by dotted path from the tests' tool files."""

from __future__ import annotations

import asyncio
from typing import Any

from kefu.tools.base import ToolContext, ToolResult


def stock_sync(sku: str, user_id: str) -> dict[str, Any]:
    return {"sku": sku, "stock": 7, "for": user_id}


async def stock_async(sku: str, ctx: ToolContext) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"sku": sku, "session": ctx.session_id}


def refuse(sku: str) -> ToolResult:
    return ToolResult(ok=False, error="not_found", message=f"no {sku}")


def broken(sku: str) -> None:
    raise RuntimeError("database down")


NOT_CALLABLE = 42
