"""The typed events of a turn (the public ``/v1/chat`` event contract) and their one JSON form.

The engine produces these dataclasses; the turn log stores each as ``(name, json)`` (:func:`encode`) and
readers get them back as :class:`Logged` entries (:func:`decode`). The JSON written to the log is exactly the
``data:`` line of the SSE frame, so ``api/`` frames a logged event without encoding it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

import orjson

from kefu.store.base import LogEntry


@dataclass(frozen=True, slots=True)
class SourceRef:
    """A knowledge-base entry or passage an answer used."""

    id: str
    title: str


@dataclass(frozen=True, slots=True)
class FlowStatus:
    """The task flow a turn ran in and where it stands."""

    name: str
    status: str  # running | completed | cancelled | handoff | failed


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """Always the first event of a turn."""

    name: ClassVar[str] = "session"
    session_id: str
    turn_id: str


@dataclass(frozen=True, slots=True)
class DeltaEvent:
    """A piece of answer text; the concatenation of all deltas is the answer."""

    name: ClassVar[str] = "delta"
    text: str


@dataclass(frozen=True, slots=True)
class DoneEvent:
    """The turn ended with a complete answer. Optional fields are left out of the JSON when unset."""

    name: ClassVar[str] = "done"
    turn_id: str
    finish_reason: str
    source: str
    model: str | None = None
    usage: Mapping[str, int] | None = None
    sources: tuple[SourceRef, ...] = ()
    suggestions: tuple[str, ...] = ()
    cached: bool = False
    flow: FlowStatus | None = None
    handoff_id: str | None = None
    handoff_offered: bool = False
    handoff_state: str | None = None  # queued | agent | bot | closed, when the turn started or met a handoff


@dataclass(frozen=True, slots=True)
class HandoffEvent:
    """Who answers the shopper now: sent before ``done`` when a turn started a handoff or was relayed to a person
    (the same payload as the conversation feed's ``handoff`` event)."""

    name: ClassVar[str] = "handoff"
    id: str
    state: str  # queued | agent | bot | closed
    reason: str
    position: int | None = None
    offline: bool = False
    agent: str | None = None  # the agent's display name


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """The turn ended without a complete answer."""

    name: ClassVar[str] = "error"
    code: str
    message: str
    retryable: bool


TurnEvent: TypeAlias = SessionEvent | DeltaEvent | HandoffEvent | DoneEvent | ErrorEvent
TerminalEvent: TypeAlias = DoneEvent | ErrorEvent

# The one list of event types.
EVENT_TYPES: tuple[type[TurnEvent], ...] = (SessionEvent, DeltaEvent, HandoffEvent, DoneEvent, ErrorEvent)
TERMINAL_NAMES = frozenset({DoneEvent.name, ErrorEvent.name})


def _done_payload(event: DoneEvent) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "turn_id": event.turn_id,
        "finish_reason": event.finish_reason,
        "source": event.source,
        "model": event.model,
        "usage": dict(event.usage) if event.usage is not None else None,
    }
    if event.sources:
        payload["sources"] = [{"id": s.id, "title": s.title} for s in event.sources]
    if event.suggestions:
        payload["suggestions"] = list(event.suggestions)
    if event.cached:
        payload["cached"] = True
    if event.flow is not None:
        payload["flow"] = {"name": event.flow.name, "status": event.flow.status}
    if event.handoff_id is not None:
        payload["handoff"] = {"id": event.handoff_id}
        if event.handoff_state is not None:
            payload["handoff"]["state"] = event.handoff_state
    if event.handoff_offered:
        payload["handoff_offered"] = True
    return payload


def payload(event: TurnEvent) -> dict[str, Any]:
    """The event's JSON object (the SSE ``data:`` of the public contract)."""
    if isinstance(event, DeltaEvent):
        return {"text": event.text}
    if isinstance(event, DoneEvent):
        return _done_payload(event)
    if isinstance(event, ErrorEvent):
        return {"code": event.code, "message": event.message, "retryable": event.retryable}
    if isinstance(event, HandoffEvent):
        return handoff_payload(event)
    return {"session_id": event.session_id, "turn_id": event.turn_id}


def handoff_payload(event: HandoffEvent) -> dict[str, Any]:
    """The ``handoff`` event's JSON object (in a turn and in the conversation feed alike)."""
    return {
        "id": event.id,
        "state": event.state,
        "reason": event.reason,
        "position": event.position,
        "offline": event.offline,
        "agent": {"name": event.agent} if event.agent is not None else None,
    }


def encode(event: TurnEvent) -> tuple[str, str]:
    """``(name, json)`` as stored in the turn log."""
    return event.name, orjson.dumps(payload(event)).decode()


def _decode_done(data: dict[str, Any]) -> DoneEvent:
    flow = data.get("flow")
    handoff = data.get("handoff")
    return DoneEvent(
        turn_id=data["turn_id"],
        finish_reason=data["finish_reason"],
        source=data["source"],
        model=data.get("model"),
        usage=data.get("usage"),
        sources=tuple(SourceRef(s["id"], s["title"]) for s in data.get("sources") or ()),
        suggestions=tuple(data.get("suggestions") or ()),
        cached=bool(data.get("cached")),
        flow=FlowStatus(flow["name"], flow["status"]) if flow else None,
        handoff_id=handoff["id"] if handoff else None,
        handoff_offered=bool(data.get("handoff_offered")),
        handoff_state=handoff.get("state") if handoff else None,
    )


def decode_event(name: str, data: str) -> TurnEvent:
    """The typed event for a stored ``(name, json)`` pair; ``ValueError`` for an unknown name."""
    obj = orjson.loads(data)
    if name == "delta":
        return DeltaEvent(obj["text"])
    if name == "done":
        return _decode_done(obj)
    if name == "error":
        return ErrorEvent(obj["code"], obj["message"], bool(obj["retryable"]))
    if name == "session":
        return SessionEvent(obj["session_id"], obj["turn_id"])
    if name == "handoff":
        agent = obj.get("agent")
        return HandoffEvent(
            obj["id"],
            obj["state"],
            obj["reason"],
            obj.get("position"),
            bool(obj.get("offline")),
            agent["name"] if agent else None,
        )
    raise ValueError(f"unknown turn event {name!r}")


@dataclass(frozen=True, slots=True)
class Logged:
    """A turn event as read back from the log: its sequence number, name and JSON, typed on demand."""

    seq: int
    name: str
    data: str

    @property
    def event(self) -> TurnEvent:
        """The typed event (decoded on each access: most readers only frame ``data``)."""
        return decode_event(self.name, self.data)

    @property
    def final(self) -> bool:
        """Whether this event ends the turn."""
        return self.name in TERMINAL_NAMES

    @classmethod
    def of(cls, entry: LogEntry) -> Logged:
        """Wrap a stored log entry."""
        return cls(entry.seq, entry.type, entry.data)
