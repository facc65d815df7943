"""``/desk/api``: the agent desk's endpoints (agents only: shopper tokens and API keys get 403)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, StreamingResponse

from kefu.api.deps import DESK_COOKIE, AgentDep, PeopleApi, PeopleApiDep, desk_token
from kefu.api.handoff import feed_stream, handoff_view
from kefu.api.openapi import STREAM_RESPONSE
from kefu.api.sse import HEARTBEAT_FRAME, EventStreamResponse, sse_response
from kefu.api.validation import MAX_SEQ, AfterSeq, SafeText, resume_point
from kefu.errors import Forbidden, InvalidInput, NotFound
from kefu.handoff.accounts import Agent
from kefu.handoff.service import DESK_TOPIC, QueueItem
from kefu.store.desk import NoteRecord

router = APIRouter(prefix="/desk/api", tags=["desk"])

PRESENCE_EVERY = 20.0  # seconds between presence refreshes while the desk's stream is open


class LoginIn(BaseModel):
    """An agent's name and password."""

    name: SafeText = Field(min_length=1, max_length=64)
    password: SafeText = Field(min_length=1, max_length=1024)


class MessageIn(BaseModel):
    """An agent's message to the shopper."""

    text: SafeText = Field(max_length=4000)


class TransferIn(BaseModel):
    """The agent to give the conversation to (by login name)."""

    agent: SafeText = Field(min_length=1, max_length=64)


class CloseIn(BaseModel):
    """How the conversation ended: resolved, unresolved or spam."""

    outcome: SafeText = Field(default="resolved", max_length=64)


class NoteIn(BaseModel):
    """An internal note; ``private`` ones are for their author (and admins) only."""

    text: SafeText = Field(max_length=4000)
    private: bool = False


class ReadIn(BaseModel):
    """The agent has read the conversation feed up to ``seq``."""

    seq: int = Field(ge=0, le=MAX_SEQ)


def agent_view(agent: Agent) -> dict[str, Any]:
    """An agent as the desk shows it."""
    return {"id": agent.id, "name": agent.name, "display_name": agent.display_name, "role": agent.role}


def _note_view(note: NoteRecord, names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": note.id,
        "text": note.text,
        "private": note.private,
        "agent": {"id": note.agent_id, "display_name": names.get(note.agent_id, note.agent_id)},
        "created_at": note.created_at.isoformat(),
    }


def _queue_view(item: QueueItem) -> dict[str, Any]:
    h = item.handoff
    return {
        "session_id": h.session_id,
        "handoff_id": h.id,
        "state": h.status,
        "reason": h.reason,
        "reason_code": h.reason_code,
        "user_id": h.user_id,
        "created_at": h.created_at.isoformat(),
        "waiting_seconds": round(item.waiting_seconds, 1),
        "last_activity_at": (h.last_activity_at or h.created_at).isoformat(),
        "agent": {"id": h.agent_id, "display_name": item.agent_name} if h.agent_id else None,
        "unread": item.unread,
        "preview": item.preview,
        "flow": h.flow,
    }


@router.post("/login", summary="Log an agent in (sets the desk cookie)")
async def login(body: LoginIn, request: Request, people: PeopleApiDep) -> JSONResponse:
    """401 ``bad_credentials`` for an unknown name, a wrong password or a disabled agent."""
    agent, token = await people.accounts.login(body.name, body.password)
    response = JSONResponse({"agent": agent_view(agent), "token": token})
    response.set_cookie(
        DESK_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https",
        path="/",
        max_age=12 * 3600,
    )
    return response


@router.post("/logout", status_code=204, summary="Log out (revokes the token)")
async def logout(request: Request, agent: AgentDep, people: PeopleApiDep) -> Response:
    """The token stops working on every replica."""
    await people.accounts.logout(desk_token(request))
    response = Response(status_code=204)
    response.delete_cookie(DESK_COOKIE, path="/")
    return response


@router.get("/me", summary="The agent logged in")
async def me(agent: AgentDep) -> dict[str, Any]:
    """Who is logged in."""
    return {"agent": agent_view(agent)}


@router.get("/queue", summary="Waiting conversations and the agent's own")
async def queue(agent: AgentDep, people: PeopleApiDep) -> dict[str, Any]:
    """Queued conversations and the caller's own (admins: every open one), oldest waiting first."""
    items = await people.desk.queue(agent)
    online = await people.desk.online_agents()
    return {
        "conversations": [_queue_view(item) for item in items],
        "online_agents": len(online),
        "open_now": people.desk.open_now(),
    }


