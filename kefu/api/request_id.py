"""Request ids on every response and every log line, and the optional access log.

A pure ASGI middleware (a ``BaseHTTPMiddleware`` would buffer the SSE streams): it takes the caller's
``X-Request-ID`` when it is sane (1–128 visible ASCII characters) or makes one, sends it back in the response's
``X-Request-ID`` header and binds it to the logging context for the request, so every line logged while serving
it — and by the turn it starts, whose task keeps a copy of the context — carries ``request_id``. The binding is
undone when the request ends, so it never leaks into the next one.

With ``KEFU_ACCESS_LOG=1`` it also logs one ``http_request`` line per request when the response is over (for SSE:
when the stream ends): method, path without the query string (it may carry a token), status, duration and the
request id. No header is logged. Lines go through the same masking as every log line.
"""

from __future__ import annotations

import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kefu.obs.logging import bind_request_id, get_logger, unbind_request_id

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode("latin-1")
_SANE = re.compile(rb"[\x21-\x7e]{1,128}")
_MAX_LOGGED_PATH = 512

log = get_logger("kefu.access")


def request_id_of(scope: Scope) -> str:
    """The caller's request id if it is sane, else a new one."""
    for name, value in scope.get("headers", ()):
        if name == _HEADER_KEY:
            if _SANE.fullmatch(value):
                return str(value.decode("ascii"))
            break
    return uuid.uuid4().hex


class RequestIds:
    """ASGI middleware: see the module docstring. Mount it outermost, so every response gets the header."""

    def __init__(self, app: ASGIApp, *, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        status = 500  # what the server answers if the app raises before it starts a response
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        tokens = bind_request_id(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log:
                log.info(
                    "http_request",
                    method=scope["method"],
                    path=scope["path"][:_MAX_LOGGED_PATH],
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                )
            unbind_request_id(tokens)
