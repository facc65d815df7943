"""A tiny OAuth2 client-credentials token endpoint for testing token sources against real HTTP."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kefu.llm.mock.config import MockConfig


class OAuthState:
    """Issued tokens and the knobs ``POST /_mock/oauth`` sets (``expires_in``, ``fail`` status, ``delay``)."""

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Back to the configured defaults; forget issued tokens."""
        self.expires_in: int | None = self.config.oauth_expires_in
        self.fail: int | None = None
        self.delay = 0.0
        self.issued = 0
        self.tokens: set[str] = set()

    def authorized(self, header: str | None) -> bool:
        """True if ``header`` carries the configured API key or a token this endpoint issued."""
        if not header or not header.startswith("Bearer "):
            return False
        token = header[7:]
        return token == self.config.api_key or token in self.tokens


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status, media_type="application/json")


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return "", ""
        return unquote_plus(user), unquote_plus(password)
    return form.get("client_id", ""), form.get("client_secret", "")


def routes(state: OAuthState) -> list[Route]:
    """``POST /oauth/token`` and ``POST /_mock/oauth``."""

    async def token(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if state.delay:
            await asyncio.sleep(state.delay)
        if state.fail is not None:
            return _json({"error": "server_error", "error_description": "mock failure"}, state.fail)
        if form.get("grant_type") != "client_credentials":
            return _json({"error": "unsupported_grant_type"}, 400)
        client_id, secret = _client_credentials(request, form)
        if (client_id, secret) != (state.config.oauth_client_id, state.config.oauth_client_secret):
            return _json({"error": "invalid_client", "error_description": "bad client credentials"}, 401)
        state.issued += 1
        access_token = f"mock-token-{state.issued}"
        state.tokens.add(access_token)
        body: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer"}
        if state.expires_in is not None:
            body["expires_in"] = state.expires_in
        if form.get("scope"):
            body["scope"] = form["scope"]
        return _json(body)

    async def configure(request: Request) -> Response:
        try:
            doc = orjson.loads(await request.body())
            if "expires_in" in doc:
                state.expires_in = None if doc["expires_in"] is None else int(doc["expires_in"])
            if "fail" in doc:
                state.fail = None if doc["fail"] is None else int(doc["fail"])
            if "delay" in doc:
                state.delay = float(doc["delay"])
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
            return _json({"error": f"bad oauth settings: {exc}"}, 400)
        return _json({"expires_in": state.expires_in, "fail": state.fail, "delay": state.delay})

    return [
        Route("/oauth/token", token, methods=["POST"]),
        Route("/_mock/oauth", configure, methods=["POST"]),
    ]
