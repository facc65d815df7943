"""Outgoing webhooks: tell the shop's systems (or a 企业微信 group robot) what happens to handed-off conversations.

:meth:`Webhooks.emit` only queues: one INSERT into ``webhook_deliveries``, a row per subscribed target, and a
nudge to this process's dispatcher. The dispatcher (:meth:`Webhooks.start`) claims due rows with a
compare-and-set (:mod:`kefu.store.webhooks`), so several replicas share the queue without sending a delivery
twice at once, POSTs them over one pooled HTTP client, and records the result: a 2xx is delivered, anything else
(another status, a timeout, a refused connection) is retried with backoff until ``max_attempts``, then ``failed``.
A slow or dead receiver therefore never delays a turn, and its deliveries wait in SQL across restarts.

Receivers check ``X-Kefu-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` with
:func:`verify`; the signature is made when the request is sent, so a retry carries a fresh timestamp.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from kefu.obs.logging import get_logger
from kefu.obs.metrics import Metrics
from kefu.store.webhooks import ClaimedDelivery, DeliveryRecord, NewDelivery, WebhookStore

__all__ = [
    "EVENTS",
    "DeliveryRecord",
    "WebhookTarget",
    "Webhooks",
    "sign",
    "verify",
    "wecom_message",
]

log = get_logger("kefu.webhooks")

EVENTS = ("handoff.requested", "conversation.assigned", "message.created", "conversation.closed", "csat.received")

_CONCURRENCY = 10  # requests in flight per process
# How long a claimed delivery stays this process's beyond the send timeout; only a process that died mid-send
# makes another replica wait this long.
_LEASE_MARGIN = 60.0
_PEEK_BYTES = 2048  # of a receiver's answer, for the error text (and WeCom's errcode)
_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where to send which events; ``secret`` signs the ``kefu`` format (WeCom robots get no signature)."""

    name: str
    url: str
    events: frozenset[str]
    secret: str | None = None
    format: Literal["kefu", "wecom"] = "kefu"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Kefu-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, *, tolerance: float = 300, now: float | None = None) -> bool:
    """Whether ``header`` signs exactly ``body`` with ``secret`` and its timestamp is within ``tolerance`` seconds
    of ``now`` (default: the current time); False for a malformed header."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


_TITLES = {
    "handoff.requested": "转人工请求",
    "conversation.assigned": "客服已接入",
    "message.created": "新消息",
    "conversation.closed": "会话结束",
    "csat.received": "满意度评价",
}
_REASONS = {
    "shopper_asked": "顾客要求人工服务",
    "flow": "业务流程转人工",
    "button": "顾客点击“转人工”",
    "model": "智能助手判断需要人工",
    "repeated_failure": "机器人多次未能解答",
    "frustration": "顾客表达不满",
}
_OUTCOMES = {"resolved": "已解决", "unresolved": "未解决", "spam": "无效会话", "back_to_bot": "已回到智能助手"}


def wecom_message(event: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A 企业微信 group-robot markdown message for ``event`` (the body a ``format: wecom`` target receives)."""
    title = _TITLES.get(event, event)
    rows: list[tuple[str, Any]] = [("会话", data.get("session_id"))]
    agent: Mapping[str, Any] = data["agent"] if isinstance(data.get("agent"), Mapping) else {}
    if event == "handoff.requested":
        rows.append(("原因", _reason(data)))
        if data.get("offline"):
            rows.append(("等待", "非工作时间，顾客可留言"))
        elif data.get("position") is not None:
            rows.append(("等待", f"前面还有 {data['position']} 位"))
        rows.append(("流程", data.get("flow")))
    elif event == "conversation.assigned":
        if data.get("transferred"):
            title = "会话已转接"
        rows.append(("客服", agent.get("name")))
    elif event == "message.created":
        rows.append(("来自", f"客服 {agent.get('name', '')}".strip() if data.get("from") == "agent" else "顾客"))
        rows.append(("内容", data.get("text")))
    elif event == "conversation.closed":
        outcome = data.get("outcome")
        rows.append(("结果", _OUTCOMES.get(outcome, outcome) if isinstance(outcome, str) else None))
    elif event == "csat.received":
        score = data.get("score")
        if isinstance(score, int) and 1 <= score <= 5:
            rows.append(("评分", f"{'★' * score}{'☆' * (5 - score)} {score} 分"))
        rows.append(("评价", data.get("comment")))
    lines = [f"**{title}**"] + [f"> {label}：{_inline(value)}" for label, value in rows if value not in (None, "")]
    return {"msgtype": "markdown", "markdown": {"content": "\n".join(lines)}}


