"""With a model configured: the model reads a slot answer inside a running flow that the flow's rules could not.

The flow interpreter asks only for a message that is neither a question nor small talk and that its rules could
not read (a return reason in words no synonym lists). One short request goes out: a system message saying
what a valid answer looks like, the shopper's message, and one function, ``slot_value``; the first call's
``value`` is the answer (null: the message does not contain one). What comes back is validated by the slot's
own rules like a typed answer, so the model can only choose among values the rules accept.

The shopper's personal numbers go out as placeholders (``[手机号1]``) and come back as the shopper's own. The
read is bounded: a failure, a timeout or an unreadable call reads nothing, and the flow asks again as it does
for any answer it cannot use.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Literal, TypeAlias

from kefu.engine.usage import MeteredCall, UsageMeter
from kefu.errors import UpstreamError
from kefu.llm.base import ChatMessage, ChatModel, ChatRequest, Finish, ModelEvent, ToolSpec
from kefu.obs import tracing
from kefu.obs.logging import get_logger
from kefu.obs.metrics import Metrics
from kefu.pii import ALL_KINDS, PiiKind, Pseudonyms

log = get_logger("kefu.flow")

FUNCTION = "slot_value"
SOURCE = "flow_slot"  # the usage ledger's source for these calls
TIMEOUT_SECONDS = 8.0
MAX_TOKENS = 200  # a value, not an answer: an address is the longest
MAX_VALUE_CHARS = 500

SYSTEM = (
    "You read one value out of a shopper's message in an online shop's customer-service chat. The value wanted: "
    "{what}. Call slot_value with the value as it should be recorded (for 'one of: …', exactly one of those "
    "options), or with null when the message does not contain it. Do not guess and do not reply with text. "
    "Placeholders such as [手机号1] stand for the shopper's own data: pass them on unchanged."
)
SLOT_FUNCTION = ToolSpec(
    name=FUNCTION,
    description="Record the value the message gives, or null when it gives none.",
    parameters={
        "type": "object",
        "properties": {"value": {"type": ["string", "null"], "description": "the value, or null"}},
        "required": ["value"],
    },
)

ReadResult: TypeAlias = Literal["value", "none", "malformed", "error", "timeout", "over_budget"]


class ModelSlotReader:
    """A :data:`kefu.flows.reply.SlotReader` over a :class:`ChatModel` (see the module docstring)."""

    def __init__(
        self,
        model: ChatModel,
        *,
        metrics: Metrics | None = None,
        usage: UsageMeter | None = None,
        pii_kinds: tuple[PiiKind, ...] = ALL_KINDS,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self._model = model
        self._metrics = metrics
        self._usage = usage
        self._pii_kinds = pii_kinds
        self._timeout = timeout

    async def __call__(self, what: str, text: str, *, turn_id: str = "", session_id: str = "") -> str | None:
        """The value ``text`` gives for a slot described by ``what``, or None (usage is the turn's)."""
        value, result = await self._read(what, text, turn_id, session_id)
        if self._metrics is not None:
            self._metrics.flow_slot_reads.labels(result=result).inc()
        return value

    async def _read(self, what: str, text: str, turn_id: str, session_id: str) -> tuple[str | None, ReadResult]:
        usage = self._usage
        if usage is not None and await usage.over_budget():
            return None, "over_budget"  # the day's model budget is spent: the rules' re-ask costs nothing
        names = Pseudonyms(self._pii_kinds)
        request = ChatRequest(
            messages=(ChatMessage("system", SYSTEM.format(what=what)), ChatMessage("user", names.mask(text))),
            max_tokens=MAX_TOKENS,
            temperature=0.0,
            tools=(SLOT_FUNCTION,),
        )
        metered = usage.call(turn_id, session_id, self._model.model) if usage is not None else None
        if metered is not None:
            metered.source, metered.request = SOURCE, request
        try:
            with tracing.span("kefu.flow.read_slot", provider=self._model.name):
                async with asyncio.timeout(self._timeout):
                    finish = await _finish(_watched(metered, self._model.stream(request)))
        except TimeoutError:
            log.warning("slot_read_failed", reason="timeout", seconds=self._timeout)
            return None, "timeout"
        except UpstreamError as exc:
            log.warning("slot_read_failed", reason="upstream", code=exc.code)
            return None, "error"
        finally:
            if metered is not None:
                await metered.answered(SOURCE)
        if finish is None or not finish.tool_calls:
            return None, "malformed"  # text instead of a call: nothing read
        call = finish.tool_calls[0]
        if call.name != FUNCTION:
            return None, "malformed"
        found, value = _value_of(call.arguments)
        if not found:
            return None, "malformed"
        if value is None:
            return None, "none"
        restored = names.restore(value).strip()
        return (restored[:MAX_VALUE_CHARS], "value") if restored else (None, "none")


async def _finish(stream: AsyncIterator[ModelEvent]) -> Finish | None:
    finish: Finish | None = None
    try:
        async for event in stream:
            if isinstance(event, Finish):
                finish = event
    finally:
        closing = getattr(stream, "aclose", None)
        if closing is not None:
            await closing()  # a timeout aborts the upstream request too
    return finish


def _watched(metered: MeteredCall | None, stream: AsyncIterator[ModelEvent]) -> AsyncIterator[ModelEvent]:
    return metered.watch(stream) if metered is not None else stream


def _value_of(arguments: str) -> tuple[bool, str | None]:
    """Whether the arguments are readable, and their ``value`` as text (None: null)."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return False, None
    if not isinstance(parsed, dict) or "value" not in parsed:
        return False, None
    value = parsed["value"]
    if value is None:
        return True, None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return False, None
    return True, str(value)
