"""FastAPI dependencies: the runtime and the verified caller.

Each dependency takes only the request and reads its headers itself: every declared ``Header()`` parameter or
sub-dependency is one more value FastAPI resolves and validates per request, on the path of every turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from prometheus_client import Gauge

from kefu.engine.service import ChatService
from kefu.identity import Identity
from kefu.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    """The process runtime built in the app's lifespan."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@dataclass(frozen=True, slots=True)
class TurnApi:
    """What the turn endpoints use, built once per app from the runtime (not per request)."""

    chat: ChatService
    heartbeat: float
    active_streams: Gauge
    default_model: str


async def get_turn_api(request: Request) -> TurnApi:
    """The turn endpoints' slice of the runtime."""
    state = request.app.state
    api: TurnApi | None = getattr(state, "turn_api", None)
    if api is None:
        runtime: Runtime = state.runtime
        api = TurnApi(
            chat=runtime.chat,
            heartbeat=runtime.settings.sse_heartbeat,
            active_streams=runtime.metrics.active_streams,
            default_model=runtime.settings.llm_model,
        )
        state.turn_api = api
    return api


TurnApiDep = Annotated[TurnApi, Depends(get_turn_api)]


async def get_identity(request: Request) -> Identity:
    """The caller, from ``Authorization: Bearer …`` (and ``X-Kefu-User`` for API keys)."""
    runtime: Runtime = request.app.state.runtime
    headers = request.headers
    return runtime.auth.authenticate(headers.get("authorization"), headers.get("x-kefu-user"))


IdentityDep = Annotated[Identity, Depends(get_identity)]


async def get_limited_identity(request: Request) -> Identity:
    """The caller, after counting this request against the user, API-key and IP rate limits (429 if over)."""
    runtime: Runtime = request.app.state.runtime
    identity = await get_identity(request)
    authorization = request.headers.get("authorization")
    api_key = authorization.partition(" ")[2].strip() if identity.kind == "server" and authorization else None
    client_ip = request.client.host if request.client else None
    await runtime.limiter.check(identity, client_ip=client_ip, api_key=api_key)
    return identity


# Use on endpoints that start work (a turn): they are what the limits protect.
LimitedIdentityDep = Annotated[Identity, Depends(get_limited_identity)]


async def require_api_key(request: Request) -> None:
    """Admin endpoints: server API keys only (403 for a valid end-user token, 401 for anything else)."""
    runtime: Runtime = request.app.state.runtime
    runtime.auth.require_server(request.headers.get("authorization"))