def _reason(data: Mapping[str, Any]) -> str | None:
    code = data.get("reason")
    label = _REASONS.get(code, code) if isinstance(code, str) else None
    text = data.get("reason_text")
    if isinstance(text, str) and text.strip() and text.strip() != code:
        return f"{label}（{text.strip()}）" if label else text.strip()
    return label


def _inline(value: Any, limit: int = 200) -> str:
    # One quoted markdown line per field: a newline in shopper text would end the quote and break the layout.
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Webhooks:
    """The outgoing webhook queue of this process and its background dispatcher."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        http: httpx.AsyncClient | None = None,
        metrics: Metrics | None = None,
        max_attempts: int = 8,
        timeout: float = 5.0,
        poll_interval: float = 2.0,
        backoff: Sequence[float] = (1, 5, 30, 120, 600, 1800, 3600),
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not backoff:
            raise ValueError("backoff needs at least one delay")
        self._store = WebhookStore(engine)
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(max_connections=_CONCURRENCY, max_keepalive_connections=_CONCURRENCY),
            headers={"User-Agent": "kefu-webhooks/1"},
        )
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._timeout = timeout
        self._poll_interval = poll_interval
        self._backoff = tuple(float(b) for b in backoff)
        self._lease = timeout + _LEASE_MARGIN
        self._targets: tuple[WebhookTarget, ...] = ()
        self._by_name: dict[str, WebhookTarget] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def use_targets(self, targets: Sequence[WebhookTarget]) -> None:
        """Send future events to ``targets`` (the bot's ``handoff.yaml``; replaced when the bot is reloaded)."""
        self._targets = tuple(targets)
        self._by_name = {t.name: t for t in self._targets}

    @property
    def targets(self) -> tuple[WebhookTarget, ...]:
        """The current targets."""
        return self._targets

    async def emit(self, event: str, data: Mapping[str, Any], *, session_id: str | None = None) -> int:
        """Queue ``event`` for every target subscribed to it (one INSERT; nothing is sent here) and wake the
        dispatcher; returns how many deliveries were queued."""
        if event not in EVENTS:
            raise ValueError(f"unknown webhook event {event!r}")
        targets = [t for t in self._targets if event in t.events]
        if not targets:
            return 0
        now = datetime.now(UTC)
        queued = []
        for target in targets:
            delivery_id = f"wh_{uuid.uuid4().hex}"
            payload = (
                wecom_message(event, data)
                if target.format == "wecom"
                else {"event": event, "id": delivery_id, "created_at": now.isoformat(), "data": data}
            )
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
            queued.append(NewDelivery(delivery_id, event, target.name, target.url, session_id, body, now))
        await self._store.insert(queued)
        self._wake.set()
        return len(queued)

    async def deliver_due(self, limit: int = 20) -> int:
        """Claim up to ``limit`` due deliveries, send them concurrently and record the results; returns how many
        were attempted."""
        claimed = await self._store.claim_due(datetime.now(UTC), lease=self._lease, limit=limit)
        slots = asyncio.Semaphore(_CONCURRENCY)

        async def bounded(item: ClaimedDelivery) -> None:
            async with slots:
                await self._attempt(item)

        await asyncio.gather(*(bounded(item) for item in claimed))
        return len(claimed)

    async def forget_session(self, session_id: str) -> int:
        """Delete a deleted session's deliveries (their bodies quote the conversation)."""
        return await self._store.delete_for_session(session_id)

    async def deliveries(self, limit: int = 100) -> list[DeliveryRecord]:
        """Recent deliveries, newest first, with their attempts and last error (for admins)."""
        return await self._store.recent(limit)

    def start(self) -> None:
        """Run the dispatcher in the background (from inside the event loop); a no-op while it runs."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="kefu-webhooks")

    async def stop(self) -> None:
        """Stop the dispatcher (sends in flight get up to the timeout to finish) and close an own HTTP client."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._owns_http:
            await self._http.aclose()

    async def _run(self) -> None:
        inflight: set[asyncio.Task[None]] = set()
        try:
            while True:
                self._wake.clear()
                room = _CONCURRENCY - len(inflight)
                claimed = await self._claim(room) if room > 0 else []
                for item in claimed:
                    task = asyncio.create_task(self._attempt(item), name=f"kefu-webhook-{item.id}")
                    inflight.add(task)
                    task.add_done_callback(functools.partial(self._finished, inflight))
                # A full batch means more may be due: look again at once (or when a slot frees up).
                if room == 0 or len(claimed) < room:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._poll_interval)
        finally:
            if inflight:
                _, unfinished = await asyncio.wait(inflight, timeout=self._timeout)
                for task in unfinished:
                    task.cancel()

    def _finished(self, inflight: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
        was_full = len(inflight) >= _CONCURRENCY
        inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook_attempt_crashed", error=repr(task.exception()))
        if was_full:
            self._wake.set()

    async def _claim(self, limit: int) -> list[ClaimedDelivery]:
        try:
            return await self._store.claim_due(datetime.now(UTC), lease=self._lease, limit=limit)
        except Exception as exc:  # the database may be briefly away: try again on the next tick
            log.warning("webhook_claim_failed", error=repr(exc))
            return []

    async def _attempt(self, item: ClaimedDelivery) -> None:
        target = self._by_name.get(item.target)
        status: int | None = None
        error: str | None
        if target is None:
            error = "target is no longer configured"
        else:
            try:
                status, error = await self._send(item, target)
            except Exception as exc:  # a bad URL and the like: recorded like any failed attempt
                error = _describe(exc)
        try:
            result = await self._record(item, status, error, give_up=target is None)
        except Exception as exc:  # the lease runs out and the delivery is claimed again
            log.warning("webhook_record_failed", delivery_id=item.id, target=item.target, error=repr(exc))
            return
        if self._metrics is not None:
            self._metrics.webhook_deliveries.labels(event=item.event, result=result).inc()
        fields = {
            "delivery_id": item.id,
            "webhook_event": item.event,
            "target": item.target,
            "attempt": item.attempt,
            "status": status,
        }
        if result == "delivered":
            log.info("webhook_delivered", **fields)
        elif result == "retry":
            log.warning("webhook_retry", error=error, **fields)
        else:
            log.error("webhook_failed", error=error, **fields)

    async def _record(self, item: ClaimedDelivery, status: int | None, error: str | None, *, give_up: bool) -> str:
        now = datetime.now(UTC)
        if error is None and status is not None:
            await self._store.mark_delivered(item, status=status, now=now)
            return "delivered"
        error = (error or "no answer")[:_ERROR_CHARS]
        if give_up or item.attempt >= self._max_attempts:
            await self._store.mark_failed(item, status=status, error=error, retry_at=None)
            return "failed"
        delay = self._backoff[min(item.attempt, len(self._backoff)) - 1]
        await self._store.mark_failed(item, status=status, error=error, retry_at=now + timedelta(seconds=delay))
        if self._task is not None and delay < self._poll_interval:
            asyncio.get_running_loop().call_later(delay, self._wake.set)
        return "retry"

    async def _send(self, item: ClaimedDelivery, target: WebhookTarget) -> tuple[int | None, str | None]:
        """POST one delivery: ``(HTTP status or None, error or None when delivered)``."""
        body = item.body.encode()
        headers = {"Content-Type": "application/json", "X-Kefu-Event": item.event, "X-Kefu-Delivery": item.id}
        if target.secret and target.format == "kefu":
            headers["X-Kefu-Signature"] = sign(target.secret, int(time.time()), body)
        try:
            # The whole exchange is bounded (httpx's timeout is per phase), so it always ends within the lease.
            async with asyncio.timeout(self._timeout):
                async with self._http.stream("POST", item.url, content=body, headers=headers) as response:
                    peek = await _peek(response)
        except (TimeoutError, httpx.TimeoutException):
            return None, f"timeout after {self._timeout:g}s"
        except httpx.HTTPError as exc:
            return None, _describe(exc)
        status = response.status_code
        text = peek.decode(errors="replace").strip()
        if not 200 <= status < 300:
            return status, f"HTTP {status}: {text}" if text else f"HTTP {status}"
        if target.format == "wecom":
            return status, _wecom_error(text)
        return status, None


async def _peek(response: httpx.Response) -> bytes:
    seen = b""
    async for chunk in response.aiter_bytes():
        seen += chunk
        if len(seen) >= _PEEK_BYTES:
            break
    return seen[:_PEEK_BYTES]


def _wecom_error(text: str) -> str | None:
    # A WeCom robot answers HTTP 200 even when it refuses the message; its JSON errcode says whether it took it.
    try:
        answer = json.loads(text)
    except ValueError:
        return None
    if isinstance(answer, dict) and answer.get("errcode") not in (None, 0):
        return f"wecom errcode {answer.get('errcode')}: {answer.get('errmsg', '')}".strip()
    return None


def _describe(exc: BaseException) -> str:
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
