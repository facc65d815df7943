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
