"""FastAPI dependencies: the runtime and the verified caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from kefu.identity import Identity
from kefu.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    """The process runtime built in the app's lifespan."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_identity(
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header()] = None,
    x_kefu_user: Annotated[str | None, Header()] = None,
) -> Identity:
    """The caller, from ``Authorization: Bearer …`` (and ``X-Kefu-User`` for API keys)."""
    return runtime.auth.authenticate(authorization, x_kefu_user)


IdentityDep = Annotated[Identity, Depends(get_identity)]


async def get_limited_identity(
    request: Request,
    identity: IdentityDep,
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Identity:
    """The caller, after counting this request against the user, API-key and IP rate limits (429 if over)."""
    api_key = authorization.partition(" ")[2].strip() if identity.kind == "server" and authorization else None
    client_ip = request.client.host if request.client else None
    await runtime.limiter.check(identity, client_ip=client_ip, api_key=api_key)
    return identity


# Use on endpoints that start work (a turn): they are what the limits protect.
LimitedIdentityDep = Annotated[Identity, Depends(get_limited_identity)]
