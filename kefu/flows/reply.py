"""What the flow interpreter gets from its caller (:class:`FlowContext`) and gives back (:class:`FlowReply`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, TypeAlias

from kefu.flows.texts import Lang

Outcome: TypeAlias = Literal["completed", "cancelled", "handoff", "failed"]
FaqAnswer: TypeAlias = Callable[[str], Awaitable[str | None]]
# (what a valid answer looks like, e.g. "one of: 不想要了, 质量问题, …", the shopper's message) → a value or None
SlotReader: TypeAlias = Callable[[str, str], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class FlowContext:
    """Who the turn is for and what the interpreter may use besides its tools.

    ``lang`` is the conversation's language until a message says otherwise; ``faq`` answers a question asked
    in the middle of a flow (a confident FAQ answer, or None); ``today`` fixes "今天/明天" for date slots
    (None: the local date). ``read_slot`` (optional, e.g. a model) reads a slot answer the rules could not; what
    it returns goes through the slot's own validation like any other value.
    """

    user_id: str
    session_id: str
    turn_id: str
    lang: Lang = "zh"
    faq: FaqAnswer | None = None
    today: date | None = None
    read_slot: SlotReader | None = None


@dataclass(frozen=True, slots=True)
class ToolCallLog:
    """One tool call a turn made (for logs and tests)."""

    name: str
    args: dict[str, Any]
    ok: bool
    error: str | None
    elapsed_ms: float


@dataclass(frozen=True, slots=True)
class HandoffRequest:
    """A flow's ``handoff`` step asking for a human: why, and what the flow had collected."""

    flow: str
    reason: str
    slots: dict[str, Any]


@dataclass(slots=True)
class FlowReply:
    """The result of one turn of a flow.

        ``text`` is never empty. ``state`` is the JSON snapshot to persist (None once the flow ended); ``outcome``
        is None while the flow runs. ``handoff_offered`` means the flow gave up and offered a human (the user
        decides); ``handoff`` means a ``handoff`` step asked for one (record it). ``suggestions`` are replies the
    shopper can pick (the offer after a bare order number).
    """

    text: str
    state: dict[str, Any] | None
    flow: str
    outcome: Outcome | None = None
    tool_calls: list[ToolCallLog] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    handoff: HandoffRequest | None = None
    handoff_offered: bool = False
    suggestions: tuple[str, ...] = ()  # short replies a widget may show as buttons
