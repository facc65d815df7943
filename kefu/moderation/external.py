"""An external moderation endpoint (a cloud text-moderation service behind a small adapter of the shop's).

kefu POSTs ``{"text", "where"}`` and expects ``{"action": "allow|flag|mask|block", "category": str}``. It is asked
about shopper messages only (the model's output is checked by the lexicon as it streams; a round trip per chunk
would cost the first token). A slow or failing endpoint never hangs a turn: after ``timeout`` the configured
``on_error`` applies.
"""

from __future__ import annotations

import os
from typing import Literal

import httpx

from kefu.moderation.lexicon import Hit, Verdict
from kefu.obs.logging import get_logger

log = get_logger("kefu.moderation")

_ACTIONS = ("allow", "flag", "mask", "block")


class ExternalModeration:
    """Client of one external moderation endpoint."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 1.0,
        on_error: Literal["allow", "block"] = "allow",
        api_key_env: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.on_error = on_error
        headers = {}
        key = os.environ.get(api_key_env) if api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.AsyncClient(timeout=timeout, headers=headers, transport=transport)

    async def check(self, text: str, *, where: str) -> Verdict:
        """The endpoint's verdict; ``on_error`` when it fails, times out or answers nonsense."""
        try:
            response = await self._client.post(self.url, json={"text": text, "where": where})
            response.raise_for_status()
            data = response.json()
            action = data.get("action") if isinstance(data, dict) else None
            if action not in _ACTIONS:
                raise ValueError(f"unknown action {action!r}")
            category = str(data.get("category") or "external")[:48]
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("external_moderation_failed", url=self.url, error=type(exc).__name__)
            action, category = self.on_error, "external_unavailable"
        if action == "allow":
            return Verdict("allow", text=text)
        hit = Hit(0, len(text), "", category, action)
        masked = "*" * len(text) if action == "mask" else text
        return Verdict(action, (category,), masked, None, (hit,))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
