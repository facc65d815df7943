"""Python tools: a function named by ``package.module:function``, for teams that prefer code to YAML.

The function receives the arguments as keyword arguments (bound ones included) and, if it has a parameter
named ``ctx``, the :class:`~kefu.tools.base.ToolContext`. It may be sync (run in a worker thread) or async, and
returns JSON-like data or a :class:`~kefu.tools.base.ToolResult`. An exception becomes ``ok=False``.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from kefu.tools.base import ToolContext, ToolResult
from kefu.tools.spec import ToolDef


def load_function(dotted: str) -> Callable[..., Any]:
    """Import ``package.module:function`` (raises ImportError/AttributeError/TypeError with a clear message)."""
    module_name, _, attr = dotted.partition(":")
    module = importlib.import_module(module_name)
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{dotted} is not callable")
    return target  # type: ignore[no-any-return]


async def run_python(
    tool: ToolDef, func: Callable[..., Any], args: Mapping[str, Any], ctx: ToolContext
) -> tuple[ToolResult, int]:
    """Call the function within the tool's timeout; returns the result and 1 (one attempt)."""
    kwargs = dict(args)
    if "ctx" in inspect.signature(func).parameters:
        kwargs["ctx"] = ctx
    try:
        async with asyncio.timeout(tool.timeout):
            if inspect.iscoroutinefunction(func):
                value = await func(**kwargs)
            else:
                # A sync function that outlives the timeout keeps its thread until it returns.
                value = await asyncio.to_thread(functools.partial(func, **kwargs))
    except TimeoutError:
        return ToolResult(ok=False, error="timeout", message="no answer in time"), 1
    except Exception as exc:  # the tool's own failure must not break the turn
        return ToolResult(ok=False, error="unavailable", message=f"{type(exc).__name__}: {exc}"), 1
    if isinstance(value, ToolResult):
        return value, 1
    return ToolResult(ok=True, data=value), 1
