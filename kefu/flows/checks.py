"""Cross-reference checks of a parsed flow: slots, labels, tools, templates and write confirmations."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from kefu.content.problems import Problems
from kefu.content.yamldoc import Doc, Key
from kefu.flows.model import Flow, Step
from kefu.flows.texts import PATH, Text, placeholders
from kefu.tools.base import Risk

ROOTS = ("slots", "labels", "result", "steps")


def path_problem(path: str, flow: Flow, saved: set[str]) -> str | None:
    """Why ``path`` (a template placeholder or condition variable) names nothing, or None when it is fine."""
    if not PATH.match(path):
        return f"{{{path}}} is not a dotted name like slots.order_id"
    parts = path.split(".")
    root = parts[0]
    if root == "slots" or root == "labels":
        if len(parts) != 2:
            return f"{path!r}: use {root}.<slot name>"
        slot = flow.slots.get(parts[1])
        if slot is None:
            return f"{path!r} names an undeclared slot {parts[1]!r}"
        if root == "labels" and slot.type != "choice":
            return f"{path!r}: labels.<slot> is for choice slots"
        return None
    if root == "result":
        return None if any(s.kind == "call" for s in flow.steps) else f"{path!r}: the flow calls no tool"
    if root == "steps":
        if len(parts) < 2 or parts[1] not in saved:
            return f"{path!r}: no call step has save_as {parts[1] if len(parts) > 1 else ''!r}"
        return None
    return f"{path!r}: a name starts with one of {', '.join(ROOTS)}"


def _texts(step: Step) -> Iterator[Text]:
    if step.text is not None:
        yield step.text


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _write_confirmed(flow: Flow, index: int) -> bool:
    """A write call needs its own ``confirm`` text or a confirm step before it (and after any earlier write)."""
    if flow.steps[index].text is not None:
        return True
    for step in reversed(flow.steps[:index]):
        if step.kind == "confirm":
            return True
        if step.kind == "call" and flow.risks.get(step.tool or "") == "write":
            return False
    return False


def check_flow(flow: Flow, doc: Doc, problems: Problems, tools: Mapping[str, Risk]) -> bool:
    """Report everything that refers to something missing; True when the flow has no errors."""
    before = len(problems.errors)

    def error(key: Key, message: str) -> None:
        problems.error(doc.path, message, doc.line(key))

    saved = {s.save_as for s in flow.steps if s.save_as}
    seen_labels: dict[str, int] = {}
    for i, step in enumerate(flow.steps):
        key: Key = ("steps", i)
        if step.label:
            if step.label in seen_labels:
                error((*key, "label"), f"duplicate label {step.label!r} (also on step {seen_labels[step.label] + 1})")
            seen_labels.setdefault(step.label, i)
        targets = [(("goto",), step.goto)] + [((step.kind, n, "goto"), r.goto) for n, r in enumerate(step.rules)]
        targets.append((("else",), step.otherwise))
        for where, target in targets:
            if target is not None and target not in flow.labels:
                error((*key, *where), f"goto {target!r}: no step has that label")
        if step.kind in ("collect", "reask") and step.slot not in flow.slots:
            error((*key, step.kind), f"{step.kind} of undeclared slot {step.slot!r} (declare it under slots:)")
        if step.kind == "reask" and step.slot in flow.slots and flow.collect_index(step.slot or "") is None:
            error((*key, "reask"), f"reask of {step.slot!r}, which no collect step asks for")
        if step.kind == "call":
            if step.tool is None or step.tool not in tools:
                known = ", ".join(sorted(tools)) or "none"
                error((*key, "call"), f"unknown tool {step.tool!r} (this bot has: {known})")
            elif tools[step.tool] == "write" and not _write_confirmed(flow, i):
                error(
                    (*key, "call"),
                    f"{step.tool!r} changes data: give the call a 'confirm' text or put a confirm step before it",
                )
        for n, rule in enumerate(step.rules):
            problem = path_problem(rule.when.var, flow, saved)
            if problem:
                error((*key, "branch", n, "when", "var"), problem)
        for name in step.values:
            if name not in flow.slots:
                error((*key, "set", name), f"set of undeclared slot {name!r}")
        templates = [t for text in _texts(step) for t in text.parts()]
        templates += list(_strings(dict(step.args))) + list(_strings(dict(step.values)))
        for template in templates:
            for path in placeholders(template):
                problem = path_problem(path, flow, saved)
                if problem:
                    error((*key, step.kind), f"template {problem}")
    for slot in flow.slots.values():
        texts = [slot.prompt] + ([slot.reprompt] if slot.reprompt else [])
        for template in (t for text in texts for t in text.parts()):
            for path in placeholders(template):
                problem = path_problem(path, flow, saved)
                if problem:
                    error(("slots", slot.name), f"template {problem}")
        if flow.collect_index(slot.name) is None and not any(slot.name in s.values for s in flow.steps):
            problems.warning(doc.path, f"slot {slot.name!r} is never collected or set", slot.line)
    return len(problems.errors) == before
