"""Run an HTTP tool: fill its templates, send, retry reads, map the response.

The client it is given connects only where the address guard allows (:class:`kefu.tools.transport.GuardedTransport`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import httpx

from kefu.errors import ToolError
from kefu.tools.base import ToolResult
from kefu.tools.guard import screen
from kefu.tools.spec import BODY_METHODS, ToolDef
from kefu.tools.template import lookup, render, render_error, render_value, single_ref, unset_optional

# Statuses after which a read is worth one more try; everything else is the answer.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_SECONDS = 0.1
MAX_RETRY_WAIT = 1.0


def build_request(
    tool: ToolDef, client: httpx.AsyncClient, args: Mapping[str, Any], env: Mapping[str, str]
) -> httpx.Request:
    """The request a call sends (raises ``httpx.InvalidURL``/``UnsupportedProtocol`` for a bad URL)."""
    url = render(tool.url, args, env, url=True)
    params: dict[str, str] = {}
    for name, template in tool.query.items():
        ref = single_ref(template)
        if ref is not None and not ref.startswith("env.") and args.get(ref) is None:
            continue  # an optional argument the call left out
        params[name] = render(template, args, env)
    headers = {
        name: render(template, args, env)
        for name, template in tool.headers.items()
        if not unset_optional(template, env)
    }
    body: Any = None
    if tool.body is not None:
        body = render_value(tool.body, args, env)
    elif tool.method in BODY_METHODS:
        body = {k: v for k, v in args.items() if k not in tool.url_params}
    return client.build_request(
        tool.method, url, params=params or None, headers=headers, json=body, timeout=tool.timeout
    )


def map_response(tool: ToolDef, response: httpx.Response) -> ToolResult:
    """A response as a result: 2xx → ``ok`` with the mapped data; otherwise the mapped error code."""
    body: Any = None
    parsed = False
    if response.content:
        try:
            body, parsed = response.json(), True
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = response.text
    status = response.status_code
    if 200 <= status < 300:
        data = lookup(body, tool.response.data) if tool.response.data and parsed else body
        return ToolResult(ok=True, data=data, status=status)
    template = tool.response.errors.get(status)
    code = render_error(template, body) if template else None
    message = body.get("message") if parsed and isinstance(body, dict) else None
    return ToolResult(
        ok=False,
        data=body if parsed else None,
        error=code or f"http_{status}",
        message=message if isinstance(message, str) else f"HTTP {status} from {tool.name}",
        status=status,
    )


def _retry_wait(attempt: int, response: httpx.Response | None) -> float:
    wait: float = BACKOFF_SECONDS * 2.0**attempt
    header = response.headers.get("retry-after") if response is not None else None
    if header:
        try:
            wait = max(wait, float(header))
        except ValueError:
            pass
    return min(wait, MAX_RETRY_WAIT)


async def run_http(
    tool: ToolDef, client: httpx.AsyncClient, args: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[ToolResult, int]:
    """Call the tool; returns the result and how many requests were sent. Only reads are retried; a refused
    address or argument (:class:`ToolError`) is the answer at once."""
    try:
        request = build_request(tool, client, args, env)
        screen(request.url)
    except ToolError as exc:
        return ToolResult(ok=False, error=exc.code, message=exc.message), 0
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
        return ToolResult(ok=False, error="refused", message=f"invalid URL: {exc}"), 0
    attempts = 1 + (tool.retries if tool.risk == "read" else 0)
    result = ToolResult(ok=False, error="unavailable")
    for attempt in range(attempts):
        response: httpx.Response | None = None
        if attempt:
            request = build_request(tool, client, args, env)
        try:
            # httpx's own timeouts do not apply to in-process (ASGI) transports; this deadline does.
            async with asyncio.timeout(tool.timeout):
                response = await client.send(request)
        except ToolError as exc:
            return ToolResult(ok=False, error=exc.code, message=exc.message), attempt
        except (TimeoutError, httpx.TimeoutException):
            message = "no answer in time" if tool.risk == "read" else "no answer in time; the outcome is unknown"
            result, retry = ToolResult(ok=False, error="timeout", message=message), True
        except httpx.HTTPError as exc:
            result, retry = ToolResult(ok=False, error="unavailable", message=type(exc).__name__), True
        else:
            result = map_response(tool, response)
            retry = response.status_code in RETRY_STATUSES
        if not retry or attempt + 1 >= attempts:
            return result, attempt + 1
        await asyncio.sleep(_retry_wait(attempt, response))
    return result, attempts
