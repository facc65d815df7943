"""How a turn ends, and the one place its answer is stored with an honest status.

A turn ends in the process that ran it (:class:`~kefu.engine.runner.TurnRunner`) or, when that process died,
in whichever reader learns its lease expired (:meth:`LostTurns.close`). Both store the answer through
:func:`store_answer`, so the rules hold for both: an answer cut short keeps its text as ``interrupted``, an answer
with no text has no row at all (never a blank row), and each turn's answer is stored at most once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from kefu.engine.events import DeltaEvent, ErrorEvent, HandoffEvent, TerminalEvent, decode_event, encode
from kefu.llm.base import Usage
from kefu.obs.logging import get_logger
from kefu.store.base import ContextCache, MessageStatus, TranscriptStore, TurnLeases, TurnLog, TurnMeta

log = get_logger("kefu.turn")

# How a turn ends when the database or Redis went away under it (what was said is kept, as interrupted).
STORE_DOWN = ErrorEvent("store_unavailable", "the answer was interrupted (a server outage); please try again", True)


@dataclass(slots=True)
class Ending:
    """How an answer ended: its stored status, the turn's terminal event, and what to record about it."""

    status: MessageStatus
    terminal: TerminalEvent
    source: str = "llm"
    model: str | None = None
    usage: Usage | None = None
    before: tuple[HandoffEvent, ...] = ()  # events logged just before the terminal one
    moderation: str | None = None  # what content moderation did to the answer (``<action>:<category>``)
    question_mark: str | None = None  # ... and to the question, when only known while answering (external check)

    @property
    def hands_over(self) -> bool:
        """Whether a person owns the conversation after this turn (the bot's context window is then dropped)."""
        return any(e.state in ("queued", "agent") for e in self.before)


def honest_status(text: str, ending: Ending) -> MessageStatus:
    """The status the answer is stored with: an error ending is never ``complete``."""
    if isinstance(ending.terminal, ErrorEvent):
        return "interrupted" if text else "failed"
    return ending.status


async def store_answer(
    store: TranscriptStore, session_id: str, turn_id: str, text: str, ending: Ending
) -> MessageStatus:
    """Store the turn's answer (if it has any text) with its honest status; returns that status."""
    status = honest_status(text, ending)
    if text:
        usage = ending.usage
        await store.add_assistant_message(
            session_id,
            turn_id,
            text,
            status,
            datetime.now(UTC),
            source=ending.source,
            model=ending.model,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            moderation=ending.moderation,
        )
    return status


class LostTurns:
    """Closes turns whose process died: ends the log with ``turn_lost`` and keeps what was said, once."""

    def __init__(self, *, store: TranscriptStore, turns: TurnLog, locks: TurnLeases, context: ContextCache) -> None:
        self._store = store
        self._turns = turns
        self._locks = locks
        self._context = context

    async def close(self, meta: TurnMeta) -> bool:
        """Close ``meta``'s turn; False if it had finished meanwhile or another reader closed it first."""
        lost = ErrorEvent("turn_lost", "the server answering this turn stopped; please ask again", retryable=True)
        # The append is the claim: only one reader gets a seq back, and only it stores the answer.
        if await self._turns.append(meta.turn_id, [encode(lost)], final=True) is None:
            return False
        log.warning("turn_lost", turn_id=meta.turn_id, session_id=meta.session_id)
        entries = await self._turns.read(meta.turn_id, 0, 0)
        deltas = (decode_event(e.type, e.data) for e in entries if e.type == DeltaEvent.name)
        text = "".join(d.text for d in deltas if isinstance(d, DeltaEvent))
        try:
            await store_answer(self._store, meta.session_id, meta.turn_id, text, Ending("interrupted", lost))
        finally:
            # The dead process never added this turn to the cached context window: drop the window (a TTL of 0
            # expires it) so the next turn reloads the history, with this question and partial answer, from SQL.
            await self._context.set_context(meta.session_id, [], max_messages=0, ttl=0)
            await self._locks.release_session(meta.session_id, meta.turn_id)
        return True
