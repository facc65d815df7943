"""What the mock upstream does: server-wide defaults (:class:`MockConfig`) and per-request :class:`MockStep` plans."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any

import orjson

# Failure kinds besides plain HTTP statuses ("429", "500", any three digits).
KINDS = frozenset(
    {
        "cut",
        "stall",
        "stall_mid",
        "json",
        "reject_stream_options",
        "reasoning",
        "tool_call",
        "split_bytes",
        "error_event",
    }
)

_DIRECTIVE = re.compile(r"\[\[mock:(\{.*?\})\]\]", re.DOTALL)


@dataclass(slots=True)
class MockConfig:
    """Server-wide defaults of the mock upstream (``kefu mock-llm`` options).

    A *token* of the mock is one character of the answer: ``tokens`` characters are sent ``chunk_chars`` at a
    time at ``tps`` characters per second (``tps`` 0 = no pacing) after ``ttft`` seconds, with a
    ``: keep-alive`` comment every ``keepalive`` seconds while waiting (0 = none). With ``max_concurrency`` set,
    a request arriving while that many answers are in flight gets a 429 (with ``Retry-After:
    max_concurrency_retry_after`` when set), like a provider's per-account concurrency cap.
    """

    ttft: float = 0.2
    tps: float = 200.0
    chunk_chars: int = 4
    tokens: int = 60
    keepalive: float = 0.0
    fail: str | None = None
    fail_rate: float | None = None
    model: str | None = None
    seed: int | None = None
    api_key: str | None = None
    oauth_client_id: str = "kefu-mock"
    oauth_client_secret: str = "kefu-mock-secret"
    oauth_expires_in: int = 3600
    max_concurrency: int | None = None
    max_concurrency_retry_after: float | None = None


@dataclass(slots=True)
class MockStep:
    """The plan for one request: a failure kind (or None for a normal answer) and per-request overrides.

    JSON form (script step or ``[[mock:{...}]]`` directive)::

        {"fail": "429", "retry_after": 2, "retry_after_ms": 1500, "after_chunks": 5, "seconds": 3,
         "ttft": 0.1, "tps": 500, "tokens": 40, "chunk_chars": 2, "keepalive": 0.1, "message": "...",
         "json": true, "finish_reason": "length", "text": "exact answer",
         "tool_calls": [{"name": "start_flow_order_status", "arguments": {"order_id": "DD20261105002"}}]}

    ``json: true`` answers with a plain ``chat.completion`` even to a streaming request (like ``"fail": "json"``,
    but combinable with ``reasoning`` and ``tool_call``). ``message`` replaces the error text of HTTP failures
    and ``error_event``; ``finish_reason`` replaces the normal one (``stop`` / ``tool_calls``). ``text`` is the
    exact answer (instead of the generated filler); ``tool_calls`` makes the answer those function calls
    (``arguments`` an object or a JSON string).
    """

    fail: str | None = None
    retry_after: float | None = None
    retry_after_ms: float | None = None
    after_chunks: int = 3
    seconds: float = 30.0
    ttft: float | None = None
    tps: float | None = None
    tokens: int | None = None
    chunk_chars: int | None = None
    keepalive: float | None = None
    message: str | None = None
    json: bool = False
    finish_reason: str | None = None
    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None

    @classmethod
    def from_json(cls, obj: Any) -> MockStep:
        """Validate a JSON step; raises ``ValueError`` with a readable reason."""
        if not isinstance(obj, dict):
            raise ValueError("a step must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(obj) - known
        if unknown:
            raise ValueError(f"unknown step keys: {sorted(unknown)}")
        fail = obj.get("fail")
        if fail is not None:
            fail = str(fail)
            if fail not in KINDS and not (len(fail) == 3 and fail.isdigit()):
                raise ValueError(f"unknown failure kind {fail!r}; use an HTTP status or one of {sorted(KINDS)}")
        try:
            step = cls(**{**obj, "fail": fail})
            for name in ("retry_after", "retry_after_ms", "seconds", "ttft", "tps", "keepalive"):
                value = getattr(step, name)
                if value is not None and (not isinstance(value, int | float) or value < 0):
                    raise ValueError(f"{name} must be a number >= 0")
            if not isinstance(step.json, bool):
                raise ValueError("json must be true or false")
            if step.finish_reason is not None and not isinstance(step.finish_reason, str):
                raise ValueError("finish_reason must be a string")
            if step.text is not None and not isinstance(step.text, str):
                raise ValueError("text must be a string")
            if step.tool_calls is not None and (
                not isinstance(step.tool_calls, list)
                or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in step.tool_calls)
            ):
                raise ValueError('tool_calls must be a list of {"name": str, "arguments": object}')
            for name in ("after_chunks", "tokens", "chunk_chars"):
                value = getattr(step, name)
                if value is not None and (not isinstance(value, int) or value < 0):
                    raise ValueError(f"{name} must be an integer >= 0")
        except TypeError as exc:
            raise ValueError(str(exc)) from exc
        return step

    def resolved(self, config: MockConfig) -> MockStep:
        """This step with every unset pacing knob taken from ``config``."""
        return replace(
            self,
            ttft=config.ttft if self.ttft is None else self.ttft,
            tps=config.tps if self.tps is None else self.tps,
            tokens=config.tokens if self.tokens is None else self.tokens,
            chunk_chars=max(1, config.chunk_chars if self.chunk_chars is None else self.chunk_chars),
            keepalive=config.keepalive if self.keepalive is None else self.keepalive,
        )


def find_directive(text: str) -> tuple[dict[str, Any] | None, str]:
    """The ``[[mock:{...}]]`` object in ``text`` (or None) and the text without it.

    Raises ``ValueError`` if a directive is present but not valid JSON.
    """
    match = _DIRECTIVE.search(text)
    if match is None:
        return None, text
    try:
        obj = orjson.loads(match.group(1))
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"bad mock directive: {exc}") from exc
    return obj, (text[: match.start()] + text[match.end() :]).strip()
