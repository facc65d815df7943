"""The people step of a turn: hand the conversation to a person, or relay a message to the person who has it.

The rules of who answers live here, so they hold for every way a turn can go:
* while a handoff is queued or an agent has the conversation, the bot never answers (:meth:`People.relay`);
* a handoff starts when the shopper asks (the ``human`` flow), a flow reaches a ``handoff`` step, the model calls
  ``request_human``, the shopper's words show frustration, or the bot failed ``repeated_failures`` times in a row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from kefu.bot.texts import CannedTexts
from kefu.engine.ending import Ending
from kefu.engine.events import DoneEvent, FlowStatus, HandoffEvent
from kefu.engine.writer import DeltaWriter
from kefu.handoff.config import HandoffConfig
from kefu.handoff.service import Relayed, Ticket, frustrated
from kefu.llm.base import ToolSpec
from kefu.store.base import ContextMessage

REQUEST_HUMAN = "request_human"
OPEN_STATES = frozenset({"queued", "agent"})
_RECENT = 8  # messages of context a person gets with the request


class HandoffPort(Protocol):
    """What a turn uses of :class:`kefu.handoff.service.Desk`."""

    @property
    def config(self) -> HandoffConfig: ...

    async def request(
        self,
        session_id: str,
        *,
        turn_id: str,
        reason_code: str,
        reason: str,
        flow: str | None = None,
        slots: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Ticket: ...

    async def relay(self, session_id: str, turn_id: str, text: str) -> Relayed | None: ...


def request_human_spec() -> ToolSpec:
    """The function the model may call to hand the conversation to a person."""
    return ToolSpec(
        name=REQUEST_HUMAN,
        description=(
            "把对话转给人工客服。仅在用户明确要求真人、问题超出你能处理的范围、或用户明显不满时调用。"
            " / Hand the conversation to a human agent: only when the user asks for a person, the problem is beyond"
            " what you can do, or the user is clearly upset."
        ),
        parameters={
            "type": "object",
            "properties": {"reason": {"type": "string", "description": "一句话说明原因 / one-line reason"}},
            "required": [],
        },
    )


class People:
    """Hand over and relay, for the turns of one process."""

    def __init__(self, port: HandoffPort) -> None:
        self._port = port

    @property
    def config(self) -> HandoffConfig:
        """The bot's handoff settings."""
        return self._port.config

    def frustrated(self, text: str) -> bool:
        """Whether the shopper's words ask for a person out of frustration."""
        return frustrated(text, self._port.config)

    def failed_before(self, history: Sequence[ContextMessage], texts: CannedTexts) -> bool:
        """Whether the bot's last ``repeated_failures - 1`` answers were apologies (so this one makes N)."""
        needed = self._port.config.repeated_failures - 1
        if needed < 0:
            return False
        answers = [m.content for m in history if m.role == "assistant"][-needed:] if needed else []
        starts = tuple(text[:16] for text in texts.variants("apology"))  # in any language the bot speaks
        return len(answers) == needed and all(a.startswith(starts) for a in answers)

    async def hand_over(
        self,
        *,
        session_id: str,
        turn_id: str,
        reason_code: str,
        reason: str,
        history: Sequence[ContextMessage],
        text: str,
        flow: str | None = None,
        slots: Mapping[str, Any] | None = None,
    ) -> Ticket:
        """Queue the conversation for a person, with the context they need."""
        recent = [{"role": m.role, "content": m.content} for m in history[-_RECENT:]]
        recent.append({"role": "user", "content": text})
        context = {"recent": recent, "intent": flow}
        return await self._port.request(
            session_id,
            turn_id=turn_id,
            reason_code=reason_code,
            reason=reason,
            flow=flow,
            slots=slots,
            context=context,
        )

    async def relay(self, session_id: str, turn_id: str, text: str, writer: DeltaWriter) -> Ending | None:
        """The turn of a shopper message while a person owns the conversation: no answer, a ``handoff`` event and
        ``done`` (``source: human``); only the way back to the bot has a text (its notice). None when the
        conversation is the bot's after all."""
        relayed = await self._port.relay(session_id, turn_id, text)
        if relayed is None:
            return None
        if relayed.notice:
            writer.write(relayed.notice)
        event = HandoffEvent(
            relayed.handoff.id, relayed.state, relayed.handoff.reason_code, relayed.position, False, relayed.agent
        )
        done = DoneEvent(
            turn_id,
            finish_reason="stop",
            source="human",
            handoff_id=relayed.handoff.id,
            handoff_state=relayed.state,
        )
        return Ending("complete", done, source="human", before=(event,))


def ticket_event(ticket: Ticket) -> HandoffEvent:
    """The ``handoff`` event a turn that started (or met) a handoff sends before ``done``."""
    h = ticket.handoff
    return HandoffEvent(h.id, h.status, h.reason_code, ticket.position, ticket.offline)


def handed_over(
    turn_id: str,
    ticket: Ticket,
    *,
    source: str,
    flow: FlowStatus | None = None,
    model: str | None = None,
    usage: Mapping[str, int] | None = None,
) -> tuple[DoneEvent, HandoffEvent]:
    """The ``done`` and ``handoff`` events of a turn that handed the conversation to a person."""
    done = DoneEvent(
        turn_id,
        finish_reason="stop",
        source=source,
        model=model,
        usage=usage,
        flow=flow,
        handoff_id=ticket.handoff.id,
        handoff_state=ticket.handoff.status,
    )
    return done, ticket_event(ticket)
