"""Running a flow's steps forward from its current position until it must wait for the user or ends."""

from __future__ import annotations

from datetime import date
from typing import Any

from kefu.flows.model import Flow, Step
from kefu.flows.reply import FlowContext, FlowReply, HandoffRequest, Outcome, ToolCallLog
from kefu.flows.scope import fill, holds, scope_of
from kefu.flows.state import Awaiting, FlowState
from kefu.flows.texts import Lang, Text, builtin, render
from kefu.tools.base import ToolCaller, ToolContext, ToolResult

MAX_STEPS_PER_TURN = 100  # a goto loop without a collect step must not spin forever
MAX_RETRIES = 3  # consecutive transient failures of one call before offering a human
TRANSIENT = frozenset({"timeout", "unavailable"})


def is_transient(result: ToolResult) -> bool:
    """A failure worth retrying later (the service, not the request, was the problem)."""
    error = result.error or ""
    return not result.ok and (error in TRANSIENT or error.startswith("http_5"))


class FlowTurn:
    """One user message's worth of work on a flow: the texts said, the calls made, the state as it moves."""

    def __init__(self, flow: Flow, state: FlowState, ctx: FlowContext, tools: ToolCaller) -> None:
        self.flow = flow
        self.state = state
        self.ctx = ctx
        self.tools = tools
        self.parts: list[str] = []
        self.calls: list[ToolCallLog] = []

    @property
    def lang(self) -> Lang:
        """The language this turn answers in."""
        return self.state.lang

    @property
    def today(self) -> date:
        """The date "今天" means."""
        return self.ctx.today or date.today()

    def scope(self) -> dict[str, Any]:
        """What templates and conditions see now."""
        return scope_of(self.flow, self.state, self.lang)

    def say(self, text: Text | str | None) -> None:
        """Add a text to the reply (a flow text is rendered in the turn's language)."""
        if text is None:
            return
        rendered = text if isinstance(text, str) else render(text.get(self.lang), self.scope())
        if rendered.strip():
            self.parts.append(rendered.strip())

    def say_builtin(self, key: str, **values: str) -> None:
        """Add a built-in repair text."""
        self.parts.append(builtin(key, self.lang, **values))

    def wait(self, awaiting: Awaiting) -> FlowReply:
        """Stop here until the user answers."""
        self.state.awaiting = awaiting
        return self._reply(self.state.to_json(), None)

    def end(self, outcome: Outcome, *, handoff: HandoffRequest | None = None, offered: bool = False) -> FlowReply:
        """The flow is over."""
        if not self.parts:
            self.say_builtin({"completed": "done", "handoff": "handoff"}.get(outcome, "cancelled"))
        reply = self._reply(None, outcome)
        reply.handoff, reply.handoff_offered = handoff, offered
        return reply

    def _reply(self, state: dict[str, Any] | None, outcome: Outcome | None) -> FlowReply:
        return FlowReply(
            text="\n".join(self.parts),
            state=state,
            flow=self.flow.name,
            outcome=outcome,
            tool_calls=list(self.calls),
            slots=dict(self.state.slots),
        )

    def next_step(self, step: Step) -> None:
        """Move past ``step`` (to its ``goto`` label when it has one)."""
        self.state.step = self.flow.labels[step.goto] if step.goto else self.state.step + 1

    def ask(self, slot_name: str, *, again: bool = False) -> FlowReply:
        """Ask for a slot (its re-prompt when ``again`` and it has one) and wait at its collect step."""
        slot = self.flow.slots[slot_name]
        self.say(slot.reprompt if again and slot.reprompt else slot.prompt)
        return self.wait("slot")

    def give_up(self, key: str = "too_many_attempts") -> FlowReply:
        """End the flow offering a human."""
        self.say_builtin(key)
        return self.end("failed", offered=True)


async def advance(turn: FlowTurn) -> FlowReply:
    """Run steps from the state's position until the flow waits or ends."""
    for _ in range(MAX_STEPS_PER_TURN):
        if turn.state.step >= len(turn.flow.steps):
            return turn.end("completed")
        step = turn.flow.steps[turn.state.step]
        stop = await _run(turn, step)
        if stop is not None:
            return stop
    return turn.give_up("retry_failed")


async def _run(turn: FlowTurn, step: Step) -> FlowReply | None:
    state = turn.state
    match step.kind:
        case "collect":
            if step.slot in state.slots:
                turn.next_step(step)
                return None
            return turn.ask(step.slot or "")
        case "confirm":
            turn.say(step.text)
            return turn.wait("confirm")
        case "call":
            return await _call(turn, step)
        case "branch":
            scope = turn.scope()
            target = next((rule.goto for rule in step.rules if holds(rule.when, scope)), step.otherwise)
            state.step = turn.flow.labels[target] if target else state.step + 1
            return None
        case "say":
            turn.say(step.text)
        case "set":
            scope = turn.scope()
            for name, value in step.values.items():
                state.slots[name] = fill(value, scope)
        case "reask":
            return _reask(turn, step)
        case "handoff":
            turn.say(step.text)
            request = HandoffRequest(turn.flow.name, step.reason or "", dict(state.slots))
            return turn.end("handoff", handoff=request)
        case "end":
            turn.say(step.text)
            return turn.end("completed", offered=step.offer_human)
    turn.next_step(step)
    return None


def _reask(turn: FlowTurn, step: Step) -> FlowReply | None:
    """The answer a slot got turned out wrong (a check failed): forget it, count an attempt, ask again."""
    name = step.slot or ""
    state = turn.state
    turn.say(step.text)  # before forgetting: the text may quote the wrong value
    state.slots.pop(name, None)
    state.attempts[name] = state.attempts.get(name, 0) + 1
    if state.attempts[name] >= turn.flow.slots[name].max_attempts:
        return turn.give_up()
    state.rewind(turn.flow.collect_index(name) or 0)
    if step.text is None:
        return turn.ask(name, again=True)
    return turn.wait("slot")


async def _call(turn: FlowTurn, step: Step) -> FlowReply | None:
    state = turn.state
    tool = step.tool or ""
    write = turn.flow.risks.get(tool) == "write" or turn.tools.risk(tool) == "write"
    if not state.confirmed and (write or step.text is not None):
        if step.text is None:  # the spec check forbids this; refuse rather than write unconfirmed
            return turn.give_up("retry_failed")
        turn.say(step.text)
        return turn.wait("confirm")
    args = fill(dict(step.args), turn.scope())
    ctx = ToolContext(turn.ctx.user_id, turn.ctx.session_id, turn.ctx.turn_id)
    result = await turn.tools.call(tool, args, ctx, confirmed=write and state.confirmed)
    turn.calls.append(ToolCallLog(tool, args, result.ok, result.error, result.elapsed_ms))
    if is_transient(result):
        state.retries += 1
        if state.retries >= MAX_RETRIES:
            return turn.give_up("retry_failed")
        turn.say_builtin("system_busy")
        return turn.wait("retry")
    state.retries = 0
    if write or step.text is not None:
        state.confirmed = False  # a confirmation is spent by the call it was asked for
    saved = {"ok": result.ok, "data": result.data, "error": result.error, "message": result.message}
    state.result = saved
    if step.save_as:
        state.results[step.save_as] = saved
        state.saved_at[step.save_as] = state.step
    turn.next_step(step)
    return None
