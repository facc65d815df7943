"""Map errors to JSON responses ``{"error": {"code", "message"}}`` with the right status."""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kefu.errors import KefuError, RateLimited, UpstreamError

MALFORMED_BODY = (
    "the request body is not JSON kefu can read: it must be valid UTF-8, nested less deeply and with numbers "
    "of a sane size"
)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error body shape of the public API."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


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
        return error_response(exc.status, exc.code, exc.message, headers)

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
