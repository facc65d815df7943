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

from kefu.api import models
from kefu.api.deps import LimitedIdentityDep, TurnApi, TurnApiDep
from kefu.api.errors import error_response
from kefu.api.openapi import EVENT_STREAM, UPSTREAM_ERRORS
from kefu.api.sse import FinalFrame, data_frame, sse_response
from kefu.api.validation import SafeText
from kefu.engine.events import DeltaEvent, DoneEvent, ErrorEvent, TurnEvent
from kefu.engine.service import derived_session_id
from kefu.errors import InvalidInput, status_for_turn_error
from kefu.store.base import TurnMeta

router = APIRouter(prefix="/v1", tags=["openai-compatible"])
router.include_router(models.router)  # GET /v1/models: SDKs list the models first


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: SafeText | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: SafeText | list[_Part] | None = None


class CompletionIn(BaseModel):
    """The subset of the OpenAI chat-completions request the facade uses (other fields are ignored)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"messages": [{"role": "user", "content": "运费多少？"}], "user": "order-42"}]},
    )
    model: SafeText | None = None
    messages: list[_Message]
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    user: SafeText | None = None


def _last_user_text(body: CompletionIn) -> str:
    for message in reversed(body.messages):
        if message.role != "user":
            continue
        if isinstance(message.content, str):
            return message.content
        if isinstance(message.content, list):
            return "".join(p.text or "" for p in message.content if p.type == "text")
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


def _error_response(event: ErrorEvent, headers: dict[str, str]) -> Response:
    status = status_for_turn_error(event.code, retryable=event.retryable)
    response = error_response(status, event.code, event.message, headers)
    # We already retried upstream where that made sense: SDKs must not multiply attempts.
    response.headers["x-should-retry"] = "false"
    return response


@router.post(
    "/chat/completions",
    responses={
        200: {"description": "A `chat.completion`, or its chunks with `stream: true`", "content": EVENT_STREAM},
        **UPSTREAM_ERRORS,
    },
    summary="OpenAI-compatible chat completions (the bot as a model)",
)
async def chat_completions(
    body: CompletionIn,
    identity: LimitedIdentityDep,
    api: TurnApiDep,
    x_kefu_session: Annotated[SafeText | None, Header(max_length=200)] = None,
) -> Response:
    """Stream (``stream: true``) or return one ``chat.completion`` answered by the bot."""
    text = _last_user_text(body)
    if x_kefu_session:
        handle = await api.chat.start_turn(identity, text, x_kefu_session)
    elif body.user:
        key = derived_session_id(identity.user_id, body.user)
        handle = await api.chat.start_turn(identity, text, key, create_missing=True)
    else:
        handle = await api.chat.start_turn(identity, text)
    meta = await api.chat.turn_meta(identity, handle.turn_id)
    events = _turn_events(api, meta)
    headers = {"X-Kefu-Session": handle.session_id, "X-Kefu-Turn": handle.turn_id}
    cid = f"chatcmpl-{handle.turn_id}"
    created = int(time.time())
    model = body.model or api.default_model
    # Read up to the first text (or the end) before answering, so a turn that fails at once is a clean HTTP
    # error the SDK understands, not a stream that breaks.
    first: list[TurnEvent] = []
    async for event in events:
        first.append(event)
        if isinstance(event, DeltaEvent | DoneEvent | ErrorEvent):
            break
    if first and isinstance(first[-1], ErrorEvent):
        return _error_response(first[-1], headers)
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return sse_response(_stream_chunks(first, events, cid, created, model, include_usage), headers=headers)
    return await _complete(first, events, cid, created, model, headers)


async def _turn_events(api: TurnApi, meta: TurnMeta) -> AsyncIterator[TurnEvent]:
    async for logged in api.chat.follow(meta, 0, heartbeat=api.heartbeat):
        if logged is not None:
            yield logged.event


async def _stream_chunks(
    first: list[TurnEvent],
    rest: AsyncIterator[TurnEvent],
    cid: str,
    created: int,
    model: str,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    yield data_frame(_chunk(cid, created, model, {"role": "assistant", "content": ""}, None))

    async def all_events() -> AsyncIterator[TurnEvent]:
        for event in first:
            yield event
        async for event in rest:
            yield event

    async for event in all_events():
        if isinstance(event, DeltaEvent):
            yield data_frame(_chunk(cid, created, model, {"content": event.text}, None))
        elif isinstance(event, DoneEvent):
            answered_by = event.model or model
            # The finish chunk, the usage chunk and [DONE] go out together, with the end of the response.
            frames = [data_frame(_chunk(cid, created, answered_by, {}, event.finish_reason))]
            if include_usage and event.usage:
                usage = orjson.dumps(
                    {
                        "id": cid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": answered_by,
                        "choices": [],
                        "usage": dict(event.usage),
                    }
                ).decode()
                frames.append(data_frame(usage))
            frames.append(b"data: [DONE]\n\n")
            yield FinalFrame(b"".join(frames))
            return
        elif isinstance(event, ErrorEvent):
            # The OpenAI SDKs raise on an `error` object inside the stream; no [DONE] follows.
            error = {"error": {"message": event.message, "type": "kefu_error", "code": event.code}}
            yield FinalFrame(data_frame(orjson.dumps(error).decode()))
            return


async def _complete(
    first: list[TurnEvent],
    rest: AsyncIterator[TurnEvent],
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
        if isinstance(event, DeltaEvent):
            parts.append(event.text)
        elif isinstance(event, ErrorEvent):
            return _error_response(event, headers)
        elif isinstance(event, DoneEvent):
            body = {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": event.model or model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(parts)},
                        "finish_reason": event.finish_reason,
                    }
                ],
                "usage": dict(event.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}),
            }
            return JSONResponse(body, headers=headers)
