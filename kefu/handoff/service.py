"""The people side of a conversation: request a person, queue, claim, transfer, reply, hand back, close, rate.

Every change is one SQL transaction on the session (:class:`~kefu.store.desk.DeskStore`) that also appends the
conversation-feed events saying what happened; then readers on every replica are woken (:mod:`kefu.handoff.feed`)
and webhooks are queued. Nothing here sends anything to a receiver inline, and nothing here answers as the bot.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from kefu.errors import Conflict, Forbidden, InvalidInput, NotFound
from kefu.handoff.config import HandoffConfig
from kefu.handoff.feed import FeedHub, Subscription
from kefu.obs.logging import get_logger
from kefu.obs.metrics import Metrics
from kefu.store.desk import OPEN_STATES, DeskStore, FeedEvent, HandoffRecord, NoteRecord, SessionTxn

log = get_logger("kefu.handoff")

DESK_TOPIC = "desk"
OUTCOMES = ("resolved", "unresolved", "spam")
MAX_AGENT_MESSAGE = 4000


def session_topic(session_id: str) -> str:
    """The feed topic of one conversation."""
    return f"session:{session_id}"


class AgentLike(Protocol):
    """What the desk needs to know about the agent acting."""

    @property
    def id(self) -> str: ...

    @property
    def display_name(self) -> str: ...

    @property
    def is_admin(self) -> bool: ...


class Notifier(Protocol):
    """Where outgoing notifications go (:class:`kefu.handoff.webhooks.Webhooks`)."""

    async def emit(self, event: str, data: Mapping[str, Any], *, session_id: str | None = None) -> int: ...


class Presence(Protocol):
    """Which agents have the desk open."""

    async def touch(self, agent_id: str, ttl: float) -> None: ...

    async def online(self) -> set[str]: ...


@dataclass(frozen=True, slots=True)
class Ticket:
    """The result of asking for a person: the handoff, where it stands, and what the shopper is told."""

    handoff: HandoffRecord
    position: int | None
    offline: bool
    notice: str
    created: bool


@dataclass(frozen=True, slots=True)
class Relayed:
    """A shopper message while a person owns the conversation (or the shopper's way back to the bot)."""

    handoff: HandoffRecord
    state: str
    notice: str | None
    position: int | None = None
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class Typing:
    """Live only: the agent is typing."""

    agent: str


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A conversation as the desk's queue lists it."""

    handoff: HandoffRecord
    waiting_seconds: float
    unread: int
    preview: str | None
    agent_name: str | None


class Desk:
    """Handoffs and the conversations people own."""

    def __init__(
        self,
        store: DeskStore,
        hub: FeedHub,
        *,
        config: HandoffConfig,
        metrics: Metrics,
        presence: Presence,
        notifier: Notifier | None = None,
        agent_name: Callable[[str], Awaitable[str | None]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        presence_ttl: float = 60.0,
    ) -> None:
        self._agent_name = agent_name
        self._names: dict[str, str] = {}
        self._store = store
        self._hub = hub
        self._config = config
        self._metrics = metrics
        self._presence = presence
        self._notifier = notifier
        self._clock = clock
        self._presence_ttl = presence_ttl

    @property
    def config(self) -> HandoffConfig:
        """The bot's handoff settings in use."""
        return self._config

    def use_config(self, config: HandoffConfig) -> None:
        """Switch to a reloaded bot's settings."""
        self._config = config

    # --- the shopper's side ---------------------------------------------------------------------------------

    async def request(
        self,
        session_id: str,
        *,
        turn_id: str,
        reason_code: str,
        reason: str,
        flow: str | None = None,
        slots: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Ticket:
        """Queue the conversation for a person (or return the request already open)."""
        now = self._clock()
        offline = not self._config.open_at(now)
        online = await self._presence.online()
        texts = self._config.texts

        async def work(txn: SessionTxn) -> tuple[HandoffRecord, bool, int]:
            current = await txn.handoff()
            if txn.state in OPEN_STATES and current is not None:
                return current, False, await self._store.position(current, txn.conn)
            handoff = await self._store.new_handoff(
                txn,
                turn_id=turn_id,
                flow=flow,
                reason=reason,
                reason_code=reason_code,
                summary=slots or {},
                context=context or {},
            )
            position = await self._store.position(handoff, txn.conn)
            await txn.append("handoff", state_data(handoff, position=position, offline=offline or not online))
            return handoff, True, position

        (handoff, created, position), events = await self._store.in_session(session_id, work)
        unattended = offline or not online
        if offline:
            notice = texts.offline.format(hours=self._config.hours_text())
        elif not online:
            notice = texts.no_agent
        else:
            notice = texts.queued.format(position=position)
        if created:
            self._metrics.handoffs.labels(reason=reason_code).inc()
            log.info("handoff_requested", handoff_id=handoff.id, session_id=session_id, reason=reason_code)
            await self._announce(session_id, events, desk=True)
            await self._emit(
                "handoff.requested",
                session_id,
                {
                    **_summary(handoff),
                    "position": position,
                    "offline": unattended,
                    "context": handoff.context,
                },
            )
        return Ticket(handoff, position, unattended, notice, created)

    async def relay(self, session_id: str, turn_id: str, text: str) -> Relayed | None:
        """A shopper message while the conversation is queued or with an agent: recorded in the feed for the desk,
        or, for a "back to the bot" phrase, the conversation returns to the bot. None if the bot owns it (again)."""
        back = _matches(text, self._config.back_to_bot)

        async def work(txn: SessionTxn) -> Relayed | None:
            handoff = await txn.handoff()
            if txn.state not in OPEN_STATES or handoff is None:
                return None
            if back:
                ended = await txn.update_handoff(handoff.id, status="bot", ended_at=txn.now, outcome="shopper_left")
                await txn.set_state("bot", handoff.id)
                await txn.append("handoff", state_data(ended))
                return Relayed(ended, "bot", self._config.texts.back_to_bot)
            await txn.append("user", {"id": turn_id, "text": text, "created_at": txn.now.isoformat()})
            updated = await txn.update_handoff(handoff.id, last_activity_at=txn.now)
            if txn.state == "queued":
                position = await self._store.position(updated, txn.conn)
                return Relayed(updated, "queued", None, position=position)
            return Relayed(updated, "agent", None, agent=await self._name(updated.agent_id))

        relayed, events = await self._store.in_session(session_id, work)
        if relayed is not None:
            await self._announce(session_id, events, desk=True)
            if relayed.state == "agent":
                await self._emit(
                    "message.created",
                    session_id,
                    {**_summary(relayed.handoff), "from": "shopper", "text": text},
                )
        return relayed

    async def state(self, session_id: str) -> tuple[str, HandoffRecord | None, int]:
        """``(state, current or last handoff, last feed seq)``; :class:`NotFound` if there is no such session."""
        found = await self._store.session_state(session_id)
        if found is None:
            raise NotFound("session not found")
        state, handoff_id, _ = found
        handoff = await self._store.get_handoff(handoff_id) if handoff_id else None
        return state, handoff, await self._store.last_seq(session_id)

    async def handoffs(self, *, status: str | None = None) -> list[HandoffRecord]:
        """Handoffs for the admin API: ``open`` (queued or with an agent), one state, or all (None)."""
        statuses = OPEN_STATES if status == "open" else ((status,) if status else None)
        return await self._store.handoffs(statuses=statuses)

    async def position(self, handoff: HandoffRecord) -> int | None:
        """Where a queued handoff stands (None once it is no longer queued)."""
        return await self._store.position(handoff) if handoff.status == "queued" else None

    async def rate(self, session_id: str, score: int, comment: str | None) -> HandoffRecord:
        """The shopper's rating of the last closed handoff; :class:`Conflict` if there is nothing to rate."""
        if not 1 <= score <= 5:
            raise InvalidInput("score must be an integer from 1 to 5", code="invalid_score")
        comment = (comment or "").strip()[:1000] or None

        async def work(txn: SessionTxn) -> HandoffRecord:
            handoff = await txn.handoff()
            if handoff is None or handoff.status != "closed" or handoff.rating is not None:
                raise Conflict("there is no closed conversation to rate", code="nothing_to_rate")
            rated = await txn.update_handoff(handoff.id, rating=score, rating_comment=comment)
            await txn.append("rating", {"score": score, "comment": comment})
            return rated

        rated, events = await self._store.in_session(session_id, work)
        self._metrics.csat.observe(score)
        await self._announce(session_id, events, desk=True)
        await self._emit("csat.received", session_id, {**_summary(rated), "score": score, "comment": comment})
        return rated

    async def follow(
        self, session_id: str, after: int, *, heartbeat: float, kinds: frozenset[str] | None = None
    ) -> AsyncIterator[FeedEvent | Typing | None]:
        """Feed events after ``after``, then live ones, for ever (the caller stops reading). Yields None after
        ``heartbeat`` quiet seconds and :class:`Typing` signals as they come."""
        topic = session_topic(session_id)
        async with self._hub.subscribe(topic) as sub:
            while True:
                for event in await self._store.events(session_id, after):
                    after = event.seq
                    if kinds is None or event.kind in kinds:
                        yield event
                payloads = await sub.next(heartbeat)
                if not payloads:
                    yield None
                for payload in payloads:
                    if payload.startswith("{"):
                        signal = json.loads(payload)
                        if "typing" in signal:
                            yield Typing(signal["typing"])

    # --- the desk's side ------------------------------------------------------------------------------------

    async def queue(self, agent: AgentLike) -> list[QueueItem]:
        """Queued conversations and the caller's own (an admin's: every open one), oldest waiting first."""
        handoffs = await self._store.handoffs(statuses=OPEN_STATES)
        if not agent.is_admin:
            handoffs = [h for h in handoffs if h.status == "queued" or h.agent_id == agent.id]
        activity = await self._store.activity([h.session_id for h in handoffs])
        now = self._clock()
        items = []
        for h in handoffs:
            events = activity.get(h.session_id, [])
            unread = sum(1 for e in events if e.kind == "user" and e.seq > h.agent_read_seq)
            preview = json.loads(events[-1].data).get("text") if events else None
            if preview is None:
                preview = h.reason
            items.append(
                QueueItem(
                    h,
                    waiting_seconds=(now - h.created_at).total_seconds(),
                    unread=unread,
                    preview=preview,
                    agent_name=await self._name(h.agent_id),
                )
            )
        return items

    async def claim(self, session_id: str, agent: AgentLike) -> HandoffRecord:
        """Take a queued conversation; :class:`Conflict` (``already_claimed``) when someone else was first."""

        async def work(txn: SessionTxn) -> HandoffRecord:
            handoff = await txn.handoff()
            if txn.state == "agent" and handoff is not None and handoff.agent_id == agent.id:
                return handoff  # claiming twice is harmless
            if txn.state != "queued" or handoff is None:
                raise Conflict("this conversation was already taken or is no longer waiting", code="already_claimed")
            claimed = await txn.update_handoff(
                handoff.id, status="agent", agent_id=agent.id, claimed_at=txn.now, last_activity_at=txn.now
            )
            await txn.set_state("agent", handoff.id)
            await txn.append("handoff", state_data(claimed, agent=agent.display_name))
            await txn.append("notice", {"text": self._config.texts.joined.format(agent=agent.display_name)})
            return claimed

        claimed, events = await self._store.in_session(session_id, work)
        if events:
            self._names[agent.id] = agent.display_name
            log.info("handoff_claimed", handoff_id=claimed.id, session_id=session_id, agent_id=agent.id)
            await self._announce(session_id, events, desk=True)
            await self._emit(
                "conversation.assigned",
                session_id,
                {**_summary(claimed), "agent": {"id": agent.id, "name": agent.display_name}},
            )
        return claimed

    async def transfer(self, session_id: str, agent: AgentLike, target: AgentLike) -> HandoffRecord:
        """Give the conversation to another agent (the agent who has it, or an admin)."""

        async def work(txn: SessionTxn) -> HandoffRecord:
            handoff = self._owned(txn, await txn.handoff(), agent)
            moved = await txn.update_handoff(handoff.id, agent_id=target.id, last_activity_at=txn.now)
            await txn.append("handoff", state_data(moved, agent=target.display_name))
            await txn.append("notice", {"text": self._config.texts.transferred.format(agent=target.display_name)})
            return moved

        moved, events = await self._store.in_session(session_id, work)
        self._names[target.id] = target.display_name
        await self._announce(session_id, events, desk=True)
        await self._emit(
            "conversation.assigned",
            session_id,
            {**_summary(moved), "agent": {"id": target.id, "name": target.display_name}, "transferred": True},
        )
        return moved

    async def release(self, session_id: str, agent: AgentLike) -> HandoffRecord:
        """Hand the conversation back to the bot."""

        async def work(txn: SessionTxn) -> HandoffRecord:
            current = await txn.handoff()
            handoff = current if txn.state == "queued" and current is not None else self._owned(txn, current, agent)
            ended = await txn.update_handoff(handoff.id, status="bot", ended_at=txn.now, outcome="back_to_bot")
            await txn.set_state("bot", handoff.id)
            await txn.append("handoff", state_data(ended))
            await txn.append("notice", {"text": self._config.texts.back_to_bot})
            return ended

        ended, events = await self._store.in_session(session_id, work)
        await self._announce(session_id, events, desk=True)
        await self._emit("conversation.closed", session_id, {**_summary(ended), "outcome": "back_to_bot"})
        return ended

    async def close(self, session_id: str, agent: AgentLike, outcome: str) -> HandoffRecord:
        """End the conversation with an outcome; the shopper is asked for a rating."""
        if outcome not in OUTCOMES:
            raise InvalidInput(f"outcome must be one of {', '.join(OUTCOMES)}", code="invalid_outcome")

        async def work(txn: SessionTxn) -> HandoffRecord:
            current = await txn.handoff()
            handoff = current if txn.state == "queued" and current is not None else self._owned(txn, current, agent)
            closed = await txn.update_handoff(handoff.id, status="closed", ended_at=txn.now, outcome=outcome)
            await txn.set_state("closed", handoff.id)
            await txn.append("handoff", state_data(closed))
            await txn.append("notice", {"text": self._config.texts.closed})
            return closed

        closed, events = await self._store.in_session(session_id, work)
        log.info("handoff_closed", handoff_id=closed.id, session_id=session_id, outcome=outcome)
        await self._announce(session_id, events, desk=True)
        await self._emit("conversation.closed", session_id, {**_summary(closed), "outcome": outcome})
        return closed

    async def send(self, session_id: str, agent: AgentLike, text: str) -> FeedEvent:
        """The agent's message to the shopper: stored in the transcript and the feed, in one transaction."""
        text = text.strip()
        if not text:
            raise InvalidInput("message must not be empty", code="empty_message")
        if len(text) > MAX_AGENT_MESSAGE:
            raise InvalidInput(f"message is longer than {MAX_AGENT_MESSAGE} characters", code="message_too_long")
        message_id = f"m_{uuid.uuid4().hex}"

        async def work(txn: SessionTxn) -> tuple[HandoffRecord, FeedEvent]:
            handoff = self._owned(txn, await txn.handoff(), agent)
            await txn.add_message(message_id, "agent", text, author=agent.display_name, source="human")
            updated = await txn.update_handoff(handoff.id, last_activity_at=txn.now)
            event = await txn.append(
                "agent",
                {
                    "id": message_id,
                    "text": text,
                    "agent": {"name": agent.display_name},
                    "created_at": txn.now.isoformat(),
                },
            )
            return updated, event

        (handoff, event), events = await self._store.in_session(session_id, work)
        await self._announce(session_id, events, desk=False)
        await self._emit(
            "message.created",
            session_id,
            {**_summary(handoff), "from": "agent", "agent": {"id": agent.id, "name": agent.display_name}, "text": text},
        )
        return event

    async def typing(self, session_id: str, agent: AgentLike) -> None:
        """Tell the shopper the agent is typing (live only)."""
        await self._hub.publish(session_topic(session_id), json.dumps({"typing": agent.display_name}))

    async def mark_read(self, session_id: str, seq: int) -> None:
        """The agent has read the conversation up to ``seq``."""
        state, handoff, _ = await self.state(session_id)
        if handoff is not None:
            await self._store.mark_read(handoff.id, seq)
            await self._hub.publish(DESK_TOPIC, session_id)

    async def add_note(self, session_id: str, agent: AgentLike, text: str, *, private: bool) -> NoteRecord:
        """An internal note (never shown to the shopper)."""
        text = text.strip()
        if not text or len(text) > MAX_AGENT_MESSAGE:
            raise InvalidInput(f"a note needs 1 to {MAX_AGENT_MESSAGE} characters", code="invalid_note")
        _, handoff, _ = await self.state(session_id)
        return await self._store.add_note(session_id, handoff.id if handoff else None, agent.id, text, private=private)

    async def notes(self, session_id: str, agent: AgentLike) -> list[NoteRecord]:
        """Notes the agent may read: every team note, and private ones only their own (admins: all)."""
        notes = await self._store.notes(session_id)
        return [n for n in notes if not n.private or n.agent_id == agent.id or agent.is_admin]

    async def can_view(self, session_id: str, agent: AgentLike) -> tuple[str, HandoffRecord | None]:
        """The conversation's state if ``agent`` may open it (queued ones, their own, anything for admins)."""
        state, handoff, _ = await self.state(session_id)
        if agent.is_admin:
            return state, handoff
        if handoff is None:
            raise Forbidden("only admins can open conversations that were never handed to a person")
        if handoff.status == "queued" or handoff.agent_id == agent.id:
            return state, handoff
        raise Forbidden("this conversation belongs to another agent")

    def open_now(self) -> bool:
        """Whether it is within business hours."""
        return self._config.open_at(self._clock())

    def subscribe(self, topic: str) -> contextlib.AbstractAsyncContextManager[Subscription]:
        """Wake-ups published on ``topic`` (``desk``: queue changes, with the session id)."""
        return self._hub.subscribe(topic)

    async def touch_presence(self, agent: AgentLike) -> None:
        """The agent has the desk open."""
        await self._presence.touch(agent.id, self._presence_ttl)

    async def online_agents(self) -> set[str]:
        """Ids of agents with the desk open."""
        return await self._presence.online()

    async def expire_queue(self) -> int:
        """Queued requests older than ``queue_timeout`` go back to the bot (``on_timeout: bot``). Safe on every
        replica at once: each return is a compare-and-set. Returns how many this call returned."""
        config = self._config
        if config.queue_timeout <= 0 or config.on_timeout != "bot":
            return 0
        cutoff = self._clock() - timedelta(seconds=config.queue_timeout)
        stale = [h for h in await self._store.handoffs(statuses=("queued",)) if h.created_at < cutoff]
        returned = 0
        for handoff in stale:

            async def work(txn: SessionTxn, handoff_id: str = handoff.id) -> HandoffRecord | None:
                current = await txn.handoff()
                if txn.state != "queued" or current is None or current.id != handoff_id:
                    return None
                ended = await txn.update_handoff(handoff_id, status="bot", ended_at=txn.now, outcome="timeout")
                await txn.set_state("bot", handoff_id)
                await txn.append("handoff", state_data(ended))
                await txn.append("notice", {"text": config.texts.timeout})
                return ended

            try:
                ended, events = await self._store.in_session(handoff.session_id, work)
            except NotFound:
                continue
            if ended is not None:
                returned += 1
                log.info("handoff_timed_out", handoff_id=handoff.id, session_id=handoff.session_id)
                await self._announce(handoff.session_id, events, desk=True)
        return returned

    async def aclose(self) -> None:
        """Close the store's pool."""
        await self._store.aclose()

    # --- helpers --------------------------------------------------------------------------------------------

    async def agent_name(self, agent_id: str | None) -> str | None:
        """An agent's display name (cached)."""
        return await self._name(agent_id)

    async def _name(self, agent_id: str | None) -> str | None:
        if agent_id is None:
            return None
        name = self._names.get(agent_id)
        if name is None and self._agent_name is not None:
            name = await self._agent_name(agent_id)
            if name is not None:
                self._names[agent_id] = name
        return name

    @staticmethod
    def _owned(txn: SessionTxn, handoff: HandoffRecord | None, agent: AgentLike) -> HandoffRecord:
        if txn.state != "agent" or handoff is None:
            raise Conflict("no agent has this conversation (claim it first)", code="not_yours")
        if handoff.agent_id != agent.id and not agent.is_admin:
            raise Conflict("this conversation belongs to another agent", code="not_yours")
        return handoff

    async def _announce(self, session_id: str, events: Sequence[FeedEvent], *, desk: bool) -> None:
        try:
            if events:
                await self._hub.publish(session_topic(session_id))
            if desk:
                await self._hub.publish(DESK_TOPIC, session_id)
        except Exception as exc:  # readers still find the events on their next periodic read
            log.warning("feed_publish_failed", session_id=session_id, error=repr(exc))

    async def _emit(self, event: str, session_id: str, data: Mapping[str, Any]) -> None:
        if self._notifier is None:
            return
        started = time.monotonic()
        try:
            await self._notifier.emit(event, data, session_id=session_id)
        except Exception as exc:  # a notification must never fail the action that caused it
            log.warning("webhook_emit_failed", webhook_event=event, error=repr(exc))
        finally:
            self._metrics.webhook_emit_seconds.observe(time.monotonic() - started)


def state_data(
    handoff: HandoffRecord, *, position: int | None = None, offline: bool = False, agent: str | None = None
) -> dict[str, Any]:
    """The ``handoff`` event's payload (as in :func:`kefu.engine.events.handoff_payload`)."""
    return {
        "id": handoff.id,
        "state": handoff.status,
        "reason": handoff.reason_code,
        "position": position,
        "offline": offline,
        "agent": {"name": agent} if agent else None,
    }


def _summary(handoff: HandoffRecord) -> dict[str, Any]:
    return {
        "handoff_id": handoff.id,
        "session_id": handoff.session_id,
        "user_id": handoff.user_id,
        "reason": handoff.reason_code,
        "reason_text": handoff.reason,
        "flow": handoff.flow,
        "slots": handoff.summary,
    }


def _matches(text: str, phrases: Sequence[str]) -> bool:
    folded = text.strip().lower()
    return any(p.lower() in folded for p in phrases) and len(folded) <= 40


def frustrated(text: str, config: HandoffConfig) -> bool:
    """Whether the shopper's message carries one of the bot's frustration phrases."""
    folded = text.lower()
    return any(p.lower() in folded for p in config.frustration)
