"""Sending one mock answer: paced SSE frames (or a plain JSON completion) with the step's failure applied.

Frames are pre-encoded before the first byte goes out; pacing uses an absolute schedule per stream and sends
every frame that is due in one write, so a loaded server falls behind gracefully instead of drifting.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from kefu.llm.mock import wire
from kefu.llm.mock.config import MockStep
from kefu.llm.mock.state import MockState

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_JSON_HEADERS = [(b"content-type", b"application/json")]
_LONG_WAIT = 0.5  # waits longer than this also watch for the client going away


@dataclass(slots=True)
class StreamPlan:
    """Everything needed to answer one request (the step is already resolved against the config)."""

    step: MockStep
    question: str
    model: str
    completion_id: str
    created: int
    prompt_tokens: int
    include_usage: bool
    as_json: bool


class StreamResponse(Response):
    """An ASGI response that plays a :class:`StreamPlan`."""

    def __init__(self, plan: StreamPlan, state: MockState) -> None:
        self.plan = plan
        self.mock = state
        self.gone = asyncio.Event()
        self.send_fn: Send | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.send_fn = send
        watcher = asyncio.get_running_loop().create_task(self._watch(receive))
        self.mock.active += 1
        if self.mock.active > self.mock.max_active:
            self.mock.max_active = self.mock.active
        try:
            if self.plan.as_json:
                await self._json()
            else:
                await self._sse()
        finally:
            self.mock.active -= 1
            watcher.cancel()
            if self.gone.is_set():
                self.mock.disconnects += 1

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone.set()

    async def _write(self, data: bytes, more: bool = True) -> None:
        assert self.send_fn is not None
        await self.send_fn({"type": "http.response.body", "body": data, "more_body": more})

    async def _start(self, headers: list[tuple[bytes, bytes]]) -> None:
        assert self.send_fn is not None
        await self.send_fn({"type": "http.response.start", "status": 200, "headers": headers})

    async def _wait(self, seconds: float, keepalive: float, beat: bytes) -> bool:
        """Sleep ``seconds``, writing ``beat`` every ``keepalive`` seconds; False if the client went away."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (remaining := end - loop.time()) > 0:
            nap = min(remaining, keepalive) if keepalive > 0 else remaining
            if nap > _LONG_WAIT:
                try:
                    await asyncio.wait_for(self.gone.wait(), nap)
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(nap)
            if self.gone.is_set():
                return False
            if keepalive > 0 and end - loop.time() > 0:
                await self._write(beat)
        return not self.gone.is_set()

    async def _paced(self, frames: list[bytes]) -> bool:
        """Send ``frames`` at the step's rate (all due frames in one write); False if the client went away."""
        step = self.plan.step
        assert step.tps is not None and step.chunk_chars is not None
        interval = step.chunk_chars / step.tps if step.tps > 0 else 0.0
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent, total = 0, len(frames)
        while sent < total:
            due = total if interval == 0 else min(total, max(sent + 1, int((loop.time() - start) / interval) + 1))
            await self._write(frames[sent] if due == sent + 1 else b"".join(frames[sent:due]))
            sent = due
            if self.gone.is_set():
                return False
            if sent < total and (delay := start + sent * interval - loop.time()) > 0:
                await asyncio.sleep(delay)
        return True

    def _frames(self, frames: wire.Frames) -> tuple[list[bytes], str, int]:
        """Content frames, finish reason and completion tokens for the step's kind."""
        plan, step = self.plan, self.plan.step
        assert step.tokens is not None and step.chunk_chars is not None
        if step.fail == "tool_call" or step.tool_calls is not None:
            fragments = wire.tool_call_fragments(wire.scripted_calls(step.tool_calls))
            return [frames.tool_call(f) for f in fragments], "tool_calls", len(fragments)
        out: list[bytes] = []
        if step.fail == "reasoning":
            out.extend(frames.reasoning(p) for p in wire.split(wire.REASONING, step.chunk_chars))
        text = step.text if step.text is not None else wire.answer_text(plan.question, step.tokens)
        out.extend(frames.content(p) for p in wire.split(text, step.chunk_chars))
        return out, "stop", len(text)

    def _usage(self, completion_tokens: int) -> dict[str, object]:
        reasoning = len(wire.REASONING) if self.plan.step.fail == "reasoning" else 0
        return wire.usage(self.plan.prompt_tokens, completion_tokens + reasoning, reasoning)

    async def _sse(self) -> None:
        plan, step = self.plan, self.plan.step
        assert step.ttft is not None and step.keepalive is not None
        frames = wire.Frames(plan.completion_id, plan.created, plan.model, plan.include_usage)
        body, reason, completion_tokens = self._frames(frames)
        final = frames.finish(step.finish_reason or reason)
        if plan.include_usage:
            final += frames.usage(self._usage(completion_tokens))
        final += wire.DONE
        await self._start(_SSE_HEADERS)
        if step.fail == "split_bytes":
            if await self._wait(step.ttft, 0.0, b""):
                await self._split_bytes([frames.role(), *body, final])
            return
        await self._write(frames.role())
        ttft = step.seconds if step.fail == "stall" else step.ttft
        if not await self._wait(ttft, step.keepalive, wire.KEEPALIVE):
            return
        if step.fail in ("cut", "stall_mid", "error_event"):
            head, body = body[: step.after_chunks], body[step.after_chunks :]
            if not await self._paced(head):
                return
            if step.fail == "cut":
                return  # end without completing the response: the server drops the connection
            if step.fail == "error_event":
                if step.message:
                    frame = wire.error_frame(step.message, "api_error")
                else:
                    frame = wire.error_frame("Server overloaded, please try again later", "server_error", "overloaded")
                await self._write(frame, more=False)
                return
            if not await self._wait(step.seconds, step.keepalive, wire.KEEPALIVE):
                return
        if await self._paced(body):
            await self._write(final, more=False)

    async def _split_bytes(self, frames: list[bytes]) -> None:
        """Write each frame in pieces cut inside its ``data:`` prefix, inside a multi-byte character and
        between its two closing newlines, pausing between writes so they reach the client separately."""
        for frame in frames:
            cuts = {2, len(frame) - 1}
            lead = next((i for i, b in enumerate(frame) if b >= 0xE0), None)
            if lead is not None:
                cuts |= {lead + 1, lead + 2}
            edges = [0, *sorted(c for c in cuts if 0 < c < len(frame)), len(frame)]
            for a, b in zip(edges, edges[1:], strict=False):
                await self._write(frame[a:b])
                await asyncio.sleep(0.001)
                if self.gone.is_set():
                    return
        await self._write(b"", more=False)

    async def _json(self) -> None:
        plan, step = self.plan, self.plan.step
        assert step.ttft is not None and step.keepalive is not None and step.tokens is not None
        await self._start(_JSON_HEADERS)
        # DeepSeek sends blank lines while a non-streamed request waits; the JSON parser must skip them.
        if not await self._wait(step.seconds if step.fail == "stall" else step.ttft, step.keepalive, b"\n"):
            return
        calls = wire.scripted_calls(step.tool_calls) if step.fail == "tool_call" or step.tool_calls else ()
        reasoning = wire.REASONING if step.fail == "reasoning" else None
        text = step.text if step.text is not None else wire.answer_text(plan.question, step.tokens)
        counts = self._usage(len(calls) if calls else len(text))
        body = wire.completion(
            plan.completion_id,
            plan.created,
            plan.model,
            text,
            counts,
            reasoning=reasoning,
            tool_calls=calls,
            finish_reason=step.finish_reason,
        )
        await self._write(body, more=False)
