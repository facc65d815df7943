"""``/v1/chat``: start a turn and stream it; resume and cancel turns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import StreamingResponse

from kefu.api.deps import IdentityDep, LimitedIdentityDep, LimiterDep, TurnApi, TurnApiDep
from kefu.api.openapi import STREAM_RESPONSE
from kefu.api.sse import HEARTBEAT_FRAME, EventStreamResponse, event_frame, final_frame, sse_response
from kefu.api.validation import AfterSeq, SafeText, resume_point
from kefu.engine.events import ErrorEvent, encode
from kefu.obs.logging import get_logger
from kefu.store.base import TurnMeta
from kefu.store.outage import is_outage

log = get_logger("kefu.http")
router = APIRouter(prefix="/v1/chat", tags=["chat"])


class ChatIn(BaseModel):
    """A user message; ``session_id`` null starts a new session."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"message": "运费多少？", "session_id": None}]})

    message: SafeText
    session_id: SafeText | None = Field(default=None, max_length=200)


async def _stream(api: TurnApi, meta: TurnMeta, after: int) -> AsyncIterator[bytes]:
    gauge = api.active_streams
    gauge.inc()
    try:
        async for event in api.chat.follow(meta, after, heartbeat=api.heartbeat):
            yield HEARTBEAT_FRAME if event is None else event_frame(meta.turn_id, event)
    except Exception as exc:
        if not is_outage(exc):
            raise
        # The turn log cannot be read (Redis went away mid-answer): end the stream with an honest error instead
        # of a cut connection. No `id:`, so the client's Last-Event-ID stays at the last event it really got and
        # a later resume continues from there. The answer itself is stored by the turn, as `interrupted`.
        log.warning("turn_log_unreadable", turn_id=meta.turn_id, error=type(exc).__name__)
        lost = ErrorEvent("store_unavailable", "the answer stream was interrupted; please try again", retryable=True)
        yield final_frame(*encode(lost))
    finally:
        # A client that goes away only stops reading; the turn itself goes on (cancel is explicit).
        gauge.dec()


@router.post(
    "",
    response_class=EventStreamResponse,
    responses=STREAM_RESPONSE,
    summary="Send a message; the answer streams back as Server-Sent Events",
)
async def post_chat(body: ChatIn, identity: LimitedIdentityDep, api: TurnApiDep) -> StreamingResponse:
    """Start a turn and stream its events (``session``, ``delta``…, then ``done`` or ``error``)."""
    handle = await api.chat.start_turn(identity, body.message, body.session_id)
    return sse_response(_stream(api, handle.meta, 0))


@router.get(
    "/turns/{turn_id}/events",
    response_class=EventStreamResponse,
    responses={**STREAM_RESPONSE, 204: {"description": "The turn is over and nothing is left after that point"}},
    summary="Replay a turn's events after a point, then follow it live",
)
async def get_turn_events(
    turn_id: str,
    identity: IdentityDep,
    api: TurnApiDep,
    limiter: LimiterDep,
    last_event_id: Annotated[str | None, Header()] = None,
    after: AfterSeq = None,
) -> Response:
    """Resume by ``Last-Event-ID: <turn_id>:<seq>`` or ``?after=<seq>``. 204 when the turn is over and nothing is
    left after that point; from a point past the last event of a running turn, a stream of heartbeats that ends
    when the turn does. 429 when the user resumes more often than ``KEFU_RATE_LIMIT_RESUME``."""
    await limiter.check_resume(identity)
    start = resume_point(turn_id, last_event_id, after)
    meta = await api.chat.turn_meta(identity, turn_id)
    if meta.finished and start >= meta.last_seq:
        # 204 stops a browser EventSource from reconnecting to a finished stream. A point past the end gets the
        # same: a resume that raced the end of the turn must not fail for having landed after it.
        return Response(status_code=204)
    return sse_response(_stream(api, meta, start))


@router.post("/turns/{turn_id}/cancel", summary="Stop a running turn")
async def cancel_turn(turn_id: str, identity: IdentityDep, api: TurnApiDep) -> dict[str, object]:
    """Stop generating; what was already said is kept as ``interrupted``."""
    cancelled = await api.chat.cancel(identity, turn_id)
    return {"turn_id": turn_id, "cancelled": cancelled}
