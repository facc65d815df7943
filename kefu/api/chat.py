"""``/v1/chat``: start a turn and stream it; resume and cancel turns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, Field
from starlette.responses import StreamingResponse

from kefu.api.deps import IdentityDep, LimitedIdentityDep, TurnApi, TurnApiDep
from kefu.api.sse import HEARTBEAT_FRAME, event_frame, sse_response
from kefu.errors import InvalidInput
from kefu.store.base import TurnMeta

router = APIRouter(prefix="/v1/chat", tags=["chat"])


class ChatIn(BaseModel):
    """A user message; ``session_id`` null starts a new session."""

    message: str
    session_id: str | None = Field(default=None, max_length=200)


async def _stream(api: TurnApi, meta: TurnMeta, after: int) -> AsyncIterator[bytes]:
    gauge = api.active_streams
    gauge.inc()
    try:
        async for event in api.chat.follow(meta, after, heartbeat=api.heartbeat):
            yield HEARTBEAT_FRAME if event is None else event_frame(meta.turn_id, event)
    finally:
        # A client that goes away only stops reading; the turn itself goes on (cancel is explicit).
        gauge.dec()


@router.post("", summary="Send a message; the answer streams back as Server-Sent Events")
async def post_chat(body: ChatIn, identity: LimitedIdentityDep, api: TurnApiDep) -> StreamingResponse:
    """Start a turn and stream its events (``session``, ``delta``…, then ``done`` or ``error``)."""
    handle = await api.chat.start_turn(identity, body.message, body.session_id)
    return sse_response(_stream(api, handle.meta, 0))


def _resume_point(turn_id: str, last_event_id: str | None, after: int | None) -> int:
    if after is not None:
        return after
    if not last_event_id:
        return 0
    event_turn, _, seq = last_event_id.rpartition(":")
    if event_turn != turn_id or not seq.isdigit():
        raise InvalidInput(f"Last-Event-ID must look like '{turn_id}:<seq>'", code="invalid_last_event_id")
    return int(seq)


@router.get("/turns/{turn_id}/events", summary="Replay a turn's events after a point, then follow it live")
async def get_turn_events(
    turn_id: str,
    identity: IdentityDep,
    api: TurnApiDep,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """Resume by ``Last-Event-ID: <turn_id>:<seq>`` or ``?after=<seq>``. 204 when there is nothing left."""
    meta = await api.chat.turn_meta(identity, turn_id)
    start = _resume_point(turn_id, last_event_id, after)
    if meta.finished and start >= meta.last_seq:
        # 204 stops a browser EventSource from reconnecting to a finished stream.
        return Response(status_code=204)
    return sse_response(_stream(api, meta, start))


@router.post("/turns/{turn_id}/cancel", summary="Stop a running turn")
async def cancel_turn(turn_id: str, identity: IdentityDep, api: TurnApiDep) -> dict[str, object]:
    """Stop generating; what was already said is kept as ``interrupted``."""
    cancelled = await api.chat.cancel(identity, turn_id)
    return {"turn_id": turn_id, "cancelled": cancelled}
