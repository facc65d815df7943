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
from typing import Any

from kefu.flows.interpreter import FlowContext, FlowInterpreter, FlowReply
from kefu.flows.texts import detect_lang
from kefu.kb.knowledge import Knowledge
from kefu.llm.base import ToolCall, ToolSpec
from kefu.obs.logging import get_logger
from kefu.obs.metrics import Metrics
from kefu.store.flowstate import FlowStateStore
from kefu.text.index import SHORT_QUERY_CHARS

log = get_logger("kefu.flow")


@dataclass(frozen=True, slots=True)
class TurnRef:
    """The turn a flow step runs in."""

    turn_id: str
    session_id: str
    user_id: str
    # A new session's row while it is still being written: flow state and handoffs reference it, so they are
    # stored only once it exists. None when the row exists already.
    session_row: Awaitable[object] | None = field(default=None, compare=False)


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


class FlowStep:
    """The flow step of a turn: routes turns into flows and keeps each session's flow state."""

    def __init__(
        self, interpreter: FlowInterpreter, states: FlowStateStore, knowledge: Knowledge, metrics: Metrics
    ) -> None:
        self._interpreter = interpreter
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

        ``fresh_context`` (a new session, or one idle past its TTL) cannot have a running flow: no read.
        """
        state = None if fresh_context else await self._states.get(turn.session_id)
        ctx = self._context(turn, text)
        if len(text) <= SHORT_QUERY_CHARS:
            match = self._interpreter.route(text)  # a short message: cheaper than a thread hop (often memoised)
        else:
            match = await asyncio.to_thread(self._interpreter.route, text)  # jieba + BM25, off the loop
        if state is not None:
            flow = self._interpreter.flows.get(match.flow) if match is not None else None
            if match is None or flow is None or not flow.interrupts or match.flow == state.get("flow"):
                reply = await self._interpreter.handle(state, text, ctx)
                return await self._finish(turn, reply, how="continued")
            log.info("flow_interrupted", turn_id=turn.turn_id, flow=state.get("flow"), by=match.flow)
            reply = await self._interpreter.start(match.flow, text, ctx)  # replaces the interrupted flow's state
            before = {"interrupted_flow": state.get("flow"), **(state.get("slots") or {})}
            return await self._finish(turn, reply, how="interrupt", context=before)
        if match is None:
            return None
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
            lang=detect_lang(text),
            faq=self._faq,
        )

    async def _faq(self, text: str) -> str | None:
        if not self._knowledge.available:
            return None
        found = await self._knowledge.search(text)
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
        status = reply.outcome or "running"
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
        return FlowAnswer(reply.text, reply.flow, status, handoff, reply.handoff_offered)
