"""Streaming client for OpenAI-compatible chat-completions APIs (DeepSeek by default).

The hot path is the loop in :meth:`OpenAICompatModel.stream`: bytes from the socket go through the
incremental :class:`~kefu.llm.sse.SSEParser`, each event's bytes straight into ``orjson.loads``, and only
non-empty deltas become events. Timeouts are enforced by a lazy :class:`_Watchdog` instead of a timer per chunk.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import orjson

from kefu.errors import (
    FirstTokenTimeout,
    IdleTimeout,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
)
from kefu.llm.auth import TokenSource, token_source_from_settings
from kefu.llm.base import (
    ChatMessage,
    ChatRequest,
    Finish,
    ModelEvent,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from kefu.llm.sse import SSEParser

if TYPE_CHECKING:
    from kefu.config import Settings

_DONE = b"[DONE]"
# After [DONE] the rest of the body (the chunked terminator) is read so the connection can be reused; an
# upstream that keeps the body open after [DONE] costs at most this long.
_DRAIN_SECONDS = 1.0
# httpcore's pool does O(queued requests x connections) work whenever a request starts or ends; at 1000
# connections in one pool a burst of requests starves the event loop (connect timeouts). Several small pools
# (one logical pool per upstream) keep that work bounded.
_CONNECTIONS_PER_SHARD = 32


class _Watchdog:
    """Cancels the consuming task when the upstream keeps us waiting too long.

    ``since`` is when the current wait started (the request start before the first content token; after it, the
    end of the last read that carried an event). ``waiting`` is true only while the stream awaits the upstream,
    never while it is suspended at a ``yield``, so a slow consumer is not blamed on the upstream. Per chunk this
    costs a couple of attribute writes; the timer re-arms only when it fires.
    """

    __slots__ = ("_baseline", "_handle", "_loop", "_task", "fired", "limit", "since", "waiting")

    def __init__(self, limit: float) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - async generators always run inside a task
            raise RuntimeError("stream() must run inside an asyncio task")
        self._task = task
        self._baseline = task.cancelling()
        self.fired = False
        self.waiting = True
        self.limit = limit
        self.since = self._loop.time()
        self._handle = self._loop.call_at(self.since + limit, self._fire)

    def restart(self, limit: float) -> None:
        """Start a new phase with another limit, counted from now."""
        self.limit = limit
        self.since = self._loop.time()
        self._handle.cancel()
        self._handle = self._loop.call_at(self.since + limit, self._fire)

    def _fire(self) -> None:
        now = self._loop.time()
        if self.waiting:
            due = self.since + self.limit
            if now >= due:
                self.fired = True
                self._task.cancel()
                return
        else:
            due = now + self.limit
        self._handle = self._loop.call_at(due, self._fire)

    def consume_cancel(self) -> bool:
        """True if the CancelledError being handled is ours alone (then it is absorbed)."""
        if not self.fired:
            return False
        self.fired = False
        return self._task.uncancel() <= self._baseline

    def stop(self) -> None:
        """Disarm."""
        self._handle.cancel()


class OpenAICompatModel:
    """A :class:`~kefu.llm.base.ChatModel` speaking the OpenAI chat-completions wire format.

    Connections are pooled and kept alive per instance (one instance per upstream); internally the pool is split
    into httpx clients of at most 32 connections, opened as load needs them. ``first_token_timeout`` counts from
    the request start to the first content token (text, reasoning or tool call; keep-alive comments and the
    empty role chunk do not count); ``idle_timeout`` is the longest wait for the next event after that (comments
    do not count either). Iterate one stream from one task.
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
        http_client: httpx.AsyncClient | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        split = urlsplit(base_url)
        self._name = f"{split.hostname or base_url}{f':{split.port}' if split.port else ''}/{model}"
        self._model = model
        self._auth = auth
        self._owns_auth = False
        self._first_token_timeout = first_token_timeout
        self._idle_timeout = idle_timeout
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._send_stream_options = True
        self._owns_client = http_client is None
        self._connect_timeout = connect_timeout
        self._max_shards = math.ceil(max_connections / _CONNECTIONS_PER_SHARD)
        self._per_shard = math.ceil(max_connections / self._max_shards)
        self._ssl: ssl.SSLContext | None = None
        self._clients = [http_client] if http_client is not None else [self._new_client()]
        self._busy = [0]

    @classmethod
    def from_settings(cls, settings: Settings, *, http_client: httpx.AsyncClient | None = None) -> OpenAICompatModel:
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

    async def aclose(self) -> None:
        """Close pooled connections (and the token source if this instance created it)."""
        if self._owns_client:
            for client in self._clients:
                await client.aclose()
        closer = getattr(self._auth, "aclose", None)
        if self._owns_auth and closer is not None:
            await closer()

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        """Stream one chat completion; see :class:`~kefu.llm.base.ChatModel`."""
        payload = self._payload(request)
        dog = _Watchdog(self._first_token_timeout)
        started = False
        busy = self._busy
        shard = self._pick_shard()
        busy[shard] += 1
        try:
            response = await self._open(self._clients[shard], payload)
            try:
                if "json" in response.headers.get("content-type", ""):
                    body = await response.aread()
                    started = True
                    for item in self._plain_completion(body, payload["model"]):
                        yield item
                    return
                parser = SSEParser()
                feed = parser.feed
                loads = orjson.loads
                now = dog._loop.time
                done = False
                model: str | None = None
                finish_reason: str | None = None
                usage: Any = None
                tools: ToolCallAssembler | None = None
                encoded = response.headers.get("content-encoding", "identity") != "identity"
                chunks = response.aiter_bytes() if encoded else response.aiter_raw()
                try:
                    async for chunk in chunks:
                        dog.waiting = False
                        events = feed(chunk)
                        for sse in events:
                            raw = sse.raw
                            if done:
                                continue
                            if raw == _DONE:
                                done = True
                                dog.restart(min(self._idle_timeout, _DRAIN_SECONDS))
                                continue
                            try:
                                obj = loads(raw)
                                if sse.event == "error" or obj.get("error"):
                                    raise stream_error(obj.get("error") or obj, self._name)
                            except (orjson.JSONDecodeError, AttributeError) as exc:
                                raise UpstreamProtocolError(
                                    f"unreadable stream chunk from {self._name}: {raw[:200]!r}",
                                    provider=self._name,
                                ) from exc
                            if model is None:
                                model = obj.get("model")
                            if obj.get("usage"):
                                usage = obj["usage"]
                            choices = obj.get("choices")
                            if not choices:
                                continue
                            choice = choices[0]
                            if choice.get("finish_reason"):
                                finish_reason = choice["finish_reason"]
                            delta = choice.get("delta")
                            if not delta:
                                continue
                            content = delta.get("content")
                            reasoning = delta.get("reasoning_content")
                            calls = delta.get("tool_calls")
                            if not (content or reasoning or calls):
                                continue
                            if not started:
                                started = True
                                dog.restart(self._idle_timeout)
                            if reasoning:
                                yield ReasoningDelta(reasoning)
                            if content:
                                yield TextDelta(content)
                            if calls:
                                if tools is None:
                                    tools = ToolCallAssembler()
                                for call_delta in tools.add(calls):
                                    yield call_delta
                        # Only events count as activity: keep-alive comments must not hold a dead stream open.
                        if events and started:
                            dog.since = now()
                        dog.waiting = True
                except asyncio.CancelledError:
                    if not (done and dog.consume_cancel()):
                        raise
                except httpx.TransportError as exc:
                    if not done:
                        raise UpstreamProtocolError(
                            f"stream from {self._name} broke: {exc!r}", provider=self._name
                        ) from exc
                finally:
                    dog.waiting = False
                    await chunks.aclose()  # type: ignore[attr-defined]
                if not done:
                    done = any(sse.raw == _DONE for sse in parser.flush())
                if not done:
                    raise UpstreamProtocolError(f"stream from {self._name} ended without [DONE]", provider=self._name)
                if finish_reason == "insufficient_system_resource":
                    raise overloaded_finish_error(self._name)
                if usage:
                    yield parse_usage(usage)
                yield Finish(
                    finish_reason or "stop",
                    model or payload["model"],
                    tools.finished() if tools is not None else (),
                )
            finally:
                await response.aclose()
        except asyncio.CancelledError:
            if not dog.consume_cancel():
                raise
            if started:
                raise IdleTimeout(
                    f"{self._name} sent nothing for {self._idle_timeout:g}s", provider=self._name
                ) from None
            raise FirstTokenTimeout(
                f"{self._name} sent no content within {self._first_token_timeout:g}s", provider=self._name
            ) from None
        finally:
            dog.stop()
            busy[shard] -= 1

    def _new_client(self) -> httpx.AsyncClient:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()  # shared: building one costs tens of milliseconds
        return httpx.AsyncClient(
            verify=self._ssl,
            # Reads are bounded by the watchdog (keep-alive bytes would reset httpx's per-read timeout anyway).
            timeout=httpx.Timeout(connect=self._connect_timeout, read=None, write=None, pool=None),
            limits=httpx.Limits(max_connections=self._per_shard, max_keepalive_connections=self._per_shard),
        )

    def _pick_shard(self) -> int:
        """The first pool with a free connection slot, opening another pool (up to the limit) when all are full."""
        busy = self._busy
        if not self._owns_client:
            return 0
        for index, in_flight in enumerate(busy):
            if in_flight < self._per_shard:
                return index
        if len(busy) < self._max_shards:
            self._clients.append(self._new_client())
            busy.append(0)
            return len(busy) - 1
        return busy.index(min(busy))

    async def _open(self, client: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
        """Send the request; return a streaming response with a 2xx status or raise the mapped error."""
        for attempt in range(2):
            if self._send_stream_options:
                payload["stream_options"] = {"include_usage": True}
            else:
                payload.pop("stream_options", None)
            token = await self._auth.token()
            headers = {
                "Content-Type": "application/json",
                "Accept": "text/event-stream",
                "Accept-Encoding": "identity",  # lets the hot loop read raw bytes without a decoder
            }
            if token:
                headers["Authorization"] = f"Bearer {token}"
            request = client.build_request("POST", self._url, content=orjson.dumps(payload), headers=headers)
            try:
                response = await client.send(request, stream=True)
            except httpx.TransportError as exc:
                raise UpstreamConnectError(
                    f"cannot reach {self._name}: {exc!r}",
                    provider=self._name,
                    retryable=not isinstance(exc, httpx.UnsupportedProtocol),
                ) from exc
            if response.status_code < 300:
                return response
            try:
                body = await response.aread()
            except httpx.TransportError:
                body = b""
            finally:
                await response.aclose()
            if (
                response.status_code in (400, 422)
                and attempt == 0
                and "stream_options" in payload
                and b"stream_options" in body
            ):
                # An OpenAI-compatible server that does not know stream_options: drop it for good.
                self._send_stream_options = False
                continue
            if response.status_code == 401:
                invalidate = getattr(self._auth, "invalidate", None)
                if invalidate is not None:
                    invalidate()
            raise status_error(response.status_code, response.headers, body, self._name)
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
            "messages": [_message(m) for m in request.messages],
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


def _message(message: ChatMessage) -> dict[str, Any]:
    """One message in OpenAI format (reasoning is never sent back)."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name:
        out["name"] = message.name
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
        if not message.content:
            out["content"] = None
    return out


class _ToolCallSlot:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []


class ToolCallAssembler:
    """Joins streamed tool-call fragments into whole calls.

    Fragments are grouped by ``index``; a fragment whose ``id`` differs from the call open at that index starts
    a new call (some compatible servers reuse index 0 for parallel calls).
    """

    __slots__ = ("_by_index", "_calls")

    def __init__(self) -> None:
        self._calls: list[_ToolCallSlot] = []
        self._by_index: dict[int, _ToolCallSlot] = {}

    def add(self, fragments: list[Any]) -> list[ToolCallDelta]:
        """Record fragments (wire dicts); return them as events."""
        out: list[ToolCallDelta] = []
        for fragment in fragments:
            index = fragment.get("index") or 0
            call_id = fragment.get("id") or None
            function = fragment.get("function") or {}
            name = function.get("name") or None
            arguments = function.get("arguments") or ""
            slot = self._by_index.get(index)
            if slot is None or (call_id and slot.id and call_id != slot.id):
                slot = _ToolCallSlot()
                self._calls.append(slot)
                self._by_index[index] = slot
            if call_id:
                slot.id = call_id
            if name and slot.name is None:
                slot.name = name
            if arguments:
                slot.arguments.append(arguments)
            out.append(ToolCallDelta(index, call_id, name, arguments))
        return out

    def finished(self) -> tuple[ToolCall, ...]:
        """The complete calls, in the order they started."""
        return tuple(
            ToolCall(slot.id or f"call_{i}", slot.name or "", "".join(slot.arguments))
            for i, slot in enumerate(self._calls)
        )


_BASE_USAGE = frozenset({"prompt_tokens", "completion_tokens", "total_tokens"})


def parse_usage(raw: Mapping[str, Any]) -> Usage:
    """A wire ``usage`` object as :class:`Usage`; other integer counts (nested ones flattened) go to ``extra``."""
    extra: dict[str, int] = {}
    for key, value in raw.items():
        if key in _BASE_USAGE:
            continue
        if type(value) is int:
            extra[key] = value
        elif isinstance(value, dict):
            for inner, count in value.items():
                if type(count) is int:
                    extra.setdefault(inner, count)
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    return Usage(prompt, completion, int(raw.get("total_tokens") or prompt + completion), extra)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), if given."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _provider_message(body: bytes) -> str | None:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    error = obj.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    for value in (error, obj.get("message"), obj.get("detail")):
        if isinstance(value, str) and value:
            return value
    return None


def status_error(status: int, headers: Mapping[str, str], body: bytes, provider: str) -> UpstreamStatusError:
    """The error for an HTTP error status, with the provider's own message when its body has one."""
    text = body.decode("utf-8", "replace")
    detail = _provider_message(body) or text[:200].strip() or "no details"
    return UpstreamStatusError(
        f"{provider} answered HTTP {status}: {detail}",
        status_code=status,
        retry_after=retry_after(headers),
        provider=provider,
        body=text[:2000],
    )


_OVERLOAD_WORDS = (
    "overload",
    "rate limit",
    "rate_limit",
    "capacity",
    "busy",
    "unavailable",
    "resource",
    "try again",
    "timeout",
    "429",
    "500",
    "502",
    "503",
    "504",
    "server_error",
)


def stream_error(error: Any, provider: str) -> UpstreamError:
    """The error for an ``{"error": …}`` object inside a stream; retryable when it reads like overload."""
    if isinstance(error, dict):
        message = str(error.get("message") or error)
        kind = f"{error.get('type') or ''} {error.get('code') or ''}"
    else:
        message, kind = str(error), ""
    haystack = f"{message} {kind}".lower()
    overloaded = any(word in haystack for word in _OVERLOAD_WORDS)
    return UpstreamError(
        f"{provider} reported an error mid-stream: {message}",
        code="upstream_overloaded" if overloaded else "upstream_stream_error",
        retryable=overloaded,
        provider=provider,
    )


def overloaded_finish_error(provider: str) -> UpstreamError:
    """DeepSeek's ``insufficient_system_resource`` finish: the answer was cut for lack of capacity."""
    return UpstreamError(
        f"{provider} stopped the answer: insufficient system resource",
        code="upstream_overloaded",
        retryable=True,
        provider=provider,
    )
