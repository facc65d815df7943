"""The flow step of a turn: continue the session's running flow, or start one the text (or the model) asks for.

Flow state is read at the start of the turn and written back before the answer is stored, so a restart or
another replica continues at the same step. The flow interpreter itself is pure (``kefu.flows``); this module only
wires it to the session's storage and the knowledge base (for digressions); a flow's request for a person is
handed to the people step (:mod:`kefu.engine.people`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kefu.flows.interpreter import FlowContext, FlowInterpreter, FlowReply, RouteMatch
from kefu.flows.offer import OFFER, offered
from kefu.flows.reply import SlotReader
from kefu.flows.texts import Lang, detect_lang
from kefu.kb.knowledge import Knowledge
from kefu.llm.base import ToolCall, ToolSpec
from kefu.obs.logging import get_logger
from kefu.obs.metrics import Metrics
from kefu.store.flowstate import FlowStateStore
from kefu.text.index import SHORT_QUERY_CHARS

log = get_logger("kefu.flow")
# A running flow is only taken over by a learned guess this sure (rules: a keyword or a close example always).
INTERRUPT_CONFIDENCE = 0.8


def _sure(match: RouteMatch) -> bool:
    return match.via != "classifier" or match.score >= INTERRUPT_CONFIDENCE


class TurnSlotReader(Protocol):
    """Reads a slot answer the rules could not (a model), told which turn it reads for (its usage is the turn's)."""

    async def __call__(self, what: str, text: str, *, turn_id: str, session_id: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class TurnRef:
    """The turn a flow step runs in."""

    turn_id: str
    session_id: str
    user_id: str
    # A new session's row while it is still being written: flow state and handoffs reference it, so they are
    # stored only once it exists. None when the row exists already.
    session_row: Awaitable[object] | None = field(default=None, compare=False)
    lang: Lang = "zh"  # the conversation's language, decided by the answerer (kefu.flows.texts.conversation_lang)


@dataclass(frozen=True, slots=True)
class HandoffAsk:
    """A flow that ended by asking for a person: why, and the slots it had collected."""

    reason: str
    slots: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FlowAnswer:
    """A flow's answer to the turn and what the ``done`` event says about it."""

    text: str
    flow: str
    status: str  # "running" or the outcome: completed, cancelled, handoff, failed
    handoff: HandoffAsk | None = None  # the turn hands the conversation to a person (kefu.engine.people)
    handoff_offered: bool = False
    suggestions: tuple[str, ...] = ()  # replies to offer as buttons (done.suggestions)


class FlowStep:
    """The flow step of a turn: routes turns into flows and keeps each session's flow state."""

    def __init__(
        self,
        interpreter: FlowInterpreter,
        states: FlowStateStore,
        knowledge: Knowledge,
        metrics: Metrics,
        *,
        read_slot: TurnSlotReader | None = None,
    ) -> None:
        self._interpreter = interpreter
        self._read_slot = read_slot  # with a model configured: reads slot answers the rules could not
        self._states = states
        self._knowledge = knowledge
        self._metrics = metrics
        self.observers: list[Callable[[TurnRef, FlowReply], None]] = []  # e.g. ``kefu test`` watching tool calls

    @property
    def interpreter(self) -> FlowInterpreter:
        """The flow interpreter in use (replaced wholesale on bot reload)."""
        return self._interpreter

    def functions(self) -> list[ToolSpec]:
        """The flows, offered to a model as functions it may call to start one."""
        return self._interpreter.functions()

    async def continue_or_route(self, turn: TurnRef, text: str, *, fresh_context: bool = False) -> FlowAnswer | None:
        """The flow's reply if a flow is running or the text starts one without a model; else None.

        ``fresh_context`` (a new session, or one idle past its TTL) cannot have a running flow: no read. A bare
        order number with no flow running is answered with the flows that take one (an offer, kept as the
        session's flow state until the next message picks one of them or something else).
        """
        state = None if fresh_context else await self._states.get(turn.session_id)
        ctx = self._context(turn, text)
        if len(text) <= SHORT_QUERY_CHARS:
            match = self._interpreter.route(text)  # a short message: cheaper than a thread hop (often memoised)
        else:
            match = await asyncio.to_thread(self._interpreter.route, text)  # jieba + BM25, off the loop
        if state is not None and offered(state) is not None:
            reply = await self._interpreter.take_offer(state, text, ctx, match)
            if reply is not None:
                return await self._finish(turn, reply, how="offer")
            await self._states.clear(turn.session_id)  # the offer was not taken: the message goes on as usual
            state = None
        if state is not None:
            flow = self._interpreter.flows.get(match.flow) if match is not None else None
            if (
                match is None
                or flow is None
                or not flow.interrupts
                or match.flow == state.get("flow")
                or not _sure(match)
            ):
                reply = await self._interpreter.handle(state, text, ctx)
                return await self._finish(turn, reply, how="continued")
            log.info("flow_interrupted", turn_id=turn.turn_id, flow=state.get("flow"), by=match.flow)
            reply = await self._interpreter.start(match.flow, text, ctx)  # replaces the interrupted flow's state
            before = {"interrupted_flow": state.get("flow"), **(state.get("slots") or {})}
            return await self._finish(turn, reply, how="interrupt", context=before)
        if match is None:
            reply = self._interpreter.offer(text, ctx)
            return await self._finish(turn, reply, how="offer") if reply is not None else None
        reply = await self._interpreter.start(match.flow, text, ctx)
        return await self._finish(turn, reply, how="rules")

    async def start_from_model(self, turn: TurnRef, text: str, calls: tuple[ToolCall, ...]) -> FlowAnswer | None:
        """Start the flow a model chose (its extracted slots validated by the flow's own rules), if any."""
        for call in calls:
            parsed = self._interpreter.parse_function_call(call.name, call.arguments)
            if parsed is None:
                log.warning("model_called_unknown_function", turn_id=turn.turn_id, function=call.name)
                continue
            name, slots = parsed
            reply = await self._interpreter.start(name, text, self._context(turn, text), slots=slots)
            return await self._finish(turn, reply, how="model")
        return None

    def _context(self, turn: TurnRef, text: str) -> FlowContext:
        return FlowContext(
            user_id=turn.user_id,
            session_id=turn.session_id,
            turn_id=turn.turn_id,
            lang=detect_lang(text, default=turn.lang),
            faq=lambda question: self._faq(question, turn.lang),
            read_slot=self._slot_reader(turn),
        )

    def _slot_reader(self, turn: TurnRef) -> SlotReader | None:
        reader = self._read_slot
        if reader is None:
            return None

        async def read(what: str, text: str) -> str | None:
            return await reader(what, text, turn_id=turn.turn_id, session_id=turn.session_id)

        return read

    async def _faq(self, text: str, lang: Lang) -> str | None:
        if not self._knowledge.available:
            return None
        found = await self._knowledge.search(text, lang=lang)
        return found.direct.text if found.direct is not None else None

    async def _finish(
        self, turn: TurnRef, reply: FlowReply, *, how: str, context: dict[str, Any] | None = None
    ) -> FlowAnswer:
        for observe in self.observers:
            observe(turn, reply)
        if turn.session_row is not None:
            await turn.session_row
        if reply.state is None:
            await self._states.clear(turn.session_id)
        else:
            await self._states.put(turn.session_id, turn.user_id, reply.flow, reply.state)
        status = reply.outcome or ("offered" if reply.flow == OFFER else "running")
        handoff = None
        if reply.handoff is not None:
            handoff = HandoffAsk(reply.handoff.reason, {**(context or {}), **reply.slots})
        self._metrics.flow_turns.labels(flow=reply.flow, status=status).inc()
        log.info(
            "flow_turn",
            turn_id=turn.turn_id,
            flow=reply.flow,
            status=status,
            routed_by=how,
            tools=[(c.name, c.ok, c.error) for c in reply.tool_calls],
        )
        return FlowAnswer(reply.text, reply.flow, status, handoff, reply.handoff_offered, reply.suggestions)
