"""Wire bytes of the mock: the deterministic answer and pre-encoded SSE frames from byte templates."""

from __future__ import annotations

from typing import Any

import orjson

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"
FILLER = "这是模拟客服的回答 mock answer，用于测试 streaming 与多字节 UTF-8 拆分。"
REASONING = "先确认用户的问题 (check the question)，再组织回答。"
TOOL_CALLS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("call_mock_0", "lookup_order", {"order_id": "A1001", "note": "加急"}),
    ("call_mock_1", "get_shipping", {"order_id": "A1001", "carrier": "顺丰"}),
)


def answer_text(question: str, length: int) -> str:
    """The answer to ``question``: exactly ``length`` characters, mixing Chinese and ASCII."""
    text = f"您好！关于「{question.strip()[:20]}」："
    while len(text) < length:
        text += FILLER
    return text[:length]


def split(text: str, size: int) -> list[str]:
    """``text`` in pieces of ``size`` characters."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def usage(prompt_tokens: int, completion_tokens: int, reasoning_tokens: int = 0) -> dict[str, Any]:
    """A DeepSeek-shaped usage object."""
    hit = prompt_tokens // 2
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_cache_hit_tokens": hit,
        "prompt_cache_miss_tokens": prompt_tokens - hit,
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


class Frames:
    """SSE frames of one streamed ``chat.completion.chunk`` response, built by concatenating byte templates."""

    __slots__ = ("_head", "_tail", "_usage_head")

    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool) -> None:
        common = (
            b'data: {"id":"'
            + completion_id.encode()
            + b'","object":"chat.completion.chunk","created":'
            + str(created).encode()
            + b',"model":'
            + orjson.dumps(model)
            + b',"system_fingerprint":"fp_kefu_mock","choices":['
        )
        self._head = common + b'{"index":0,"delta":'
        self._usage_head = common + b'],"usage":'
        self._tail = (
            b',"logprobs":null,"finish_reason":null}]' + (b',"usage":null' if include_usage else b"") + b"}\n\n"
        )

    def role(self) -> bytes:
        """The opening chunk (role, empty content) that carries no token."""
        return self._head + b'{"role":"assistant","content":""}' + self._tail

    def content(self, piece: str) -> bytes:
        """A content delta."""
        return self._head + b'{"content":' + orjson.dumps(piece) + b"}" + self._tail

    def reasoning(self, piece: str) -> bytes:
        """A reasoning delta (DeepSeek ``reasoning_content`` with null content)."""
        return self._head + b'{"content":null,"reasoning_content":' + orjson.dumps(piece) + b"}" + self._tail

    def tool_call(self, fragment: dict[str, Any]) -> bytes:
        """A tool-call fragment."""
        return self._head + orjson.dumps({"tool_calls": [fragment]}) + self._tail

    def finish(self, reason: str) -> bytes:
        """The chunk with the finish reason."""
        tail = self._tail.replace(b'"finish_reason":null', b'"finish_reason":' + orjson.dumps(reason))
        return self._head + b"{}" + tail

    def usage(self, counts: dict[str, Any]) -> bytes:
        """The final usage chunk (empty ``choices``)."""
        return self._usage_head + orjson.dumps(counts) + b"}\n\n"


ToolCalls = tuple[tuple[str, str, Any], ...]


def scripted_calls(calls: list[dict[str, Any]] | None) -> ToolCalls:
    """A step's ``tool_calls`` (``[{"name", "arguments"}]``) as (id, name, arguments); the built-in pair if None."""
    if calls is None:
        return TOOL_CALLS
    return tuple((f"call_mock_{i}", c["name"], c.get("arguments", {})) for i, c in enumerate(calls))


def _arguments(args: Any) -> str:
    return args if isinstance(args, str) else orjson.dumps(args).decode()


def tool_call_fragments(calls: ToolCalls = TOOL_CALLS) -> list[dict[str, Any]]:
    """Tool calls as stream fragments: id and name first, then the arguments in three pieces."""
    out: list[dict[str, Any]] = []
    for index, (call_id, name, args) in enumerate(calls):
        out.append({"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}})
        text = _arguments(args)
        step = max(1, len(text) // 3 + 1)
        out.extend({"index": index, "function": {"arguments": part}} for part in split(text, step))
    return out


def error_frame(message: str, kind: str = "server_error", code: str | None = None) -> bytes:
    """A ``data: {"error": ...}`` frame as some providers send mid-stream."""
    return b"data: " + orjson.dumps({"error": {"message": message, "type": kind, "code": code}}) + b"\n\n"


def completion(
    completion_id: str,
    created: int,
    model: str,
    text: str,
    counts: dict[str, Any],
    *,
    reasoning: str | None = None,
    tool_calls: ToolCalls = (),
    finish_reason: str | None = None,
) -> bytes:
    """A whole non-streamed ``chat.completion`` body."""
    message: dict[str, Any] = {"role": "assistant", "content": None if tool_calls else text}
    if reasoning:
        message["reasoning_content"] = reasoning
    if tool_calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": _arguments(args)}}
            for cid, name, args in tool_calls
        ]
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
            }
        ],
        "usage": counts,
        "system_fingerprint": "fp_kefu_mock",
    }
    return orjson.dumps(body)
