"""Runs one turn, detached from any HTTP request: model stream → coalesced turn log → stored answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kefu.engine import events as ev
from kefu.engine.answering import Answerer, Outcome
from kefu.engine.history import context_from_records
from kefu.engine.writer import DeltaWriter
from kefu.errors import KefuError, UpstreamError
from kefu.obs.logging import get_logger
from kefu.obs.metrics import Metrics
from kefu.store.base import ContextMessage, HotState, MessageStatus, SessionRecord, TranscriptStore

log = get_logger("kefu.turn")


@dataclass(slots=True)
class TurnConfig:
    """The settings a turn needs (a slice of :class:`kefu.config.Settings`)."""

    max_context_messages: int
    session_ttl: int
    coalesce_seconds: float
    lease_seconds: float


@dataclass(slots=True)
class Turn:
    """One accepted message and what is known about its answer."""

    turn_id: str
    session: SessionRecord
    user_id: str
    text: str
    reset_context: bool
    accepted_at: float = field(default_factory=time.monotonic)
    cancel_requested: bool = False
    running: bool = False  # the turn's task has begun (see TurnRunner.start)
    # A new session's row, still being written when the turn starts: the question is stored once it is done.
    session_ready: Awaitable[object] | None = None


class TurnRunner:
    """Executes turns. One instance per process; ``run`` is the body of each turn's task."""

    def __init__(
        self,
        *,
        store: TranscriptStore,
        hot: HotState,
        answerer: Answerer,
        metrics: Metrics,
        config: TurnConfig,
        owner: str,
        provider_name: str = "none",
    ) -> None:
        self._store = store
        self._hot = hot
        self._answerer = answerer
        self._provider_name = provider_name
        self._metrics = metrics
        self._config = config
        self._owner = owner
        self._answers: dict[str, asyncio.Task[Outcome]] = {}

    def cancel_local(self, turn_id: str) -> bool:
        """Cancel a turn if it runs in this process; False if it does not (ask its owner via HotState)."""
        task = self._answers.get(turn_id)
        if task is None:
            return False
        task.cancel()
        return True

    @property
    def answers_write_session_rows(self) -> bool:
        """Whether answering may write rows that reference the session (flow state, handoffs): then a new
        session's row has to exist before the answer starts."""
        return self._answerer.tasks is not None

    def start(self, turn: Turn) -> asyncio.Task[None]:
        """Start answering ``turn``: its answer task is created before anything else, so the upstream request
        goes out one task hop after the caller yields; returns the task that runs the rest of the turn (it
        always ends the log with ``done`` or ``error`` and stores the answer once). Storing the question
        overlaps with the wait for the first token; the writer holds answer text back until it is durable."""
        self._metrics.active_turns.inc()
        writer = self._writer(turn)
        answer = asyncio.create_task(self._answer(turn, writer))
        self._answers[turn.turn_id] = answer
        task = asyncio.create_task(self._run(turn, writer, answer), name=f"turn-{turn.turn_id}")
        task.add_done_callback(lambda _: None if turn.running else self._never_ran(turn, answer))
        return task

    def _never_ran(self, turn: Turn, answer: asyncio.Task[Outcome]) -> None:
        # Cancelled before its first step (shutdown without grace): stop the answer it would have awaited. The
        # session lock and the turn lease then expire, and readers learn the turn was lost.
        answer.cancel()
        self._answers.pop(turn.turn_id, None)
        self._metrics.active_turns.dec()

    def _writer(self, turn: Turn) -> DeltaWriter:
        return DeltaWriter(
            lambda events: self._hot.append(turn.turn_id, events),
            interval=self._config.coalesce_seconds,
            on_first=lambda: self._metrics.ttft.observe(time.monotonic() - turn.accepted_at),
        )

    async def _run(self, turn: Turn, writer: DeltaWriter, answer: asyncio.Task[Outcome]) -> None:
        turn.running = True
        user_write = asyncio.create_task(self._store_question(turn))
        writer.start(before_first=user_write)
        lease = asyncio.create_task(self._keep_lease(turn))
        outcome: Outcome
        try:
            await asyncio.wait([answer])
            outcome = self._outcome(turn, answer)
        except asyncio.CancelledError:
            # Server shutdown: keep what was said, marked as interrupted.
            answer.cancel()
            outcome = Outcome("interrupted", ev.error_event("shutdown", "the server is shutting down", retryable=True))
        try:
            await writer.close()
            await user_write
            await self._finish(turn, writer, outcome)
        except Exception as exc:  # a store failure must still end the log, or readers would wait for ever
            log.error("turn_finish_failed", turn_id=turn.turn_id, error=repr(exc))
            await self._hot.append(
                turn.turn_id, [ev.error_event("internal_error", "could not save the answer", retryable=True)]
            )
        finally:
            self._answers.pop(turn.turn_id, None)
            lease.cancel()
            await self._hot.release_session(turn.session.id, turn.turn_id)
            self._metrics.active_turns.dec()

    async def _store_question(self, turn: Turn) -> None:
        if turn.session_ready is not None:
            await turn.session_ready
        await self._store.add_user_message(
            turn.session.id, turn.turn_id, turn.text, _utcnow(), reset_context=turn.reset_context
        )

    async def _answer(self, turn: Turn, writer: DeltaWriter) -> Outcome:
        if turn.session_ready is not None and self.answers_write_session_rows:
            # Flows store their state (and handoffs) in rows that reference the session: the row must exist
            # first (the service creates it up front for such bots; this covers a bot reloaded meanwhile).
            await turn.session_ready
        history = await self._history(turn)
        return await self._answerer.answer(
            turn.turn_id, turn.user_id, turn.text, history, writer, session_id=turn.session.id
        )

    def _outcome(self, turn: Turn, answer: asyncio.Task[Outcome]) -> Outcome:
        if answer.cancelled():
            return Outcome("interrupted", ev.error_event("cancelled", "the turn was cancelled", retryable=False))
        exc = answer.exception()
        if exc is None:
            return answer.result()
        if isinstance(exc, UpstreamError):
            self._metrics.upstream_errors.labels(provider=self._provider_name, code=exc.code).inc()
            log.warning("turn_upstream_error", turn_id=turn.turn_id, code=exc.code, error=exc.message)
            return Outcome("failed", ev.error_event(exc.code, exc.message, retryable=exc.retryable))
        if isinstance(exc, KefuError):
            return Outcome("failed", ev.error_event(exc.code, exc.message, retryable=False))
        log.error("turn_crashed", turn_id=turn.turn_id, error=repr(exc))
        return Outcome("failed", ev.error_event("internal_error", "something went wrong", retryable=True))

    async def _finish(self, turn: Turn, writer: DeltaWriter, outcome: Outcome) -> None:
        text = writer.text
        status: MessageStatus = outcome.status
        if outcome.terminal[0] == ev.ERROR:
            # Whatever the cause, an answer cut short keeps its text as `interrupted`; with no text there is
            # no assistant row at all (never a blank row), and the turn counts as failed.
            status = "interrupted" if text else "failed"
        if text:
            # Stored before the terminal event, so a client that saw `done` finds the answer in the history.
            await self._store.add_assistant_message(
                turn.session.id,
                turn.turn_id,
                text,
                status,
                _utcnow(),
                source=outcome.source,
                model=outcome.model,
                prompt_tokens=outcome.usage.prompt_tokens if outcome.usage else None,
                completion_tokens=outcome.usage.completion_tokens if outcome.usage else None,
            )
        if not writer.refused:
            await self._hot.append(turn.turn_id, [outcome.terminal])
        remember = [ContextMessage("user", turn.text)]
        if text:
            remember.append(ContextMessage("assistant", text))
        if turn.reset_context:
            await self._hot.set_context(
                turn.session.id, remember, max_messages=self._config.max_context_messages, ttl=self._config.session_ttl
            )
        else:
            await self._hot.push_context(
                turn.session.id, remember, max_messages=self._config.max_context_messages, ttl=self._config.session_ttl
            )
        result = status
        self._metrics.turns.labels(outcome=result, source=outcome.source).inc()
        self._metrics.turn_duration.labels(outcome=result).observe(time.monotonic() - turn.accepted_at)
        log.info(
            "turn_finished",
            turn_id=turn.turn_id,
            session_id=turn.session.id,
            outcome=result,
            chars=len(text),
            seconds=round(time.monotonic() - turn.accepted_at, 3),
        )

    async def _history(self, turn: Turn) -> list[ContextMessage]:
        if turn.reset_context:
            return []
        if turn.session.last_active_at == turn.session.created_at:
            # Every stored message touches last_active_at, so this session has none yet: nothing to load, and
            # an empty cached window lets the end of the turn extend it instead of a reload from SQL next time.
            await self._hot.set_context(
                turn.session.id, [], max_messages=self._config.max_context_messages, ttl=self._config.session_ttl
            )
            return []
        cached = await self._hot.get_context(turn.session.id)
        if cached is not None:
            return cached
        records = await self._store.list_messages(
            turn.session.id, since=turn.session.context_started_at, last=self._config.max_context_messages
        )
        # The current question may already be stored (the write overlaps); it is added separately.
        history = context_from_records([r for r in records if r.turn_id != turn.turn_id])
        await self._hot.set_context(
            turn.session.id, history, max_messages=self._config.max_context_messages, ttl=self._config.session_ttl
        )
        return history

    async def _keep_lease(self, turn: Turn) -> None:
        interval = self._config.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                cancel = await self._hot.renew_lease(
                    turn.turn_id, turn.session.id, owner=self._owner, lease_seconds=self._config.lease_seconds
                )
            except Exception as exc:  # a blip in Redis must not kill the turn; the next renewal may work
                log.warning("lease_renew_failed", turn_id=turn.turn_id, error=repr(exc))
                continue
            if cancel and not turn.cancel_requested:
                turn.cancel_requested = True
                self.cancel_local(turn.turn_id)


def _utcnow() -> datetime:
    return datetime.now(UTC)
