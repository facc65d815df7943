"""The seam between flows (or the model) and a shop's business APIs: what a tool call gets and returns.

``kefu.tools`` implements :class:`ToolCaller` (HTTP tools declared in YAML, Python tools by dotted path);
``kefu.flows`` only uses this module, so flows are tested with any caller (a stub, the demo shop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

Risk: TypeAlias = Literal["read", "write"]


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Who a call is made for. ``user_id`` comes from the verified token, never from the model or the text."""

    user_id: str
    session_id: str
    turn_id: str


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The outcome of one call.

    ``data`` is the (mapped) JSON response — also for HTTP errors that carry a JSON body, so a flow can
    branch on it. ``error`` is a machine code when ``ok`` is False: ``timeout``, ``unavailable``,
    ``http_<status>`` or a code the tool's response mapping names (``not_found``, ``already_shipped`` …),
    ``refused`` (address not allowed), ``invalid_arguments``, ``not_confirmed``, ``unknown_tool``,
    ``not_configured``.
    """

    ok: bool
    data: Any = None
    error: str | None = None
    message: str | None = None
    status: int | None = None
    elapsed_ms: float = 0.0


class ToolCaller(Protocol):
    """Calls tools by name. Implementations never raise for a failed call: they return ``ok=False``."""

    def has(self, name: str) -> bool:
        """True when a tool of that name exists."""
        ...

    def risk(self, name: str) -> Risk | None:
        """``read`` or ``write`` (None for an unknown tool). Writes run only with ``confirmed=True``."""
        ...

    async def call(self, name: str, args: dict[str, Any], ctx: ToolContext, *, confirmed: bool = False) -> ToolResult:
        """Run a tool. Parameters bound to ``user.id`` are filled from ``ctx``, whatever ``args`` says."""
        ...
