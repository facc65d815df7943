"""The typed events of a turn log and their JSON payloads (the public ``/v1/chat`` event contract)."""

from __future__ import annotations

from typing import Any

import orjson

SESSION = "session"
DELTA = "delta"
DONE = "done"
ERROR = "error"


def _dumps(payload: dict[str, Any]) -> str:
    return orjson.dumps(payload).decode()


def session_event(session_id: str, turn_id: str) -> tuple[str, str]:
    """Always the first event of a turn."""
    return SESSION, _dumps({"session_id": session_id, "turn_id": turn_id})


def delta_event(text: str) -> tuple[str, str]:
    """A piece of answer text; the concatenation of all deltas is the answer."""
    return DELTA, _dumps({"text": text})


def done_event(
    turn_id: str,
    *,
    finish_reason: str,
    source: str,
    model: str | None,
    usage: dict[str, int] | None,
    extra: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """The turn ended with a complete answer."""
    payload: dict[str, Any] = {
        "turn_id": turn_id,
        "finish_reason": finish_reason,
        "source": source,
        "model": model,
        "usage": usage,
    }
    if extra:
        payload.update(extra)
    return DONE, _dumps(payload)


def error_event(code: str, message: str, *, retryable: bool) -> tuple[str, str]:
    """The turn ended without a complete answer."""
    return ERROR, _dumps({"code": code, "message": message, "retryable": retryable})


def delta_text(data: str) -> str:
    """The text of a serialised delta event."""
    text = orjson.loads(data)["text"]
    assert isinstance(text, str)
    return text
