"""``/v1/chat/completions``: the bot behind an OpenAI-compatible facade.

Any OpenAI SDK client can talk to the bot as if it were a model. Only the last ``user`` message is taken:
the bot keeps the conversation itself, keyed by the request's ``user`` field (a stable external key) or by
the ``X-Kefu-Session`` header (a kefu session id, returned on every response). Without either, each request
starts a new session.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from kefu.api.deps import LimitedIdentityDep, RuntimeDep
from kefu.api.errors import error_response
from kefu.api.sse import FinalFrame, data_frame, sse_response
from kefu.engine import events as ev
from kefu.engine.service import derived_session_id
from kefu.errors import InvalidInput
from kefu.runtime import Runtime
from kefu.store.base import LogEvent, TurnMeta

router = APIRouter(prefix="/v1", tags=["openai-compatible"])

# Status for an error event that ends a turn before any text (the request can still fail cleanly).
_ERROR_STATUS = {"llm_not_configured": 503, "upstream_rate_limited": 429, "cancelled": 499}


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class CompletionIn(BaseModel):
    """The subset of the OpenAI chat-completions request the facade uses (other fields are ignored)."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[_Message]
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    user: str | None = None


def _last_user_text(body: CompletionIn) -> str:
    for message in reversed(body.messages):
        if message.role != "user":
            continue
        if isinstance(message.content, str):
            return message.content
        if isinstance(message.content, list):
            return "".join(str(p.get("text", "")) for p in message.content if p.get("type") == "text")
    raise InvalidInput("messages must contain a user message", code="no_user_message")


def _chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None) -> str:
    return orjson.dumps(
        {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    ).decode()


def _error_json(event: LogEvent) -> tuple[int, dict[str, Any]]:
    data = orjson.loads(event.data)
    status = _ERROR_STATUS.get(data["code"], 502 if data.get("retryable") else 500)
    return status, data


@router.post("/chat/completions", summary="OpenAI-compatible chat completions (the bot as a model)")
async def chat_completions(
    body: CompletionIn,
    identity: LimitedIdentityDep,
    runtime: RuntimeDep,
    x_kefu_session: Annotated[str | None, Header()] = None,
) -> Response:
    """Stream (``stream: true``) or return one ``chat.completion`` answered by the bot."""
    text = _last_user_text(body)
    if x_kefu_session:
        handle = await runtime.chat.start_turn(identity, text, x_kefu_session)
    elif body.user:
        key = derived_session_id(identity.user_id, body.user)
        handle = await runtime.chat.start_turn(identity, text, key, create_missing=True)
    else:
        handle = await runtime.chat.start_turn(identity, text)
    meta = await runtime.chat.turn_meta(identity, handle.turn_id)
    events = _turn_events(runtime, meta)
    headers = {"X-Kefu-Session": handle.session_id, "X-Kefu-Turn": handle.turn_id}
    cid = f"chatcmpl-{handle.turn_id}"
    created = int(time.time())
    model = body.model or runtime.settings.llm_model
    # Read up to the first text (or the end) before answering, so a turn that fails at once is a clean HTTP
    # error the SDK understands, not a stream that breaks.
    first: list[LogEvent] = []
    async for event in events:
        first.append(event)
        if event.type in (ev.DELTA, ev.DONE, ev.ERROR):
            break
    if first and first[-1].type == ev.ERROR:
        status, data = _error_json(first[-1])
        response = error_response(status, data["code"], data["message"], headers)
        # We already retried upstream where that made sense: SDKs must not multiply attempts.
        response.headers["x-should-retry"] = "false"
        return response
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return sse_response(_stream_chunks(first, events, cid, created, model, include_usage), headers=headers)
    return await _complete(first, events, cid, created, model, headers)


async def _turn_events(runtime: Runtime, meta: TurnMeta) -> AsyncIterator[LogEvent]:
    async for event in runtime.chat.follow(meta, 0, heartbeat=runtime.settings.sse_heartbeat):
        if event is not None:
            yield event


async def _stream_chunks(
    first: list[LogEvent],
    rest: AsyncIterator[LogEvent],
    cid: str,
    created: int,
    model: str,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    yield data_frame(_chunk(cid, created, model, {"role": "assistant", "content": ""}, None))

    async def all_events() -> AsyncIterator[LogEvent]:
        for event in first:
            yield event
        async for event in rest:
            yield event

    async for event in all_events():
        if event.type == ev.DELTA:
            yield data_frame(_chunk(cid, created, model, {"content": ev.delta_text(event.data)}, None))
        elif event.type == ev.DONE:
            done = orjson.loads(event.data)
            answered_by = done.get("model") or model
            # The finish chunk, the usage chunk and [DONE] go out together, with the end of the response.
            frames = [data_frame(_chunk(cid, created, answered_by, {}, done["finish_reason"]))]
            if include_usage and done.get("usage"):
                usage = orjson.dumps(
                    {
                        "id": cid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": answered_by,
                        "choices": [],
                        "usage": done["usage"],
                    }
                ).decode()
                frames.append(data_frame(usage))
            frames.append(b"data: [DONE]\n\n")
            yield FinalFrame(b"".join(frames))
            return
        elif event.type == ev.ERROR:
            # The OpenAI SDKs raise on an `error` object inside the stream; no [DONE] follows.
            data = orjson.loads(event.data)
            yield FinalFrame(
                data_frame(
                    orjson.dumps(
                        {"error": {"message": data["message"], "type": "kefu_error", "code": data["code"]}}
                    ).decode()
                )
            )
            return


async def _complete(
    first: list[LogEvent],
    rest: AsyncIterator[LogEvent],
    cid: str,
    created: int,
    model: str,
    headers: dict[str, str],
) -> Response:
    parts: list[str] = []
    pending = list(first)
    while True:
        if pending:
            event = pending.pop(0)
        else:
            try:
                event = await anext(rest)
            except StopAsyncIteration:
                return error_response(502, "turn_incomplete", "the turn ended without an answer", headers)
        if event.type == ev.DELTA:
            parts.append(ev.delta_text(event.data))
        elif event.type == ev.ERROR:
            status, data = _error_json(event)
            response = error_response(status, data["code"], data["message"], headers)
            response.headers["x-should-retry"] = "false"
            return response
        elif event.type == ev.DONE:
            done = orjson.loads(event.data)
            payload = {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": done.get("model") or model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(parts)},
                        "finish_reason": done["finish_reason"],
                    }
                ],
                "usage": done.get("usage") or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            }
            return JSONResponse(payload, headers=headers)
