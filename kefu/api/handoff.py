"""The shopper's side of people in the loop: ask for a person, follow the conversation feed, rate the service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, Field
from starlette.responses import StreamingResponse

from kefu.api.deps import IdentityDep, LimitedIdentityDep, PeopleApi, PeopleApiDep
from kefu.api.openapi import STREAM_RESPONSE
from kefu.api.sse import HEARTBEAT_FRAME, EventStreamResponse, sse_response
from kefu.api.validation import AfterSeq, SafeText, resume_point
from kefu.handoff.service import Desk, Typing, state_data
from kefu.store.desk import FeedEvent, HandoffRecord

router = APIRouter(prefix="/v1/sessions", tags=["handoff"])

SHOPPER_KINDS = frozenset({"handoff", "agent", "notice", "user", "rating"})


class HandoffIn(BaseModel):
    """The shopper's "talk to a person" button, with an optional note for the agent."""

    note: SafeText | None = Field(default=None, max_length=500)


class RatingIn(BaseModel):
    """The shopper's rating of a conversation with a person."""

    score: int
    comment: SafeText | None = Field(default=None, max_length=1000)


async def handoff_view(desk: Desk, handoff: HandoffRecord | None) -> dict[str, Any] | None:
    """A handoff as the shopper (and the desk) sees it."""
    if handoff is None:
        return None
    position = await desk.position(handoff)
    agent = await desk.agent_name(handoff.agent_id) if handoff.status == "agent" else None
    view = state_data(handoff, position=position, agent=agent)
    view["rating"] = handoff.rating
    view["created_at"] = handoff.created_at.isoformat()
    return view


def feed_frame(event: FeedEvent | Typing) -> bytes:
    """One SSE frame of the conversation feed (``typing`` has no id: it is live only)."""
    if isinstance(event, Typing):
        return b"event: typing\ndata: " + orjson.dumps({"agent": {"name": event.agent}}) + b"\n\n"
    return f"id: {event.session_id}:{event.seq}\nevent: {event.kind}\ndata: {event.data}\n\n".encode()


async def feed_stream(
    people: PeopleApi, session_id: str, after: int, kinds: frozenset[str] | None
) -> AsyncIterator[bytes]:
    """The conversation feed as SSE frames, until the client goes away."""
    async for event in people.desk.follow(session_id, after, heartbeat=people.heartbeat, kinds=kinds):
        yield HEARTBEAT_FRAME if event is None else feed_frame(event)


@router.get("/{session_id}/handoff", summary="Who answers this conversation now")
async def get_handoff(session_id: str, identity: IdentityDep, people: PeopleApiDep) -> dict[str, Any]:
    """``state`` (bot, queued, agent, closed), the current or last handoff, and the feed's last seq."""
    session = await people.chat.owned_session(identity, session_id)
    state, handoff, last_seq = await people.desk.state(session.id)
    return {"state": state, "handoff": await handoff_view(people.desk, handoff), "last_seq": last_seq}


@router.post("/{session_id}/handoff", summary="Ask for a person (the widget's button)")
async def post_handoff(
    session_id: str, body: HandoffIn, identity: LimitedIdentityDep, people: PeopleApiDep
) -> dict[str, Any]:
    """Queue the conversation for a person; returns the request already open if there is one. 409 while a turn
    runs in the session."""
    ticket = await people.chat.hand_over(identity, session_id, body.note)
    view = await handoff_view(people.desk, ticket.handoff)
    assert view is not None
    view["offline"] = ticket.offline
    return {"handoff": view, "notice": ticket.notice}


@router.get(
    "/{session_id}/events",
    response_class=EventStreamResponse,
    responses=STREAM_RESPONSE,
    summary="The conversation feed: people's messages and state changes (SSE)",
)
async def get_feed(
    session_id: str,
    identity: IdentityDep,
    people: PeopleApiDep,
    last_event_id: Annotated[str | None, Header()] = None,
    after: AfterSeq = None,
) -> StreamingResponse:
    """``handoff``, ``agent``, ``notice``, ``user``, ``rating`` events with ``id: <session_id>:<seq>``, resumable
    with ``Last-Event-ID`` or ``?after=``; ``typing`` live only. Follows until the client goes away."""
    session = await people.chat.owned_session(identity, session_id)
    start = resume_point(session.id, last_event_id, after)
    return sse_response(feed_stream(people, session.id, start, SHOPPER_KINDS))


@router.post("/{session_id}/rating", status_code=204, summary="Rate the conversation with a person")
async def post_rating(session_id: str, body: RatingIn, identity: IdentityDep, people: PeopleApiDep) -> Response:
    """1–5 and an optional comment, once per closed conversation (409 ``nothing_to_rate`` otherwise)."""
    session = await people.chat.owned_session(identity, session_id)
    await people.desk.rate(session.id, body.score, body.comment)
    return Response(status_code=204)
