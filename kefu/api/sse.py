"""The only place that writes Server-Sent Events frames."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse

from kefu.store.base import LogEvent

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "Connection": "keep-alive",
}
HEARTBEAT_FRAME = b": ping\n\n"


def event_frame(turn_id: str, event: LogEvent) -> bytes:
    """``id``/``event``/``data`` lines for one turn-log event (``data`` is single-line JSON)."""
    return f"id: {turn_id}:{event.seq}\nevent: {event.type}\ndata: {event.data}\n\n".encode()


def data_frame(data: str) -> bytes:
    """A bare ``data:`` frame (the OpenAI streaming format)."""
    return f"data: {data}\n\n".encode()


def sse_response(body: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> StreamingResponse:
    """A ``text/event-stream`` response with buffering disabled along the way."""
    return StreamingResponse(body, media_type="text/event-stream", headers={**SSE_HEADERS, **(headers or {})})
