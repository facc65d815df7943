"""The one narrow interface between kefu and any chat model.

A :class:`ChatModel` streams a chat completion as typed :data:`ModelEvent` values. Providers translate their
wire format into these events and their failures into :class:`kefu.errors.UpstreamError`; nothing outside
``kefu.llm`` knows a wire format. Retries, fallback and circuit breaking wrap a ``ChatModel`` in another
``ChatModel`` (the seam for the resilience layer).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of the conversation sent to the model."""

    role: Role
    content: str
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call (OpenAI ``tools`` entry of type ``function``)."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What to ask the model. ``model`` None means the provider's configured default."""

    messages: tuple[ChatMessage, ...]
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    tools: tuple[ToolSpec, ...] = ()
    user: str | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer text."""

    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning (``reasoning_content``); never shown as the answer."""

    text: str
    type: Literal["reasoning"] = "reasoning"


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call; fragments with the same ``index`` belong together."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    type: Literal["tool_call_delta"] = "tool_call_delta"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call, assembled from its deltas."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported by the provider. ``extra`` keeps provider-specific counts (cache hits …)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    extra: dict[str, int] = field(default_factory=dict)
    type: Literal["usage"] = "usage"

    def as_dict(self) -> dict[str, int]:
        """The usage as the flat dict the ``done`` event carries."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            **self.extra,
        }


@dataclass(frozen=True, slots=True)
class Finish:
    """The stream ended normally. Always the last event of a successful stream."""

    reason: str
    model: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    upstream: str | None = None  # the route of the chain that answered (set by the resilience layer)
    type: Literal["finish"] = "finish"


ModelEvent: TypeAlias = TextDelta | ReasoningDelta | ToolCallDelta | Usage | Finish


@runtime_checkable
class ChatModel(Protocol):
    """Anything that can stream a chat completion.

    ``stream`` yields events and ends with exactly one :class:`Finish`; any failure is raised as an
    :class:`kefu.errors.UpstreamError` (a stream that ends without its end marker raises
    :class:`kefu.errors.UpstreamProtocolError`, never ends quietly). Closing the iterator early
    (``aclose``) aborts the upstream request.
    """

    @property
    def name(self) -> str:
        """A label for logs and metrics (provider host and model)."""
        ...

    @property
    def model(self) -> str:
        """The default model id this client asks for."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        """Stream one chat completion."""
        ...

    async def aclose(self) -> None:
        """Release pooled connections."""
        ...
