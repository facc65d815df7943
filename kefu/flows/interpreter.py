""":class:`FlowInterpreter`: start a flow, continue it with each user message, route messages to flows.

A pure function of (state snapshot, message, context) → reply + new snapshot; the only effects are the tool
calls and the FAQ callback. Repair is built in, before a message is read as an answer:

1. cancel ("算了" …) ends the flow politely;
2. waiting for a confirmation: yes runs on, no cancels, anything else re-asks;
3. a correction ("不对,是5678", "改成 DD2026…") updates the slot and rewinds to the step after its collect
   step, dropping later tool results — so checks that depended on it run again;
4. waiting after a failed call: any message retries it;
5. otherwise the message answers the pending slot; if it does not, it may correct another slot (an order id
   while the phone is asked for), or be a question the FAQ answers (then the slot is asked again), or
   it counts as an invalid attempt (too many → offer a human).
"""

from __future__ import annotations

import threading
from typing import Any

from kefu.flows.functions import flow_functions, parse_call
from kefu.flows.model import FlowSet, SlotSpec
from kefu.flows.repair import is_cancel, is_correction, is_question, value_after_marker, yes_no
from kefu.flows.reply import FlowContext, FlowReply, HandoffRequest, ToolCallLog
from kefu.flows.router import FlowRouter, RouteMatch
from kefu.flows.slots import aliases, display, extract, parse_answer, validate
from kefu.flows.state import FlowState, StateError
from kefu.flows.stepper import FlowTurn, advance
from kefu.flows.texts import builtin, detect_lang
from kefu.llm.base import ToolSpec
from kefu.text.analyzer import Analyzer
from kefu.text.normalize import normalize
from kefu.tools.base import ToolCaller

__all__ = ["FlowContext", "FlowInterpreter", "FlowReply", "HandoffRequest", "RouteMatch", "ToolCallLog"]

WHOLE_MESSAGE_TYPES = frozenset({"text", "free_text"})  # their value is a whole reply, never found in passing


class FlowInterpreter:
    """Runs the flows of one bot against a :class:`ToolCaller`."""

    def __init__(self, flows: FlowSet, tools: ToolCaller, *, analyzer: Analyzer | None = None) -> None:
        self.flows = flows
        self.tools = tools
        self._analyzer = analyzer
        self._router: FlowRouter | None = None
        self._router_lock = threading.Lock()

    # --- routing and functions ---------------------------------------------------------------------------
    @property
    def router(self) -> FlowRouter:
        """The trigger matcher, built on first use (jieba: call from a worker thread the first time)."""
        with self._router_lock:
            if self._router is None:
                self._router = FlowRouter(self.flows, self._analyzer)
            return self._router

    def warm(self) -> None:
        """Build the router now (loads jieba, indexes the trigger examples): call it in a worker thread at start-up
        so the first ``route`` on the event loop does not pay for it."""
        self.router.route("warm")

    def route(self, text: str) -> RouteMatch | None:
        """The flow ``text`` asks to start (score ≥ the flow set's threshold), or None. CPU-bound (about 0.25 ms
        for a short message, more for a long one): run long messages off the event loop."""
        return self.router.route(text)

    def functions(self) -> list[ToolSpec]:
        """Each flow as a ``start_flow_<name>`` function for a model."""
        return flow_functions(self.flows)

    def parse_function_call(self, name: str, arguments_json: str) -> tuple[str, dict[str, Any]] | None:
        """``(flow name, slots)`` for a model's ``start_flow_<name>`` call; None for other functions."""
        return parse_call(self.flows, name, arguments_json)

    # --- turns -------------------------------------------------------------------------------------------
    async def start(self, name: str, text: str, ctx: FlowContext, *, slots: dict[str, Any] | None = None) -> FlowReply:
        """Start flow ``name`` from the message that asked for it; ``slots`` (from a model) and values found in
        ``text`` fill slots up front, through the same rules as answers (invalid ones are asked for)."""
        flow = self.flows.get(name)
        lang = detect_lang(text, default=ctx.lang)
        if flow is None:
            return FlowReply(builtin("unavailable", lang), None, name, "failed")
        state = FlowState(flow=flow.name, fingerprint=flow.fingerprint, lang=lang)
        turn = FlowTurn(flow, state, ctx, self.tools)
        for key, value in (slots or {}).items():
            spec = flow.slots.get(key)
            checked = validate(spec, value, turn.today) if spec is not None else None
            if checked is not None:
                state.slots[key] = checked
        _fill_in_passing(turn, text)
        return await advance(turn)

    async def handle(self, state: dict[str, Any], text: str, ctx: FlowContext) -> FlowReply:
        """Continue a running flow with the user's message."""
        try:
            current = FlowState.from_json(state)
        except StateError:
            return FlowReply(builtin("unavailable", detect_lang(text, default=ctx.lang)), None, "", "failed")
        flow = self.flows.get(current.flow)
        current.lang = detect_lang(text, default=current.lang)
        if flow is None:
            return FlowReply(builtin("unavailable", current.lang), None, current.flow, "failed")
        turn = FlowTurn(flow, current, ctx, self.tools)
        if current.fingerprint != flow.fingerprint:
            return await self._restart(turn, text)
        if is_cancel(text):
            turn.say_builtin("cancelled")
            return turn.end("cancelled")
        if current.awaiting == "confirm":
            return await self._confirmation(turn, text)
        if is_correction(text) and (correction := _find_correction(turn, text)):
            return await _apply_correction(turn, *correction)
        if current.awaiting == "slot":
            return await self._answer(turn, text)
        current.awaiting = None  # "retry" (or a snapshot taken between steps): run the step again
        return await advance(turn)

    async def _restart(self, turn: FlowTurn, text: str) -> FlowReply:
        """The flow changed shape since this state was saved: start over, keeping slots that still fit."""
        old = turn.state
        fresh = FlowState(flow=turn.flow.name, fingerprint=turn.flow.fingerprint, lang=old.lang)
        for key, value in old.slots.items():
            spec = turn.flow.slots.get(key)
            checked = validate(spec, value, turn.today) if spec is not None else None
            if checked is not None:
                fresh.slots[key] = checked
        turn.state = fresh
        turn.say_builtin("restarted")
        _fill_in_passing(turn, text)
        return await advance(turn)

    async def _confirmation(self, turn: FlowTurn, text: str) -> FlowReply:
        state = turn.state
        step = turn.flow.steps[state.step]
        answer = yes_no(text)
        if answer is True:
            state.confirmed = True
            state.awaiting = None
            if step.kind == "confirm":
                turn.next_step(step)
            return await advance(turn)
        if answer is False:
            turn.say_builtin("cancelled")
            return turn.end("cancelled")
        if is_correction(text) and (correction := _find_correction(turn, text)):
            return await _apply_correction(turn, *correction)
        if not await _digression(turn, text):
            turn.say_builtin("confirm_reask")
        turn.say(step.text)
        return turn.wait("confirm")

    async def _answer(self, turn: FlowTurn, text: str) -> FlowReply:
        state = turn.state
        step = turn.flow.steps[state.step]
        slot = turn.flow.slots[step.slot or ""]
        after = value_after_marker(text) if slot.type == "text" else None  # "地址改成 …" → the address
        value = parse_answer(slot, after or text, turn.today)
        if value is not None:
            state.slots[slot.name] = value
            _fill_in_passing(turn, text)
            state.awaiting = None
            turn.next_step(step)
            return await advance(turn)
        correction = _find_correction(turn, text)
        if correction is not None:
            return await _apply_correction(turn, *correction)
        if await _digression(turn, text):
            return turn.ask(slot.name)
        state.attempts[slot.name] = state.attempts.get(slot.name, 0) + 1
        if state.attempts[slot.name] >= slot.max_attempts:
            return turn.give_up()
        if slot.reprompt is None:
            turn.say_builtin("invalid")
        return turn.ask(slot.name, again=True)


