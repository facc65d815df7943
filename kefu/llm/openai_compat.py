"""Streaming client for OpenAI-compatible chat-completions APIs (DeepSeek by default).

The hot path is the loop in :meth:`OpenAICompatModel.stream`: bytes from the socket (aiohttp's C response
parser, pooled keep-alive connections) go to the pure, incremental :class:`~kefu.llm.decoder.ChatStreamDecoder`
(SSE framing, each event's bytes straight into ``orjson.loads``, only non-empty deltas become events); the loop
itself only reads, yields, and minds the time. Timeouts are enforced by a lazy
:class:`~kefu.llm.watchdog.Watchdog` instead of a timer per chunk. After the first content token, reads are
paced (``read_pace``): the socket is left unread until the next tick of a grid shared with the turn-log writer
(:mod:`kefu.ticks`), so the kernel gathers the chunks that arrive meanwhile and all streams are read in one
wake-up per tick, not one per chunk. The wire format helpers live in :mod:`kefu.llm.openai_wire`, the
connection pool in :mod:`kefu.llm.http_pool`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from yarl import URL

from kefu.errors import (
    FirstTokenTimeout,
    IdleTimeout,
    UpstreamConnectError,
    UpstreamProtocolError,
)
from kefu.llm.auth import TokenSource, token_source_from_settings
from kefu.llm.base import (
    ChatRequest,
    Finish,
    ModelEvent,
    ReasoningDelta,
    TextDelta,
    ToolCall,
)
from kefu.llm.decoder import DONE, STARTED, ChatStreamDecoder
from kefu.llm.http_pool import SessionPool, env_proxy
from kefu.llm.openai_wire import (
    ToolCallAssembler,
    message_to_wire,
    overloaded_finish_error,
    parse_usage,
    retry_after,
    status_error,
    stream_error,
)
from kefu.llm.watchdog import Watchdog
from kefu.ticks import sleep_until_tick

if TYPE_CHECKING:
    from kefu.config import Settings

__all__ = [
    "OpenAICompatModel",
    "ToolCallAssembler",
    "overloaded_finish_error",
    "parse_usage",
    "retry_after",
    "status_error",
    "stream_error",
]

# After [DONE] the rest of the body (the chunked terminator) is read so the connection can be reused; an
# upstream that keeps the body open after [DONE] costs at most this long.
_DRAIN_SECONDS = 1.0
_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "text/event-stream",
    "Accept-Encoding": "identity",  # lets the hot loop read raw bytes without a decoder
}


async def _paced(response: aiohttp.ClientResponse, pace: float) -> None:
    """Leave the socket unread until the next tick, so what the upstream sends meanwhile is read in one go.

    Only the transport is paused, and only while the response still holds its connection and aiohttp has not
    paused it itself (flow control); once the body has ended aiohttp hands the connection back to the pool, and
    it is never touched after that.
    """
    connection = response.connection
    transport = connection.transport if connection is not None else None
    is_reading = getattr(transport, "is_reading", None)  # every asyncio/uvloop transport has it; be lenient
    if transport is None or is_reading is None or not is_reading():
        await sleep_until_tick(pace)
        return
    transport.pause_reading()
    try:
        await sleep_until_tick(pace)
    finally:
        if response.connection is connection and not transport.is_closing():
            transport.resume_reading()


class _Lease:
    """What one request holds: its watchdog, its pooled session slot, and its response once there is one."""

    __slots__ = ("at_eof", "dog", "response", "shard", "started")

    def __init__(self, dog: Watchdog, shard: int) -> None:
        self.dog = dog
        self.shard = shard
        self.response: aiohttp.ClientResponse | None = None
        self.at_eof = False  # the body was read to its end: the connection can be reused
        self.started = False  # the first content token arrived (a timeout from now on is an idle timeout)


class OpenAICompatModel:
    """A :class:`~kefu.llm.base.ChatModel` speaking the OpenAI chat-completions wire format.

    Connections are pooled and kept alive per instance (one instance per upstream); internally the pool is split
    into sessions of at most 32 connections, opened as load needs them. ``first_token_timeout`` counts from
    the request start to the first content token (text, reasoning or tool call; keep-alive comments and the
    empty role chunk do not count); ``idle_timeout`` is the longest wait for the next event after that (comments
    do not count either). ``read_pace`` (seconds, 0 = off) paces reads after the first content token: text then
    arrives in batches at most that often, which the turn's coalesced frames do anyway. Iterate one stream from
    one task.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        auth: TokenSource,
        *,
        connect_timeout: float = 5.0,
        first_token_timeout: float = 30.0,
        idle_timeout: float = 30.0,
        max_connections: int = 1000,
        http_client: aiohttp.ClientSession | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        read_pace: float = 0.0,
    ) -> None:
        self._url_text = base_url.rstrip("/") + "/chat/completions"
        try:
            self._url: URL | None = URL(self._url_text)
        except ValueError:
            self._url = None  # reported as a non-retryable connect error on use
        split = URL(base_url) if self._url is not None else None
        host = split.host if split is not None and split.host else base_url
        port = split.explicit_port if split is not None else None
        self._name = f"{host}{f':{port}' if port else ''}/{model}"
        self._model = model
        self._auth = auth
        self._owns_auth = False
        self._first_token_timeout = first_token_timeout
        self._idle_timeout = idle_timeout
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._read_pace = read_pace
        self._send_stream_options = True
        self._pool = SessionPool(max_connections=max_connections, connect_timeout=connect_timeout, session=http_client)
        self._proxy, self._proxy_auth = env_proxy(self._url) if self._url is not None else (None, None)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, http_client: aiohttp.ClientSession | None = None
    ) -> OpenAICompatModel:
        """The provider ``KEFU_LLM_*`` describes (call only when ``settings.llm_configured``)."""
        model = cls(
            settings.llm_base_url,
            settings.llm_model,
            token_source_from_settings(settings),
            connect_timeout=settings.llm_connect_timeout,
            first_token_timeout=settings.llm_first_token_timeout,
            idle_timeout=settings.llm_idle_timeout,
            max_connections=settings.llm_max_connections,
            http_client=http_client,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
            read_pace=settings.coalesce_ms / 1000,
        )
        model._owns_auth = True
        return model

    @property
    def name(self) -> str:
        """Provider host and model, e.g. ``api.deepseek.com/deepseek-chat``."""
        return self._name

    @property
    def model(self) -> str:
        """The default model id."""
        return self._model

    @property
    def _clients(self) -> list[aiohttp.ClientSession]:
        """The pooled sessions opened so far (for tests and diagnostics)."""
        return self._pool.sessions

    @property
    def _busy(self) -> list[int]:
        """Streams in flight per pooled session."""
        return self._pool.busy

    async def aclose(self) -> None:
        """Close pooled connections (and the token source if this instance created it)."""
        await self._pool.aclose()
        closer = getattr(self._auth, "aclose", None)
        if self._owns_auth and closer is not None:
            await closer()

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        """Stream one chat completion; see :class:`~kefu.llm.base.ChatModel`."""
        payload = self._payload(request)
        with self._lease() as lease:
            response = lease.response = await self._open(self._pool.sessions[lease.shard], payload)
            if "json" in response.headers.get("Content-Type", ""):
                body = await response.read()
                lease.at_eof = lease.started = True
                for item in self._plain_completion(body, payload["model"]):
                    yield item
                return
            decoder = ChatStreamDecoder(self._name, payload["model"])
            dog = lease.dog
            feed, readany, now, pace = decoder.feed, response.content.readany, dog.now, self._read_pace
            paced = False
            try:
                while True:
                    if paced:
                        await _paced(response, pace)
                    chunk = await readany()
                    dog.waiting = False
                    if not chunk:
                        lease.at_eof = True
                        break
                    seen = decoder.dispatched
                    events = feed(chunk)
                    if decoder.changes:
                        paced = self._on_changes(decoder, lease) and pace > 0
                    for event in events:
                        yield event
                    if decoder.error is not None:
                        raise decoder.error
                    # Only events count as activity: keep-alive comments must not hold a dead stream open.
                    if decoder.started and decoder.dispatched != seen:
                        dog.since = now()
                    dog.waiting = True
            except asyncio.CancelledError:
                if not (decoder.done and dog.consume_cancel()):
                    raise
            except aiohttp.ClientError as exc:
                if not decoder.done:
                    raise UpstreamProtocolError(
                        f"stream from {self._name} broke: {exc!r}", provider=self._name
                    ) from exc
            finally:
                dog.waiting = False
            for item in decoder.end():
                yield item

    @contextmanager
    def _lease(self) -> Iterator[_Lease]:
        """One request's watchdog, pooled session slot and response; our own cancel becomes the timeout it means."""
        lease = _Lease(Watchdog(self._first_token_timeout), self._pool.acquire())
        try:
            try:
                yield lease
            finally:
                # A body read to its end hands the connection back for reuse; anything else (a consumer that
                # stopped early, a timeout, a broken stream) closes it, which also aborts the upstream request.
                if lease.response is not None:
                    if lease.at_eof:
                        lease.response.release()
                    else:
                        lease.response.close()
        except asyncio.CancelledError:
            if not lease.dog.consume_cancel():
                raise
            if lease.started:
                raise IdleTimeout(
                    f"{self._name} sent nothing for {self._idle_timeout:g}s", provider=self._name
                ) from None
            raise FirstTokenTimeout(
                f"{self._name} sent no content within {self._first_token_timeout:g}s", provider=self._name
            ) from None
        finally:
            lease.dog.stop()
            self._pool.release(lease.shard)

    def _on_changes(self, decoder: ChatStreamDecoder, lease: _Lease) -> bool:
        """Start the watchdog's next phase on the first token and on [DONE]; return whether to pace reads.

        Reads are paced from the first token until the finish reason: after it only [DONE] and usage are left,
        which are read at once.
        """
        changes = decoder.changes
        decoder.changes = 0
        if changes & STARTED:
            lease.started = True
            lease.dog.restart(self._idle_timeout)
        if changes & DONE:
            lease.dog.restart(min(self._idle_timeout, _DRAIN_SECONDS))
        return decoder.started and not decoder.done and decoder.finish_reason is None

    async def _open(self, session: aiohttp.ClientSession, payload: dict[str, Any]) -> aiohttp.ClientResponse:
        """Send the request; return a streaming response with a 2xx status or raise the mapped error."""
        if self._url is None or self._url.scheme not in ("http", "https"):
            raise UpstreamConnectError(
                f"cannot reach {self._name}: unsupported URL {self._url_text!r} (use http:// or https://)",
                provider=self._name,
                retryable=False,
            )
        for attempt in range(2):
            if self._send_stream_options:
                payload["stream_options"] = {"include_usage": True}
            else:
                payload.pop("stream_options", None)
            token = await self._auth.token()
            headers = _HEADERS if not token else {**_HEADERS, "Authorization": f"Bearer {token}"}
            try:
                response = await session.request(
                    "POST",
                    self._url,
                    data=orjson.dumps(payload),
                    headers=headers,
                    proxy=self._proxy,
                    proxy_auth=self._proxy_auth,
                )
            except aiohttp.InvalidURL as exc:
                raise UpstreamConnectError(
                    f"cannot reach {self._name}: {exc!r}", provider=self._name, retryable=False
                ) from exc
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise UpstreamConnectError(f"cannot reach {self._name}: {exc!r}", provider=self._name) from exc
            status = response.status
            if status < 300:
                return response
            try:
                body = await response.read()
            except (aiohttp.ClientError, OSError):
                body = b""
            finally:
                response.release()
            if status in (400, 422) and attempt == 0 and "stream_options" in payload and b"stream_options" in body:
                # An OpenAI-compatible server that does not know stream_options: drop it for good.
                self._send_stream_options = False
                continue
            if status == 401:
                invalidate = getattr(self._auth, "invalidate", None)
                if invalidate is not None:
                    invalidate()
            raise status_error(status, response.headers, body, self._name)
        raise AssertionError("unreachable")  # pragma: no cover

    def _plain_completion(self, body: bytes, requested_model: str) -> list[ModelEvent]:
        """Events for a non-streamed ``chat.completion`` body (an upstream that ignored ``stream``)."""
        try:
            obj = orjson.loads(body)
            if obj.get("error"):
                raise stream_error(obj["error"], self._name)
            choice = obj["choices"][0]
            message = choice.get("message") or {}
        except (orjson.JSONDecodeError, AttributeError, KeyError, IndexError, TypeError) as exc:
            raise UpstreamProtocolError(
                f"unreadable completion from {self._name}: {body[:200]!r}", provider=self._name
            ) from exc
        events: list[ModelEvent] = []
        if message.get("reasoning_content"):
            events.append(ReasoningDelta(message["reasoning_content"]))
        if message.get("content"):
            events.append(TextDelta(message["content"]))
        calls: tuple[ToolCall, ...] = ()
        if message.get("tool_calls"):
            tools = ToolCallAssembler()
            fragments = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
            events.extend(tools.add(fragments))
            calls = tools.finished()
        reason = choice.get("finish_reason") or "stop"
        if reason == "insufficient_system_resource":
            raise overloaded_finish_error(self._name)
        if obj.get("usage"):
            events.append(parse_usage(obj["usage"]))
        events.append(Finish(reason, obj.get("model") or requested_model, calls))
        return events

    def _payload(self, request: ChatRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": request.model or self._model,
            "messages": [message_to_wire(m) for m in request.messages],
            "stream": True,
        }
        max_tokens = request.max_tokens if request.max_tokens is not None else self._max_tokens
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        temperature = request.temperature if request.temperature is not None else self._temperature
        if temperature is not None:
            payload["temperature"] = temperature
        if request.tools:
            payload["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in request.tools
            ]
        if request.user:
            payload["user"] = request.user
        return payload
