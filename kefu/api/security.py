"""Security headers on every response kefu serves: pages, static files, the API and the mounted demo merchant.

A response that set no Content-Security-Policy (the API's JSON, the static files) gets one that allows nothing
and no framing. A page sets its own policy (``kefu.api.web``: scripts and styles from kefu itself only); if that
policy does not say who may frame the page, the configured ``KEFU_FRAME_ANCESTORS`` is added, so a shop can show
the widget page in an iframe on its own site. Every response also gets ``X-Content-Type-Options: nosniff`` and a
``Referrer-Policy``.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOTHING_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
REFERRER_POLICY = "strict-origin-when-cross-origin"


def _frame_options(frame_ancestors: str) -> str | None:
    # The pre-CSP header of older browsers can only say "nobody" or "this origin".
    return {"'none'": "DENY", "'self'": "SAMEORIGIN"}.get(frame_ancestors)


class SecurityHeaders:
    """ASGI middleware adding the headers above to each response that does not already carry them."""

    def __init__(self, app: ASGIApp, *, frame_ancestors: str = "'self'") -> None:
        self.app = app
        self.frame_ancestors = frame_ancestors
        self.frame_options = _frame_options(frame_ancestors)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.add_headers(MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def add_headers(self, headers: MutableHeaders) -> None:
        """Fill in what ``headers`` (of one response) lacks."""
        policy = headers.get("content-security-policy")
        if policy is None:
            headers["Content-Security-Policy"] = NOTHING_POLICY
        elif "frame-ancestors" not in policy:
            headers["Content-Security-Policy"] = f"{policy}; frame-ancestors {self.frame_ancestors}"
            if self.frame_options is not None and "x-frame-options" not in headers:
                headers["X-Frame-Options"] = self.frame_options
        if "x-content-type-options" not in headers:
            headers["X-Content-Type-Options"] = "nosniff"
        if "referrer-policy" not in headers:
            headers["Referrer-Policy"] = REFERRER_POLICY
