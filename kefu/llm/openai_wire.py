"""The OpenAI chat-completions wire format: request messages, tool-call fragments, usage, and error mapping."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from kefu.errors import UpstreamError, UpstreamStatusError
from kefu.llm.base import ChatMessage, ToolCall, ToolCallDelta, Usage


def message_to_wire(message: ChatMessage) -> dict[str, Any]:
    """One message in OpenAI format (reasoning is never sent back)."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name:
        out["name"] = message.name
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
        if not message.content:
            out["content"] = None
    return out


class _ToolCallSlot:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []


class ToolCallAssembler:
    """Joins streamed tool-call fragments into whole calls.

    Fragments are grouped by ``index``; a fragment whose ``id`` differs from the call open at that index starts
    a new call (some compatible servers reuse index 0 for parallel calls).
    """

    __slots__ = ("_by_index", "_calls")

    def __init__(self) -> None:
        self._calls: list[_ToolCallSlot] = []
        self._by_index: dict[int, _ToolCallSlot] = {}

    def add(self, fragments: list[Any]) -> list[ToolCallDelta]:
        """Record fragments (wire dicts); return them as events."""
        out: list[ToolCallDelta] = []
        for fragment in fragments:
            index = fragment.get("index") or 0
            call_id = fragment.get("id") or None
            function = fragment.get("function") or {}
            name = function.get("name") or None
            arguments = function.get("arguments") or ""
            slot = self._by_index.get(index)
            if slot is None or (call_id and slot.id and call_id != slot.id):
                slot = _ToolCallSlot()
                self._calls.append(slot)
                self._by_index[index] = slot
            if call_id:
                slot.id = call_id
            if name and slot.name is None:
                slot.name = name
            if arguments:
                slot.arguments.append(arguments)
            out.append(ToolCallDelta(index, call_id, name, arguments))
        return out

    def finished(self) -> tuple[ToolCall, ...]:
        """The complete calls, in the order they started."""
        return tuple(
            ToolCall(slot.id or f"call_{i}", slot.name or "", "".join(slot.arguments))
            for i, slot in enumerate(self._calls)
        )


_BASE_USAGE = frozenset({"prompt_tokens", "completion_tokens", "total_tokens"})


def parse_usage(raw: Mapping[str, Any]) -> Usage:
    """A wire ``usage`` object as :class:`Usage`; other integer counts (nested ones flattened) go to ``extra``."""
    extra: dict[str, int] = {}
    for key, value in raw.items():
        if key in _BASE_USAGE:
            continue
        if type(value) is int:
            extra[key] = value
        elif isinstance(value, dict):
            for inner, count in value.items():
                if type(count) is int:
                    extra.setdefault(inner, count)
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    return Usage(prompt, completion, int(raw.get("total_tokens") or prompt + completion), extra)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), if given."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _provider_message(body: bytes) -> str | None:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    error = obj.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    for value in (error, obj.get("message"), obj.get("detail")):
        if isinstance(value, str) and value:
            return value
    return None


def status_error(status: int, headers: Mapping[str, str], body: bytes, provider: str) -> UpstreamStatusError:
    """The error for an HTTP error status, with the provider's own message when its body has one."""
    text = body.decode("utf-8", "replace")
    detail = _provider_message(body) or text[:200].strip() or "no details"
    return UpstreamStatusError(
        f"{provider} answered HTTP {status}: {detail}",
        status_code=status,
        retry_after=retry_after(headers),
        provider=provider,
        body=text[:2000],
    )


_OVERLOAD_WORDS = (
    "overload",
    "rate limit",
    "rate_limit",
    "capacity",
    "busy",
    "unavailable",
    "resource",
    "try again",
    "timeout",
    "429",
    "500",
    "502",
    "503",
    "504",
    "server_error",
)


def stream_error(error: Any, provider: str) -> UpstreamError:
    """The error for an ``{"error": …}`` object inside a stream; retryable when it reads like overload."""
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        kind = f"{error.get('type') or ''} {error.get('code') or ''}"
    else:
        message, kind = str(error), ""
    haystack = f"{message} {kind}".lower()
    overloaded = any(word in haystack for word in _OVERLOAD_WORDS)
    return UpstreamError(
        f"{provider} reported an error mid-stream: {message}",
        code="upstream_overloaded" if overloaded else "upstream_stream_error",
        retryable=overloaded,
        provider=provider,
    )


def overloaded_finish_error(provider: str) -> UpstreamError:
    """DeepSeek's ``insufficient_system_resource`` finish: the answer was cut for lack of capacity."""
    return UpstreamError(
        f"{provider} stopped the answer: insufficient system resource",
        code="upstream_overloaded",
        retryable=True,
        provider=provider,
    )
