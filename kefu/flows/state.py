"""A running flow's position as a plain JSON snapshot (persisted between turns, read by any replica)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, cast

from kefu.flows.texts import Lang

Awaiting: TypeAlias = Literal["slot", "confirm", "retry"]
VERSION = 1


class StateError(ValueError):
    """A snapshot that is not a flow state this interpreter can read."""


@dataclass(slots=True)
class FlowState:
    """Where a flow is: the step it waits at and for what, filled slots, attempts, saved tool results.

    ``results`` maps a call's ``save_as`` to its result (``{ok, data, error, message, status}``) and
    ``saved_at`` to the step that saved it (so a correction drops the results of later steps); ``result`` is
    the latest call's result. ``confirmed`` is set by a "yes" and spent by the next write call.
    """

    flow: str
    fingerprint: str
    step: int = 0
    awaiting: Awaiting | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    saved_at: dict[str, int] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    confirmed: bool = False
    retries: int = 0
    lang: Lang = "zh"

    def to_json(self) -> dict[str, Any]:
        """The snapshot (only JSON types)."""
        return {
            "v": VERSION,
            "flow": self.flow,
            "fingerprint": self.fingerprint,
            "step": self.step,
            "awaiting": self.awaiting,
            "slots": dict(self.slots),
            "attempts": dict(self.attempts),
            "results": dict(self.results),
            "saved_at": dict(self.saved_at),
            "result": self.result,
            "confirmed": self.confirmed,
            "retries": self.retries,
            "lang": self.lang,
        }

    @classmethod
    def from_json(cls, data: Any) -> FlowState:
        """Read a snapshot; raises :class:`StateError` when it is not one."""
        if not isinstance(data, dict) or data.get("v") != VERSION:
            raise StateError("not a flow state snapshot (or from another version)")
        try:
            awaiting = data.get("awaiting")
            lang = data.get("lang", "zh")
            state = cls(
                flow=str(data["flow"]),
                fingerprint=str(data["fingerprint"]),
                step=int(data["step"]),
                awaiting=cast(Awaiting, awaiting) if awaiting in ("slot", "confirm", "retry") else None,
                slots=dict(data.get("slots") or {}),
                attempts={str(k): int(v) for k, v in (data.get("attempts") or {}).items()},
                results=dict(data.get("results") or {}),
                saved_at={str(k): int(v) for k, v in (data.get("saved_at") or {}).items()},
                result=data.get("result"),
                confirmed=bool(data.get("confirmed", False)),
                retries=int(data.get("retries", 0)),
                lang="en" if lang == "en" else "zh",
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"malformed flow state: {exc}") from exc
        return state

    def rewind(self, step: int) -> None:
        """Go back to ``step``: results saved at or after it are dropped, a pending confirmation is spent."""
        self.step = step
        self.awaiting = None
        self.confirmed = False
        self.retries = 0
        for name, at in list(self.saved_at.items()):
            if at >= step:
                del self.saved_at[name]
                self.results.pop(name, None)
        self.result = None
