"""The bot's tools offered to a model as functions (OpenAI ``tools`` entries)."""

from __future__ import annotations

import copy

from kefu.llm.base import ToolSpec
from kefu.tools.registry import ToolRegistry


def model_functions(tools: ToolRegistry) -> list[ToolSpec]:
    """The tools as model functions. Bound parameters are left out: the model never sees or fills them."""
    out = []
    for tool in tools.specs():
        params = copy.deepcopy(dict(tool.parameters))
        props = params.get("properties", {})
        for bound in tool.bind:
            props.pop(bound, None)
        if "required" in params:
            params["required"] = [r for r in params["required"] if r not in tool.bind]
            if not params["required"]:
                del params["required"]
        out.append(ToolSpec(name=tool.name, description=tool.description, parameters=params))
    return out
