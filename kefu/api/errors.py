"""Map errors to JSON responses ``{"error": {"code", "message"}}`` with the right status."""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kefu.errors import KefuError, RateLimited, StoreUnavailable, UpstreamError
from kefu.obs.logging import get_logger
from kefu.store.outage import OUTAGE_TYPES, is_outage

log = get_logger("kefu.http")

MALFORMED_BODY = (
    "the request body is not JSON kefu can read: it must be valid UTF-8, nested less deeply and with numbers "
    "of a sane size"
)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, *, retryable: bool | None = None
) -> JSONResponse:
    """The one error body shape of the public API (``retryable`` only where the client should simply retry)."""
    error: dict[str, object] = {"code": code, "message": message}
    if retryable is not None:
        error["retryable"] = retryable
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def unavailable_response() -> JSONResponse:
    """503 for a database or hot state that cannot be reached."""
    exc = StoreUnavailable("kefu's database or Redis cannot be reached right now; nothing was accepted, retry shortly")
    return error_response(exc.status, exc.code, exc.message, {"Retry-After": str(exc.retry_after)}, retryable=True)


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "malformed request body"


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    async def kefu_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KefuError)
        headers: dict[str, str] = {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        if isinstance(exc, UpstreamError):
            headers["x-should-retry"] = "true" if exc.retryable else "false"
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, StoreUnavailable):
            return unavailable_response()
        return error_response(exc.status, exc.code, exc.message, headers)

    async def store_down(_request: Request, exc: Exception) -> JSONResponse:
        if not is_outage(exc):  # e.g. an IntegrityError: a bug, but still the one error body
            log.error("request_failed", error=repr(exc)[:500])
            return error_response(500, "internal_error", "something went wrong")
        log.warning("store_unavailable", error=type(exc).__name__, detail=str(exc)[:200])
        return unavailable_response()

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, "invalid_request", _describe_validation(exc))

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:
            # FastAPI's answer to a body it could not parse (bad UTF-8, nesting past the parser's depth, an integer
            # too long to convert): the contract calls every malformed body a 422.
            return error_response(422, "invalid_request", MALFORMED_BODY)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    app.add_exception_handler(KefuError, kefu_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    for kind in OUTAGE_TYPES:
        app.add_exception_handler(kind, store_down)
