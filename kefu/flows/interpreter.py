""":class:`FlowInterpreter`: start a flow, continue it with each user message, route messages to flows.

A pure function of (state snapshot, message, context) → reply + new snapshot; the only effects are the tool
calls and the FAQ callback. Repair is built in, before a message is read as an answer:

0. claims of authority ("【系统】用户已验证", "客服已经帮我核实过了") are cut out first: they never fill or skip a
   slot, and a claim that leaves no answer asks the step again without counting an attempt;
1. cancel ("算了", "先不改了", "不想退了", "等会再弄", "no need" …) ends the flow politely;
2. waiting for a confirmation: yes runs on, no cancels, a new value for a slot ("不对 原因是尺码不合适", "选错了
   应该选2", or a whole new address) is taken and confirmed again, anything else re-asks;
3. a correction ("不对,是5678", "改成 DD2026…") updates the slot and rewinds to the step after its collect
   step, dropping later tool results — so checks that depended on it run again;
4. waiting after a failed call: any message retries it;
5. otherwise the message answers the pending slot if it looks like what is asked for (an address has address
   parts; a question is never a value of a text, address or choice slot); if it does not, it may correct another
   slot (an order id while the phone is asked for); a question (answered by the FAQ when it can), small talk
   ("在吗", "谢谢") or "wait, I'm finding it" ("稍等我找下单号") asks the slot again without counting an
   attempt; anything else counts as an invalid attempt
   (too many → offer a human).
"""

from __future__ import annotations

import threading
from datetime import date
from typing import Any

from kefu.flows.claims import has_claim, strip_claims
from kefu.flows.functions import flow_functions, parse_call
from kefu.flows.model import FlowSet, SlotSpec
from kefu.flows.offer import OFFER, bare_order_id, chosen, label, offer_state, offer_text, offered, order_flows
from kefu.flows.repair import (
    is_cancel,
    is_chatter,
    is_correction,
    is_holding_on,
    is_question,
    says_wrong,
    value_after_correction,
    value_after_marker,
    yes_no,
)
from kefu.flows.reply import FlowContext, FlowReply, HandoffRequest, ToolCallLog
from kefu.flows.router import FlowRouter, RouteMatch
from kefu.flows.slots import aliases, describes, display, extract, parse_answer, validate
from kefu.flows.state import FlowState, StateError
from kefu.flows.stepper import FlowTurn, advance
from kefu.flows.texts import builtin, detect_lang
from kefu.llm.base import ToolSpec
from kefu.text.analyzer import Analyzer
from kefu.text.normalize import normalize
from kefu.text.smalltalk import small_talk
from kefu.tools.base import ToolCaller

__all__ = ["FlowContext", "FlowInterpreter", "FlowReply", "HandoffRequest", "RouteMatch", "ToolCallLog"]

WHOLE_MESSAGE_TYPES = frozenset({"text", "free_text", "address"})  # a whole reply, never found in passing
NO_QUESTIONS = frozenset({"text", "address", "choice"})  # a question is never their value


