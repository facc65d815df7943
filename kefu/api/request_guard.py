"""Refuse requests whose path, query or headers carry a NUL character, before any route sees them.

Path and query values become ids and search terms that reach the database, where PostgreSQL rejects NUL with an
error that would surface as a 500; headers with NUL are invalid HTTP anyway. One check here covers every route,
the mounted demo merchant API included. Bodies are checked field by field (``kefu.api.validation.SafeText``), so
that the error can name the field.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from kefu.api.errors import error_response
from kefu.api.validation import unstorable_reason


def request_problem(scope: Scope) -> str | None:
    """What is wrong with the request line or headers of ``scope``, or None."""
    reason = unstorable_reason(scope["path"])
    if reason is not None:
        return f"the path {reason}"
    query: bytes = scope.get("query_string", b"")
    if b"\x00" in query or b"%00" in query:
        return "the query string must not contain NUL characters (U+0000)"
    for name, value in scope.get("headers", ()):
        if b"\x00" in value:
            return f"header {name.decode('latin-1')} must not contain NUL characters"
    return None


class RequestGuard:
    """ASGI middleware: 422 ``invalid_request`` for a request :func:`request_problem` finds fault with."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = request_problem(scope)
            if problem is not None:
                await error_response(422, "invalid_request", problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)