@router.get("/agents", summary="Agents (for transfers)")
async def agents(agent: AgentDep, people: PeopleApiDep) -> dict[str, Any]:
    """Every enabled agent, and whether they have the desk open."""
    online = await people.desk.online_agents()
    listed = [a for a in await people.accounts.list() if not a.disabled]
    return {"agents": [{**agent_view(a), "online": a.id in online} for a in listed]}


@router.get("/canned", summary="Canned replies from the bot directory")
async def canned(
    agent: AgentDep, people: PeopleApiDep, q: Annotated[str, Query(max_length=200)] = ""
) -> dict[str, Any]:
    """The bot's canned replies whose title or text contains ``q``."""
    needle = q.strip().lower()
    replies = [
        {"title": r.title, "text": r.text}
        for r in people.desk.config.canned
        if not needle or needle in r.title.lower() or needle in r.text.lower()
    ]
    return {"replies": replies}


async def _desk_stream(people: PeopleApi, agent: Agent) -> AsyncIterator[bytes]:
    await people.desk.touch_presence(agent)
    async with people.desk.subscribe(DESK_TOPIC) as sub:
        yield b"event: ready\ndata: {}\n\n"
        quiet = 0.0
        while True:
            wait = min(people.heartbeat, PRESENCE_EVERY)
            payloads = await sub.next(wait)
            if payloads:
                for session_id in dict.fromkeys(payloads):
                    yield f'event: queue\ndata: {{"session_id": "{session_id}"}}\n\n'.encode()
                continue
            await people.desk.touch_presence(agent)
            quiet += wait
            if quiet >= people.heartbeat:
                quiet = 0.0
                yield HEARTBEAT_FRAME


@router.get(
    "/stream",
    response_class=EventStreamResponse,
    responses=STREAM_RESPONSE,
    summary="Queue changes as Server-Sent Events (keeps the agent online)",
)
async def stream(agent: AgentDep, people: PeopleApiDep) -> StreamingResponse:
    """``event: queue`` data ``{"session_id"}`` whenever a conversation in the queue changes."""
    return sse_response(_desk_stream(people, agent))


@router.get("/conversations/{session_id}", summary="A conversation: transcript, handoff, notes")
async def conversation(session_id: str, agent: AgentDep, people: PeopleApiDep) -> dict[str, Any]:
    """The whole transcript (the bot's answers with their sources), the handoff and its context, the notes."""
    state, handoff = await people.desk.can_view(session_id, agent)
    messages = await people.chat.transcript(session_id)
    _, _, last_seq = await people.desk.state(session_id)
    notes = await people.desk.notes(session_id, agent)
    names = {a.id: a.display_name for a in await people.accounts.list()}
    view = await handoff_view(people.desk, handoff)
    if view is not None and handoff is not None:
        view.update(
            reason_text=handoff.reason,
            flow=handoff.flow,
            slots=handoff.summary,
            context=handoff.context,
            outcome=handoff.outcome,
            rating_comment=handoff.rating_comment,
            agent_id=handoff.agent_id,
        )
    return {
        "session_id": session_id,
        "user_id": handoff.user_id if handoff else None,
        "state": state,
        "handoff": view,
        "messages": [
            {
                "role": m.role,
                "content": m.content,
                "author": m.author,
                "source": m.source,
                "status": m.status,
                "moderation": m.moderation,
                "created_at": m.created_at.isoformat(),
            }
            for m in messages
        ],
        "notes": [_note_view(n, names) for n in notes],
        "last_seq": last_seq,
    }


@router.get(
    "/conversations/{session_id}/events",
    response_class=EventStreamResponse,
    responses=STREAM_RESPONSE,
    summary="The conversation feed (SSE), resumable",
)
async def conversation_events(
    session_id: str,
    agent: AgentDep,
    people: PeopleApiDep,
    last_event_id: Annotated[str | None, Header()] = None,
    after: AfterSeq = None,
) -> StreamingResponse:
    """Every feed event (``user`` included) with ``id: <session_id>:<seq>``; ``typing`` live only."""
    await people.desk.can_view(session_id, agent)
    start = resume_point(session_id, last_event_id, after)
    return sse_response(feed_stream(people, session_id, start, None))