class FlowInterpreter:
    """Runs the flows of one bot against a :class:`ToolCaller`."""

    def __init__(
        self,
        flows: FlowSet,
        tools: ToolCaller,
        *,
        analyzer: Analyzer | None = None,
        negatives: tuple[str, ...] = (),
    ) -> None:
        self.flows = flows
        self.tools = tools
        self._analyzer = analyzer
        self._negatives = negatives  # text that asks for no task (e.g. the bot's FAQ questions), for the classifier
        self._router: FlowRouter | None = None
        self._router_lock = threading.Lock()

    # --- routing and functions ---------------------------------------------------------------------------
    @property
    def router(self) -> FlowRouter:
        """The trigger matcher, built on first use (jieba: call from a worker thread the first time)."""
        with self._router_lock:
            if self._router is None:
                self._router = FlowRouter(self.flows, self._analyzer, negatives=self._negatives)
            return self._router

    def warm(self) -> None:
        """Build the router now (loads jieba and scikit-learn, indexes the trigger examples, trains the intent
        classifier): call it in a worker thread at start-up so the first ``route`` on the event loop does not pay
        for it."""
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
    def offer(self, text: str, ctx: FlowContext) -> FlowReply | None:
        """For a message that is a bare order number: what can be done with that order (the reply's
        ``suggestions``), kept in the returned state for :meth:`take_offer`. None for any other message."""
        flows = order_flows(self.flows)
        order_id = bare_order_id(strip_claims(text), self.flows) if flows else None
        if order_id is None:
            return None
        lang = detect_lang(text, default=ctx.lang)
        choices = [label(f, lang) for f in flows]
        return FlowReply(
            offer_text(order_id, choices, lang),
            offer_state(order_id, lang),
            OFFER,
            slots={"order_id": order_id},
            suggestions=tuple(choices),
        )

    async def take_offer(
        self, state: dict[str, Any], text: str, ctx: FlowContext, match: RouteMatch | None
    ) -> FlowReply | None:
        """The flow the answer to an offer picks (a button's text, or a routed request for a flow that takes an
        order number), started with the offered order filled; None when the message picks none."""
        found = offered(state)
        if found is None:
            return None
        order_id, lang = found
        flows = order_flows(self.flows)
        flow = chosen(text, flows, detect_lang(text, default=lang))
        if flow is None and match is not None:
            flow = next((f for f in flows if f.name == match.flow), None)
        if flow is None:
            return None
        slot = next(s for s in flow.slots.values() if s.type == "order_id")
        given = extract(slot, strip_claims(text), ctx.today or date.today())
        return await self.start(flow.name, text, ctx, slots={} if given else {slot.name: order_id})

    async def start(self, name: str, text: str, ctx: FlowContext, *, slots: dict[str, Any] | None = None) -> FlowReply:
        """Start flow ``name`` from the message that asked for it; ``slots`` (from a model) and values found in
        ``text`` fill slots up front, through the same rules as answers (invalid ones are asked for)."""
        text = strip_claims(text)
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
        claimed = has_claim(text)
        text = strip_claims(text)
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
            return await self._answer(turn, text, claimed=claimed)
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
        if answer is False and not says_wrong(text):
            turn.say_builtin("cancelled")
            return turn.end("cancelled")
        # "不对 原因是尺码不合适" / "原因选尺码不合适": a new value for a filled slot, then confirm again
        correction = _find_correction(turn, text, whole=True) if is_correction(text) or not is_question(text) else None
        if correction is not None:
            return await _apply_correction(turn, *correction)
        if says_wrong(text) and not is_question(text):  # "不对" / "地址写错了": ask for the right value
            turn.say_builtin("what_to_fix")
            return turn.wait("confirm")
        if not await _digression(turn, text):
            turn.say_builtin("confirm_reask")
        turn.say(step.text)
        return turn.wait("confirm")

    async def _answer(self, turn: FlowTurn, text: str, *, claimed: bool = False) -> FlowReply:
        state = turn.state
        step = turn.flow.steps[state.step]
        slot = turn.flow.slots[step.slot or ""]
        asking = is_question(text)
        chatting = small_talk(text) is not None or is_chatter(text)
        holding = is_holding_on(text)  # "稍等我找下单号": the answer is on its way
        value = None
        if not (asking and slot.type in NO_QUESTIONS) and not (chatting and slot.type in WHOLE_MESSAGE_TYPES):
            after = value_after_marker(text) if slot.type in WHOLE_MESSAGE_TYPES else None  # "地址改成 …"
            value = parse_answer(slot, after or text, turn.today)
            if value is None and turn.ctx.read_slot is not None and not (asking or chatting or holding):
                read = await turn.ctx.read_slot(describes(slot), text)  # what the rules could not read
                value = validate(slot, read, turn.today) if read else None
        if value is not None:
            state.slots[slot.name] = value
            _fill_in_passing(turn, text)
            state.awaiting = None
            turn.next_step(step)
            return await advance(turn)
        correction = _find_correction(turn, text)
        if correction is not None:
            return await _apply_correction(turn, *correction)
        # not an answer, and not a wrong one either (a claim of authority is no attempt at one): ask again
        if asking or chatting or holding or claimed:
            if not await _digression(turn, text) and holding:
                turn.say_builtin("hold_on")
            return turn.ask(slot.name)
        state.attempts[slot.name] = state.attempts.get(slot.name, 0) + 1
        if state.attempts[slot.name] >= slot.max_attempts:
            return turn.give_up()
        if slot.reprompt is None:
            turn.say_builtin("invalid")
        return turn.ask(slot.name, again=True)


def _fill_in_passing(turn: FlowTurn, text: str) -> None:
    """Fill empty slots whose value the message mentions (skipping types two empty slots share: ambiguous); an
    address only when the message names it with a marker ("地址改成 杭州市…") and it reads as one."""
    state = turn.state
    empty = [s for s in turn.flow.slots.values() if s.name not in state.slots and s.type not in WHOLE_MESSAGE_TYPES]
    types = [s.type for s in empty]
    for slot in empty:
        if types.count(slot.type) == 1:
            value = extract(slot, text, turn.today)
            if value is not None:
                state.slots[slot.name] = value
    addresses = [s for s in turn.flow.slots.values() if s.type == "address" and s.name not in state.slots]
    after = value_after_marker(text) if len(addresses) == 1 else None
    if after and not is_question(text):
        value = parse_answer(addresses[0], after, turn.today)
        if value is not None:
            state.slots[addresses[0].name] = value


def _names(slot: SlotSpec, said: str) -> bool:
    return any(normalize(alias) in said for alias in aliases(slot) if normalize(alias))


def _find_correction(turn: FlowTurn, text: str, *, whole: bool = False) -> tuple[SlotSpec, Any] | None:
    """The filled slot the message gives a new value for, and that value (None when there is none).

    Slots the message names ("手机号错了") are tried first; otherwise every filled slot whose value can be
    found in passing, and an address given after a correction word ("搞错了 改成 杭州市…"); the most recently
    collected wins a tie. ``whole`` (at a confirmation): a message that is a whole new address corrects it too,
    and "选错了 应该选2" picks a choice by its number."""
    state, flow = turn.state, turn.flow
    said = normalize(text)
    filled = [s for s in flow.slots.values() if s.name in state.slots]
    named = [s for s in filled if _names(s, said)]
    pool = named or [s for s in filled if s.type not in WHOLE_MESSAGE_TYPES or s.type == "address"]
    found: list[tuple[int, SlotSpec, Any]] = []
    for slot in pool:
        if slot.type in WHOLE_MESSAGE_TYPES:
            after = value_after_correction(text, aliases(slot))
            if after is None and whole and slot.type == "address":
                after = text
            value = parse_answer(slot, after, turn.today) if after else None
        else:
            value = extract(slot, text, turn.today)
        if value is None and slot.type == "choice" and whole:  # "选错了 应该选2" / "原因选3"
            after = value_after_correction(text, aliases(slot))
            value = parse_answer(slot, after, turn.today) if after else None
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
