"""Demo mode: anonymous visitor tokens. Mounted only when ``KEFU_DEMO=1`` (the demo page is in ``web.py``)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from kefu.api.deps import AuthDep, LimiterDep, client_ip
from kefu.errors import ConfigError
from kefu.identity import mint_token

VISITOR_TOKEN_TTL = 7 * 24 * 3600

router = APIRouter(tags=["demo"])


@router.post("/v1/demo/token", summary="An anonymous visitor token (demo mode only)")
async def demo_token(request: Request, auth: AuthDep, limiter: LimiterDep) -> dict[str, object]:
    """Mint a signed token for a new random visitor. Auth stays on: the visitor can only see its own sessions.
    429 when one address asks for more than ``KEFU_RATE_LIMIT_VISITOR_TOKENS``: each token is a fresh identity
    with per-user budgets of its own."""
    await limiter.check_visitor_token(client_ip(request))
    secret = auth.jwt_secret
    if secret is None:
        raise ConfigError("demo mode needs a JWT secret")
    user_id = f"visitor-{uuid.uuid4().hex}"
    return {
        "token": mint_token(user_id, secret, ttl_seconds=VISITOR_TOKEN_TTL),
        "user_id": user_id,
        "expires_in": VISITOR_TOKEN_TTL,
    }
