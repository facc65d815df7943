"""EventStreamResponse: frames out, the final frame together with the end of the response."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from kefu.api.sse import FinalFrame, event_frame, sse_response
from kefu.engine.events import Logged

SCOPE: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "headers": []}


async def run_response(body: AsyncIterator[bytes]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await never.wait()  # the client stays
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await sse_response(body)(SCOPE, receive, send)
    return sent


def test_sse_event_frame_marks_terminal_events_final() -> None:
    delta = event_frame("t_1", Logged(seq=2, name="delta", data='{"text":"hi"}'))
    done = event_frame("t_1", Logged(seq=3, name="done", data="{}"))
    error = event_frame("t_1", Logged(seq=3, name="error", data="{}"))
    assert delta == b'id: t_1:2\nevent: delta\ndata: {"text":"hi"}\n\n'
    assert type(delta) is bytes
    assert isinstance(done, FinalFrame) and done.startswith(b"id: t_1:3\nevent: done\n")
    assert isinstance(error, FinalFrame)


async def test_sse_final_frame_goes_out_with_the_end_of_the_response() -> None:
    closed: list[str] = []

    async def frames() -> AsyncIterator[bytes]:
        try:
            yield b"data: 1\n\n"
            yield FinalFrame(b"data: last\n\n")
            yield b"data: never read\n\n"
        finally:
            closed.append("closed")

    sent = await run_response(frames())
    assert sent[0]["type"] == "http.response.start"
    assert [(m["body"], m["more_body"]) for m in sent[1:]] == [
        (b"data: 1\n\n", True),
        (b"data: last\n\n", False),
    ]
    assert closed == ["closed"]


async def test_sse_stream_without_final_frame_ends_with_an_empty_body() -> None:
    async def frames() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"

    sent = await run_response(frames())
    assert [(m["body"], m["more_body"]) for m in sent[1:]] == [(b"data: 1\n\n", True), (b"", False)]
