"""Decoder of a streamed OpenAI-compatible chat completion: upstream body bytes in, :data:`ModelEvent` values out.

Pure and incremental: no I/O, no clock, no asyncio. Feed it the body in whatever pieces the socket gave (a
split may fall inside a UTF-8 character, a CRLF or a ``data:`` line; only whole events are ever decoded, each
event's bytes straight into ``orjson.loads``); :meth:`ChatStreamDecoder.feed` returns the events the piece
completed, :meth:`ChatStreamDecoder.end` yields the closing ones (usage, then :class:`~kefu.llm.base.Finish`).

What is not a model event is state, which the I/O loop reads after each feed: ``started`` (the first content
token: text, reasoning or a tool call; the empty role chunk does not count), ``finish_reason``, ``done``
(``[DONE]`` seen; everything after it is ignored), ``error`` (a provider error object or an unreadable chunk),
``comments`` (keep-alive comment lines) and ``dispatched`` (events received, keep-alives excluded). ``changes``
collects which of :data:`STARTED`, :data:`FINISHING`, :data:`DONE`, :data:`FAILED` happened since the reader
last cleared it, so the hot loop tests one attribute per read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from kefu.errors import UpstreamProtocolError
from kefu.llm.base import Finish, ModelEvent, ReasoningDelta, TextDelta
from kefu.llm.openai_wire import ToolCallAssembler, overloaded_finish_error, parse_usage, stream_error
from kefu.llm.sse import SSEFramer

__all__ = ["DONE", "FAILED", "FINISHING", "STARTED", "ChatStreamDecoder"]

# Bits of ChatStreamDecoder.changes.
STARTED = 1  # the first content token
FINISHING = 2  # a finish reason (only [DONE] and usage are left to come)
DONE = 4  # [DONE]: the answer is complete
FAILED = 8  # ``error`` is set; nothing more is decoded

_DONE = b"[DONE]"
_loads = orjson.loads


class ChatStreamDecoder(SSEFramer[ModelEvent]):
    """Decodes one ``chat.completion.chunk`` event stream (``stream: true``) into model events.

    ``provider`` names the upstream in errors; ``requested_model`` is the :class:`Finish` model when the stream
    names none. A failure does not raise from :meth:`feed`: the events decoded before it in the same piece are
    returned first, as the upstream sent them, and the exception is kept in ``error`` (:meth:`end` raises it).
    """

    __slots__ = (
        "_model",
        "_mute",
        "_requested_model",
        "_tools",
        "_usage",
        "changes",
        "done",
        "error",
        "finish_reason",
        "provider",
        "started",
    )

    def __init__(self, provider: str, requested_model: str) -> None:
        super().__init__()
        self.provider = provider
        self._requested_model = requested_model
        self._model: Any = None
        self._usage: Any = None
        self._tools: ToolCallAssembler | None = None
        self._mute = False  # after [DONE] or an error, and at the end of the body: only [DONE] is looked for
        self.changes = 0
        self.started = False
        self.finish_reason: str | None = None
        self.done = False
        self.error: Exception | None = None

    def flush(self) -> list[ModelEvent]:
        """The body ended: an event left without its closing blank line counts only if it is ``[DONE]``."""
        self._mute = True
        return super().flush()

    def end(self) -> Iterator[ModelEvent]:
        """The body ended: yield the closing events (usage if reported, then :class:`Finish`).

        Raises the stream's ``error``, :class:`UpstreamProtocolError` if it ended without ``[DONE]``, or the
        overload error for DeepSeek's ``insufficient_system_resource`` finish.
        """
        if self.error is not None:
            raise self.error
        if not self.done:
            self.flush()
        if not self.done:
            raise UpstreamProtocolError(f"stream from {self.provider} ended without [DONE]", provider=self.provider)
        if self.finish_reason == "insufficient_system_resource":
            raise overloaded_finish_error(self.provider)
        if self._usage:
            yield parse_usage(self._usage)
        calls = self._tools.finished() if self._tools is not None else ()
        yield Finish(self.finish_reason or "stop", self._model or self._requested_model, calls)

    def _emit(self, event: bytes | None, raw: bytes, out: list[ModelEvent]) -> None:
        if self._mute:
            if raw == _DONE and self.error is None:
                self.done = True
            return
        if raw == _DONE:
            self.done = self._mute = True
            self.changes |= DONE
            return
        try:
            self._decode(event, raw, out)
        except Exception as exc:  # kept, to be raised after the events before it (see the class docstring)
            self.error = exc
            self._mute = True
            self.changes |= FAILED

    def _decode(self, event: bytes | None, raw: bytes, out: list[ModelEvent]) -> None:
        """One chunk object: remember model, usage and finish reason; append its non-empty deltas to ``out``."""
        try:
            obj = _loads(raw)
            if event == b"error" or obj.get("error"):
                raise stream_error(obj.get("error") or obj, self.provider)
        except (orjson.JSONDecodeError, AttributeError) as exc:
            raise UpstreamProtocolError(
                f"unreadable stream chunk from {self.provider}: {raw[:200]!r}", provider=self.provider
            ) from exc
        if self._model is None:
            self._model = obj.get("model")
        if obj.get("usage"):
            self._usage = obj["usage"]
        choices = obj.get("choices")
        if not choices:
            return
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
            self.changes |= FINISHING
        delta = choice.get("delta")
        if not delta:
            return
        content = delta.get("content")
        reasoning = delta.get("reasoning_content")
        calls = delta.get("tool_calls")
        if not (content or reasoning or calls):
            return
        if not self.started:
            self.started = True
            self.changes |= STARTED
        if reasoning:
            out.append(ReasoningDelta(reasoning))
        if content:
            out.append(TextDelta(content))
        if calls:
            if self._tools is None:
                self._tools = ToolCallAssembler()
            out.extend(self._tools.add(calls))