@router.post("/conversations/{session_id}/claim", summary="Take a waiting conversation")
async def claim(session_id: str, agent: AgentDep, people: PeopleApiDep) -> dict[str, Any]:
    """409 ``already_claimed`` when another agent was first."""
    handoff = await people.desk.claim(session_id, agent)
    return {"handoff": await handoff_view(people.desk, handoff)}


@router.post("/conversations/{session_id}/transfer", summary="Give the conversation to another agent")
async def transfer(session_id: str, body: TransferIn, agent: AgentDep, people: PeopleApiDep) -> dict[str, Any]:
    """The agent who has it, or an admin; the target must be an enabled agent."""
    target = await people.accounts.by_name(body.agent)
    if target is None or target.disabled:
        raise NotFound(f"no enabled agent named {body.agent!r}")
    handoff = await people.desk.transfer(session_id, agent, target)
    return {"handoff": await handoff_view(people.desk, handoff)}


@router.post("/conversations/{session_id}/release", summary="Hand the conversation back to the bot")
async def release(session_id: str, agent: AgentDep, people: PeopleApiDep) -> dict[str, Any]:
    """The bot answers the shopper's next message."""
    handoff = await people.desk.release(session_id, agent)
    return {"handoff": await handoff_view(people.desk, handoff)}


@router.post("/conversations/{session_id}/close", summary="End the conversation with an outcome")
async def close(session_id: str, body: CloseIn, agent: AgentDep, people: PeopleApiDep) -> dict[str, Any]:
    """``resolved``, ``unresolved`` or ``spam``; the shopper is asked for a rating."""
    handoff = await people.desk.close(session_id, agent, body.outcome)
    return {"handoff": await handoff_view(people.desk, handoff)}


@router.post("/conversations/{session_id}/messages", summary="Send the shopper a message")
async def send(session_id: str, body: MessageIn, agent: AgentDep, people: PeopleApiDep) -> dict[str, Any]:
    """Only the agent who has the conversation (409 ``not_yours`` otherwise)."""
    event = await people.desk.send(session_id, agent, body.text)
    return {"seq": event.seq, "created_at": event.created_at.isoformat()}


@router.post("/conversations/{session_id}/typing", status_code=204, summary="The agent is typing")
async def typing(session_id: str, agent: AgentDep, people: PeopleApiDep) -> Response:
    """Shown to the shopper for a few seconds."""
    await people.desk.can_view(session_id, agent)
    await people.desk.typing(session_id, agent)
    return Response(status_code=204)


@router.post("/conversations/{session_id}/read", status_code=204, summary="Mark the conversation read")
async def read(session_id: str, body: ReadIn, agent: AgentDep, people: PeopleApiDep) -> Response:
    """Unread counts in the queue drop to what came after ``seq``."""
    await people.desk.can_view(session_id, agent)
    await people.desk.mark_read(session_id, body.seq)
    return Response(status_code=204)


@router.get("/conversations/{session_id}/notes", summary="Internal notes")
async def notes(session_id: str, agent: AgentDep, people: PeopleApiDep) -> dict[str, Any]:
    """Team notes, and the caller's private ones (admins: all)."""
    await people.desk.can_view(session_id, agent)
    names = {a.id: a.display_name for a in await people.accounts.list()}
    return {"notes": [_note_view(n, names) for n in await people.desk.notes(session_id, agent)]}


@router.post("/conversations/{session_id}/notes", summary="Add an internal note")
async def add_note(session_id: str, body: NoteIn, agent: AgentDep, people: PeopleApiDep) -> dict[str, Any]:
    """The shopper never sees notes."""
    await people.desk.can_view(session_id, agent)
    note = await people.desk.add_note(session_id, agent, body.text, private=body.private)
    return {"note": _note_view(note, {agent.id: agent.display_name})}


@router.get("/webhooks", summary="Recent webhook deliveries (admins)")
async def webhooks(agent: AgentDep, people: PeopleApiDep, limit: int = 100) -> dict[str, Any]:
    """Each delivery with its attempts, last status and last error."""
    if not agent.is_admin:
        raise Forbidden("only admins can see webhook deliveries")
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000")
    records = await people.deliveries(limit)
    return {
        "deliveries": [
            {
                "id": r.id,
                "event": r.event,
                "target": r.target,
                "url": r.url,
                "session_id": r.session_id,
                "status": r.status,
                "attempts": r.attempts,
                "last_status": r.last_status,
                "last_error": r.last_error,
                "created_at": r.created_at.isoformat(),
                "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None,
            }
            for r in records
        ]
    }
