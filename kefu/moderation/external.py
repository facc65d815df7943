"""An external moderation endpoint (a cloud text-moderation service behind a small adapter of the shop's).

kefu POSTs ``{"text", "where"}`` and expects ``{"action": "allow|flag|mask|block", "category": str}`` (and, for
``block``, an optional ``reply``). It is asked about shopper messages only (the model's output is checked by the
lexicon as it streams; a round trip per chunk would cost the first token). A slow or failing endpoint never hangs
a turn: after ``timeout`` seconds in all (connecting included) the configured ``on_error`` applies.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from typing import Any, Literal

import httpx

from kefu.moderation.lexicon import DEFAULT_REPLY
from kefu.moderation.verdict import Hit, Verdict
from kefu.obs.logging import get_logger
from kefu.obs.metrics import Metrics

log = get_logger("kefu.moderation")

_ACTIONS = ("allow", "flag", "mask", "block")
_CATEGORY = re.compile(r"[^A-Za-z0-9_.-]")
UNAVAILABLE = "external_unavailable"  # the category of an on_error verdict


class ExternalModeration:
    """Client of one external moderation endpoint (its connection pool opens on the first check)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 1.0,
        on_error: Literal["allow", "block"] = "allow",
        api_key: str | None = None,
        default_reply: str = DEFAULT_REPLY,
        metrics: Metrics | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.on_error = on_error
        self.default_reply = default_reply
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._metrics = metrics
        self._transport = transport
        self._mounts = dict(mounts) if mounts else None
        self._client: httpx.AsyncClient | None = None

    async def check(self, text: str, *, where: str) -> Verdict:
        """The endpoint's verdict; ``on_error`` when it fails, times out or answers nonsense."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._http().post(self.url, json={"text": text, "where": where})
            response.raise_for_status()
            verdict = self._verdict(text, response.json())
            result = verdict.action
        except (httpx.HTTPError, TimeoutError, ValueError) as exc:
            log.warning("external_moderation_failed", url=self.url, error=type(exc).__name__)
            verdict, result = self._failed(text), "error"
        if self._metrics is not None:
            self._metrics.moderation_external.labels(result=result).inc()
            self._metrics.moderation_external_seconds.observe(time.perf_counter() - started)
        return verdict

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout, headers=self._headers, transport=self._transport, mounts=self._mounts
            )
        return self._client

    def _verdict(self, text: str, data: Any) -> Verdict:
        action = data.get("action") if isinstance(data, dict) else None
        if action not in _ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        if action == "allow":
            return Verdict("allow", text=text)
        category = _CATEGORY.sub("_", str(data.get("category") or "external"))[:48]
        reply = data.get("reply")
        reply = reply if isinstance(reply, str) and reply.strip() else self.default_reply
        return self._judged(text, action, category, reply)

    def _failed(self, text: str) -> Verdict:
        if self.on_error == "allow":
            return Verdict("allow", text=text)
        return self._judged(text, "block", UNAVAILABLE, self.default_reply)

    @staticmethod
    def _judged(text: str, action: str, category: str, reply: str) -> Verdict:
        # No positions from the endpoint: its verdict covers the whole message (a "mask" stars all of it).
        hit = Hit(0, len(text), "", category, action)
        masked = "".join("*" if ch.isalnum() else ch for ch in text) if action == "mask" else text
        return Verdict(action, (category,), masked, reply if action == "block" else None, (hit,))
