"""Runs one turn, detached from any HTTP request: answer → coalesced turn log → stored answer, with its lease."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from kefu.engine.answering import Answerer
from kefu.engine.ending import STORE_DOWN, Ending, store_answer
from kefu.engine.events import ErrorEvent, encode
from kefu.engine.flow_step import TurnRef
from kefu.engine.history import assistant_context, context_from_records
from kefu.engine.output import starred
from kefu.engine.people import OPEN_STATES
from kefu.engine.writer import DeltaWriter
from kefu.errors import KefuError, UpstreamError
from kefu.moderation import Verdict
from kefu.obs import tracing
from kefu.obs.logging import get_logger
from kefu.obs.metrics import Metrics
from kefu.store.base import (
    ContextCache,
    ContextMessage,
    MessageRecord,
    TranscriptStore,
    TurnLeases,
    TurnLog,
)
from kefu.store.outage import is_outage

log = get_logger("kefu.turn")


@dataclass(slots=True)
class TurnConfig:
    """The settings a turn needs (a slice of :class:`kefu.config.Settings`)."""

    max_context_messages: int
    session_ttl: int
    coalesce_seconds: float
    lease_seconds: float


@dataclass(slots=True)
class AcceptedTurn:
    """One accepted message, with everything decided about it before its answer starts."""

    turn_id: str
    session_id: str
    user_id: str
    text: str
    reset_context: bool  # the session was idle past its TTL: the model gets no earlier messages
    new_session: bool = False  # the session row is not written yet: the runner writes it while answering
    created_at: datetime | None = None  # a new session's creation time
    context_since: datetime | None = None  # where the history starts when it has to be loaded from SQL
    # The cached context window the service read while accepting the turn; None: nothing was cached, load from SQL.
    history: list[ContextMessage] | None = None
    handoff_state: str = "bot"  # who owns the conversation as the session row said (a cached window: the bot)
    screened: Verdict | None = None  # the lexicon's verdict on the message (None: nothing hit)
    accepted_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class StartedTurn:
    """A turn the runner has started: the task that runs it to the end, and the write of a new session's row
    (with the question)."""

    task: asyncio.Task[None]
    session_row: asyncio.Task[MessageRecord] | None


class TurnRunner:
    """Runs turns, detached from any request: the one owner of a turn from its start to its stored answer."""

    def __init__(
        self,
        *,
        store: TranscriptStore,
        turns: TurnLog,
        leases: TurnLeases,
        context: ContextCache,
        answerer: Answerer,
        metrics: Metrics,
        config: TurnConfig,
        owner: str,
        provider_name: str = "none",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._turns = turns
        self._leases = leases
        self._context = context
        self._answerer = answerer
        self._provider_name = provider_name
        self._metrics = metrics
        self._config = config
        self._owner = owner
        self._clock = clock
        self._answers: dict[str, asyncio.Task[Ending]] = {}
        self._renewed: dict[str, float] = {}  # when each running turn's lease was last known to be ours
        # How the cached context window is kept (every set and push).
        self._window = {"max_messages": config.max_context_messages, "ttl": config.session_ttl}

    def cancel_local(self, turn_id: str) -> bool:
        """Cancel a turn if it runs in this process; False if it does not (ask its owner via its lease)."""
        task = self._answers.get(turn_id)
        if task is None:
            return False
        task.cancel()
        return True

    def start(self, turn: AcceptedTurn) -> StartedTurn:
        """Start answering ``turn``. Its answer task is created first, so the upstream request goes out one task
        hop after the caller yields; then the new session's row write (if any), then the task that runs the rest
        of the turn (it always ends the log with ``done`` or ``error`` and stores the answer once). Storing the
        question overlaps with the wait for the first token; the writer holds answer text back until it is
        durable, and flows store their state only once the session row exists."""
        self._metrics.active_turns.inc()
        self._renewed[turn.turn_id] = self._clock()  # begin_turn took the lease just now
        turn.screened = self._answerer.screen(turn.text)
        if turn.screened is not None and turn.screened.action in ("block", "mask"):
            # Flagged words are starred in what is stored and remembered, so they never reach the model later.
            turn.text = starred(turn.text, turn.screened)
        loop = asyncio.get_running_loop()
        writer = self._writer(turn)
        row_ready: asyncio.Future[None] | None = loop.create_future() if turn.new_session else None
        ref = TurnRef(turn.turn_id, turn.session_id, turn.user_id, session_row=row_ready)
        turn_span = tracing.start_span("kefu.turn", turn_id=turn.turn_id, session_id=turn.session_id)
        with turn_span:  # the turn's tasks are created inside: their spans are the turn's children
            answer = loop.create_task(self._answer(turn, ref, writer))
            self._answers[turn.turn_id] = answer
            row: asyncio.Task[MessageRecord] | None = None
            if row_ready is not None:
                created = turn.created_at or _utcnow()
                row = loop.create_task(
                    self._store.start_session(turn.session_id, turn.user_id, turn.turn_id, turn.text, created)
                )
                row.add_done_callback(lambda done: _relay(done, row_ready))
            began: list[bool] = []  # set by the task's first step
            task = loop.create_task(self._run(turn, writer, answer, row, began), name=f"turn-{turn.turn_id}")
        task.add_done_callback(lambda _: None if began else self._never_ran(turn, answer))
        task.add_done_callback(lambda _: turn_span.end())
        return StartedTurn(task, row)

    def _never_ran(self, turn: AcceptedTurn, answer: asyncio.Task[Ending]) -> None:
        # Cancelled before its first step (shutdown without grace): stop the answer it would have awaited. The
        # session lock and the turn lease then expire, and readers learn the turn was lost.
        answer.cancel()
        self._answers.pop(turn.turn_id, None)
        self._renewed.pop(turn.turn_id, None)
        self._metrics.active_turns.dec()

    def _writer(self, turn: AcceptedTurn) -> DeltaWriter:
        return DeltaWriter(
            lambda events: self._turns.append(turn.turn_id, events),
            interval=self._config.coalesce_seconds,
            on_first=lambda: self._metrics.ttft.observe(time.monotonic() - turn.accepted_at),
            # Nobody can be shown the rest of the answer: stop asking the model for it.
            on_failure=lambda: self.cancel_local(turn.turn_id),
        )

    async def _run(
        self,
        turn: AcceptedTurn,
        writer: DeltaWriter,
        answer: asyncio.Task[Ending],
        row: asyncio.Task[MessageRecord] | None,
        began: list[bool],
    ) -> None:
        began.append(True)
        user_write = asyncio.create_task(self._store_question(turn, row))
        user_write.add_done_callback(lambda done: self._stop_if_failed(turn, done))
        writer.start(before_first=user_write)
        lease = asyncio.create_task(self._keep_lease(turn))
        ending: Ending
        try:
            await asyncio.wait([answer])
            ending = self._ending(turn, answer)
        except asyncio.CancelledError:
            # Server shutdown: keep what was said, marked as interrupted.
            answer.cancel()
            ending = Ending("interrupted", ErrorEvent("shutdown", "the server is shutting down", retryable=True))
        try:
            await writer.close()
            broken = writer.failed or _failure(user_write)
            if broken is not None:
                # The question could not be stored or the turn log went away mid-answer: the shopper did not get
                # the rest, so the answer is stored as interrupted (with all its text) and readers that can still
                # reach the log learn it failed.
                log.error("turn_store_failed", turn_id=turn.turn_id, error=repr(broken))
                ending = replace(ending, terminal=STORE_DOWN if is_outage(broken) else _CRASHED, before=())
            await user_write
            await self._finish(turn, writer, ending)
        except Exception as exc:  # a store failure must still end the log, or readers would wait for ever
            log.error("turn_finish_failed", turn_id=turn.turn_id, error=repr(exc))
            # An answer is only kept beside its question (it was never shown without it).
            await self._end_anyway(turn, "" if _failure(user_write) else writer.text, ending, exc)
        finally:
            self._answers.pop(turn.turn_id, None)
            self._renewed.pop(turn.turn_id, None)
            lease.cancel()
            self._metrics.active_turns.dec()

    def _stop_if_failed(self, turn: AcceptedTurn, user_write: asyncio.Task[None]) -> None:
        if _failure(user_write) is not None:
            self.cancel_local(turn.turn_id)  # no answer may be shown for a question that is not stored

    async def _end_anyway(self, turn: AcceptedTurn, text: str, ending: Ending, exc: Exception) -> None:
        """Finishing failed part-way (the database or Redis is down): each remaining step is tried on its own, so
        what can still be saved is. Storing the answer again is harmless: it is stored once per turn."""
        failed = STORE_DOWN if is_outage(exc) else ErrorEvent("internal_error", "could not save the answer", True)
        steps: list[Callable[[], Awaitable[object]]] = [
            lambda: store_answer(self._store, turn.session_id, turn.turn_id, text, replace(ending, terminal=failed)),
            lambda: self._release(turn),
            lambda: self._turns.append(turn.turn_id, [encode(failed)], final=True),
        ]
        for step in steps:
            try:
                await step()
            except Exception as exc:
                log.error("turn_end_step_failed", turn_id=turn.turn_id, error=repr(exc))

    async def _release(self, turn: AcceptedTurn) -> None:
        await self._leases.release_session(turn.session_id, turn.turn_id)

    async def _store_question(self, turn: AcceptedTurn, row: asyncio.Task[MessageRecord] | None) -> None:
        with tracing.span("kefu.store.question", new_session=row is not None):
            if row is not None:
                await row  # a new session's row, written with the question
                return
            await self._store.add_user_message(
                turn.session_id, turn.turn_id, turn.text, _utcnow(), reset_context=turn.reset_context
            )

    async def _answer(self, turn: AcceptedTurn, ref: TurnRef, writer: DeltaWriter) -> Ending:
        screened = turn.screened
        if screened is not None and screened.action == "block":
            return self._answerer.blocked(turn.turn_id, screened, writer)
        external = await self._answerer.screen_external(turn.text)
        if external is not None and external.action == "block":
            ending = self._answerer.blocked(turn.turn_id, external, writer)
            ending.question_mark = external.mark
            return ending
        ending = await self._respond(turn, ref, writer)
        if external is not None:  # flag / mask from the endpoint: the question is marked for review
            ending.question_mark = ending.question_mark or external.mark
        return ending

    async def _respond(self, turn: AcceptedTurn, ref: TurnRef, writer: DeltaWriter) -> Ending:
        people = self._answerer.people
        if people is not None and turn.handoff_state in OPEN_STATES:
            # A person owns the conversation: the message goes to them; the bot does not answer.
            relayed = await people.relay(turn.session_id, turn.turn_id, turn.text, writer)
            if relayed is not None:
                self._metrics.relayed.labels(state=turn.handoff_state).inc()
                return relayed
        history = await self._history(turn)
        return await self._answerer.answer(ref, turn.text, history, writer)

    def _ending(self, turn: AcceptedTurn, answer: asyncio.Task[Ending]) -> Ending:
        if answer.cancelled():
            return Ending("interrupted", ErrorEvent("cancelled", "the turn was cancelled", retryable=False))
        exc = answer.exception()
        if exc is None:
            return answer.result()
        if isinstance(exc, UpstreamError):
            self._metrics.upstream_errors.labels(provider=self._provider_name, code=exc.code).inc()
            log.warning("turn_upstream_error", turn_id=turn.turn_id, code=exc.code, error=exc.message)
            return Ending("failed", ErrorEvent(exc.code, exc.message, retryable=exc.retryable))
        if isinstance(exc, KefuError):
            return Ending("failed", ErrorEvent(exc.code, exc.message, retryable=False))
        if is_outage(exc):  # e.g. the history could not be loaded
            log.warning("turn_store_unavailable", turn_id=turn.turn_id, error=repr(exc))
            return Ending("failed", STORE_DOWN)
        log.error("turn_crashed", turn_id=turn.turn_id, error=repr(exc))
        return Ending("failed", _CRASHED)

    async def _closed_elsewhere(self, turn: AcceptedTurn, writer: DeltaWriter) -> bool:
        """Whether a reader closed this turn as lost (this process stalled past its lease): then that reader
        stores what the shopper saw, and this process must not store its own, longer, answer as well."""
        if writer.refused:
            return True
        renewed = self._renewed.get(turn.turn_id)
        if renewed is not None and self._clock() - renewed < self._config.lease_seconds / 2:
            return False  # the lease is certainly still ours: no round trip on the normal path
        meta = await self._turns.get_turn(turn.turn_id)
        return meta is None or meta.finished

    async def _finish(self, turn: AcceptedTurn, writer: DeltaWriter, ending: Ending) -> None:
        if await self._closed_elsewhere(turn, writer):
            log.warning("turn_closed_elsewhere", turn_id=turn.turn_id, session_id=turn.session_id)
            self._metrics.turns.labels(outcome="lost", source=ending.source).inc()
            await self._release(turn)
            return
        text = writer.text
        # The answer is stored, the context window extended and the session released before the terminal event:
        # a shopper who saw `done` may send the next message at once, to any replica, and that turn must find
        # the session free and this exchange in its history.
        with tracing.span("kefu.store.answer", chars=len(text)):
            status = await store_answer(self._store, turn.session_id, turn.turn_id, text, ending)
        tracing.annotate(outcome=status, source=ending.source)
        question_mark = ending.question_mark or (turn.screened.mark if turn.screened is not None else None)
        if question_mark is not None:
            await self._store.mark_message(turn.turn_id, "user", question_mark)
        remember = [ContextMessage("user", turn.text)]
        if text:
            remember.append(assistant_context(text, status))
        if ending.hands_over:
            # While a person owns the conversation no window is cached, so every replica reads who owns it from
            # SQL; the next bot turn rebuilds it from the transcript (with the person's replies).
            await self._context.set_context(turn.session_id, [], max_messages=0, ttl=0)
        elif turn.reset_context:
            await self._context.set_context(turn.session_id, remember, owner=turn.user_id, **self._window)
        else:
            await self._context.push_context(turn.session_id, remember, **self._window)
        await self._release(turn)
        await self._turns.append(turn.turn_id, [*map(encode, ending.before), encode(ending.terminal)], final=True)
        self._metrics.turns.labels(outcome=status, source=ending.source).inc()
        self._metrics.turn_duration.labels(outcome=status).observe(time.monotonic() - turn.accepted_at)
        log.info(
            "turn_finished",  # one info line per turn (turn_started is debug): logging is per-turn CPU too
            turn_id=turn.turn_id,
            session_id=turn.session_id,
            user_id=turn.user_id,
            outcome=status,
            source=ending.source,
            question_chars=len(turn.text),
            chars=len(text),
            seconds=round(time.monotonic() - turn.accepted_at, 3),
        )

    async def _history(self, turn: AcceptedTurn) -> list[ContextMessage]:
        if turn.reset_context:
            return []
        if turn.history is not None:
            return turn.history
        if turn.new_session:
            # Nothing to load, and an empty cached window lets the end of the turn extend it instead of a reload
            # from SQL next time.
            await self._context.set_context(turn.session_id, [], owner=turn.user_id, **self._window)
            return []
        records = await self._store.list_messages(
            turn.session_id, since=turn.context_since, last=self._config.max_context_messages
        )
        # The current question may already be stored (the write overlaps); it is added separately.
        history = context_from_records([r for r in records if r.turn_id != turn.turn_id])
        await self._context.set_context(turn.session_id, history, owner=turn.user_id, **self._window)
        return history

    async def _keep_lease(self, turn: AcceptedTurn) -> None:
        interval = self._config.lease_seconds / 3
        cancelled = False
        while True:
            await asyncio.sleep(interval)
            asked = self._clock()
            try:
                cancel = await self._leases.renew_lease(
                    turn.turn_id, turn.session_id, owner=self._owner, lease_seconds=self._config.lease_seconds
                )
            except Exception as exc:  # a blip in Redis must not kill the turn; the next renewal may work
                log.warning("lease_renew_failed", turn_id=turn.turn_id, error=repr(exc))
                continue
            last = self._renewed.get(turn.turn_id)
            if last is not None and asked - last < self._config.lease_seconds:
                self._renewed[turn.turn_id] = asked  # renewed before it lapsed: still ours
            if cancel and not cancelled:
                cancelled = True  # the lease is still renewed while the turn stores what was said
                self.cancel_local(turn.turn_id)


_CRASHED = ErrorEvent("internal_error", "something went wrong", retryable=True)


def _failure(task: asyncio.Task[None]) -> BaseException | None:
    return task.exception() if task.done() and not task.cancelled() else None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _relay(row: asyncio.Task[MessageRecord], ready: asyncio.Future[None]) -> None:
    # Only success is relayed: a failed row write ends the turn through the service, and an exception set on a
    # future nobody awaits would be reported as never retrieved.
    if ready.done():
        return
    if row.cancelled() or row.exception() is not None:
        ready.cancel()
    else:
        ready.set_result(None)
