"""What templates and conditions can see (slots, labels, results), and the tiny condition language."""

from __future__ import annotations

from typing import Any

from kefu.flows.model import Condition, Flow
from kefu.flows.slots import display
from kefu.flows.state import FlowState
from kefu.flows.texts import Lang, lookup, render, single_placeholder


def scope_of(flow: Flow, state: FlowState, lang: Lang) -> dict[str, Any]:
    """``slots``, ``labels`` (choice slots as their label in ``lang``), ``result`` (latest call) and ``steps``."""
    labels = {name: display(spec, state.slots.get(name), lang) for name, spec in flow.slots.items()}
    return {"slots": state.slots, "labels": labels, "result": state.result or {}, "steps": state.results}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def holds(condition: Condition, scope: dict[str, Any]) -> bool:
    """Whether ``condition`` is true over ``scope`` (a missing variable is None)."""
    value = lookup(scope, condition.var)
    match condition.op:
        case "equals":
            return _same(value, condition.value)
        case "not_equals":
            return not _same(value, condition.value)
        case "in":
            return any(_same(value, item) for item in condition.value)
        case "exists":
            return (value is not None) is bool(condition.value)
    return False


def fill(value: Any, scope: dict[str, Any]) -> Any:
    """Fill templates inside an argument value: a lone placeholder keeps its value's type (a number stays a
    number); other strings are rendered; lists and dicts are filled item by item."""
    if isinstance(value, str):
        path = single_placeholder(value)
        return lookup(scope, path) if path is not None else render(value, scope)
    if isinstance(value, dict):
        return {k: fill(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, scope) for v in value]
    return value