def _fill_in_passing(turn: FlowTurn, text: str) -> None:
    """Fill empty slots whose value the message mentions (skipping types two empty slots share: ambiguous)."""
    state = turn.state
    empty = [s for s in turn.flow.slots.values() if s.name not in state.slots and s.type not in WHOLE_MESSAGE_TYPES]
    types = [s.type for s in empty]
    for slot in empty:
        if types.count(slot.type) == 1:
            value = extract(slot, text, turn.today)
            if value is not None:
                state.slots[slot.name] = value


def _names(slot: SlotSpec, said: str) -> bool:
    return any(normalize(alias) in said for alias in aliases(slot) if normalize(alias))


def _find_correction(turn: FlowTurn, text: str) -> tuple[SlotSpec, Any] | None:
    """The filled slot the message gives a new value for, and that value (None when there is none).

    Slots the message names ("手机号错了") are tried first; otherwise every filled slot whose value can be
    found in passing (the most recently collected wins a tie)."""
    state, flow = turn.state, turn.flow
    said = normalize(text)
    filled = [s for s in flow.slots.values() if s.name in state.slots]
    named = [s for s in filled if _names(s, said)]
    pool = named or [s for s in filled if s.type not in WHOLE_MESSAGE_TYPES]
    found: list[tuple[int, SlotSpec, Any]] = []
    for slot in pool:
        if slot.type in WHOLE_MESSAGE_TYPES:
            after = value_after_marker(text)
            value = parse_answer(slot, after, turn.today) if after else None
        else:
            value = extract(slot, text, turn.today)
        if value is not None and value != state.slots.get(slot.name):
            found.append((flow.collect_index(slot.name) or 0, slot, value))
    if not found:
        return None
    _, slot, value = max(found, key=lambda item: item[0])
    return slot, value


async def _apply_correction(turn: FlowTurn, slot: SlotSpec, value: Any) -> FlowReply:
    """Take the new value and redo what depended on the old one."""
    state, flow = turn.state, turn.flow
    state.slots[slot.name] = value
    index = flow.collect_index(slot.name)
    state.rewind(index + 1 if index is not None else 0)
    turn.say_builtin("updated", value=display(slot, value, turn.lang))
    return await advance(turn)


async def _digression(turn: FlowTurn, text: str) -> bool:
    """Answer a question asked in the middle of the flow (True when the FAQ had a confident answer)."""
    faq = turn.ctx.faq
    # Only a question digresses: a short answer that happens to match an FAQ ("杭州" while an address is asked
    # for matches the delivery-time entry) is an invalid answer, not a question.
    if faq is None or not any(c.isalpha() for c in text) or not is_question(text):
        return False
    answer = await faq(text)
    if not answer:
        return False
    turn.say(answer)
    return True
