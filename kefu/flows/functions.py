"""Flows offered to a model as functions (``start_flow_<name>``) and reading the model's call back."""

from __future__ import annotations

import json
from typing import Any

from kefu.flows.model import DEFAULT_ORDER_ID, FlowSet, SlotSpec
from kefu.llm.base import ToolSpec

PREFIX = "start_flow_"


def _schema(slot: SlotSpec) -> dict[str, Any]:
    about = slot.description or slot.prompt.en or slot.prompt.zh
    schema: dict[str, Any] = {"type": "string", "description": about}
    match slot.type:
        case "order_id":
            schema["pattern"] = f"^(?:{slot.pattern or DEFAULT_ORDER_ID})$"
        case "phone":
            schema["pattern"] = r"^1[3-9]\d{9}$"
        case "phone_last4":
            schema["pattern"] = r"^\d{4}$"
        case "number":
            schema["type"] = "integer" if slot.integer else "number"
            if slot.minimum is not None:
                schema["minimum"] = slot.minimum
            if slot.maximum is not None:
                schema["maximum"] = slot.maximum
        case "choice":
            schema["enum"] = [o.value for o in slot.options]
        case "date":
            schema["format"] = "date"
            schema["description"] = f"{about} (YYYY-MM-DD)"
        case "text" | "address":
            if slot.min_length is not None:
                schema["minLength"] = slot.min_length
            if slot.max_length is not None:
                schema["maxLength"] = slot.max_length
    return schema


def flow_functions(flows: FlowSet) -> list[ToolSpec]:
    """One function per flow; every parameter is optional (the flow asks for what is missing)."""
    specs = []
    for flow in flows.flows.values():
        about = flow.description
        description = f"{about.zh} / {about.en}" if about.en else about.zh
        parameters = {
            "type": "object",
            "properties": {name: _schema(slot) for name, slot in flow.slots.items()},
            "additionalProperties": False,
        }
        specs.append(ToolSpec(name=f"{PREFIX}{flow.name}", description=description, parameters=parameters))
    return specs


def parse_call(flows: FlowSet, name: str, arguments_json: str) -> tuple[str, dict[str, Any]] | None:
    """``(flow name, slot values)`` for a ``start_flow_<name>`` call, None for any other function.

    Unknown arguments are dropped and unparsable JSON counts as no arguments: the values still go through the
    slot rules when the flow starts, so nothing here is trusted."""
    if not name.startswith(PREFIX):
        return None
    flow = flows.get(name.removeprefix(PREFIX))
    if flow is None:
        return None
    try:
        arguments = json.loads(arguments_json) if arguments_json.strip() else {}
    except ValueError:
        arguments = {}
    if not isinstance(arguments, dict):
        arguments = {}
    return flow.name, {k: v for k, v in arguments.items() if k in flow.slots and v is not None}
