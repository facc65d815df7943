"""FastAPI dependencies: the verified caller, and the slice of the process each group of endpoints uses.

The app (``kefu.app``, above this layer) builds one :class:`Services` per process from the runtime and puts it on
``app.state.services``; each endpoint depends on the part it uses, never on the whole runtime.

Each dependency takes only the request and reads its headers itself: every declared ``Header()`` parameter or
sub-dependency is one more value FastAPI resolves and validates per request, on the path of every turn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from prometheus_client import Gauge

from kefu.bot.loader import Bot
from kefu.engine.service import ChatService
from kefu.errors import AuthError, Forbidden, KefuError
from kefu.handoff.accounts import Agent, AgentAccounts
from kefu.handoff.service import Desk
from kefu.handoff.webhooks import DeliveryRecord
from kefu.identity import Authenticator, Identity
from kefu.kb.knowledge import Knowledge
from kefu.llm.base import ChatModel
from kefu.privacy.retention import Retention
from kefu.privacy.rights import Rights
from kefu.ratelimit import RateLimiter
from kefu.store.desk import HandoffRecord


@dataclass(frozen=True, slots=True)
class TurnApi:
    """What the turn endpoints (chat, completions, sessions) use."""

    chat: ChatService
    heartbeat: float
    active_streams: Gauge
    default_model: str


@dataclass(frozen=True, slots=True)
class Readiness:
    """What ``/readyz`` and ``/metrics`` read."""

    probes: Sequence[tuple[str, Callable[[], Awaitable[None]]]]  # (name, raises if unusable)
    model: ChatModel | None
    llm_base_url: str
    render_metrics: Callable[[], bytes]


@dataclass(frozen=True, slots=True)
class BotAdmin:
    """What the bot admin endpoints do."""

    reload: Callable[[], Awaitable[Bot]]
    handoffs: Callable[..., Awaitable[list[HandoffRecord]]]


@dataclass(frozen=True, slots=True)
class PeopleApi:
    """What the handoff (shopper) and desk (agent) endpoints use."""

    chat: ChatService
    desk: Desk
    accounts: AgentAccounts
    deliveries: Callable[[int], Awaitable[list[DeliveryRecord]]]
    heartbeat: float


@dataclass(frozen=True, slots=True)
class PrivacyApi:
    """What the data-subject and retention endpoints use."""

    rights: Rights
    retention: Retention


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the HTTP layer reads from the process, grouped by the endpoints that use it."""

    auth: Authenticator
    limiter: RateLimiter
    turns: TurnApi
    readiness: Readiness
    knowledge: Callable[[], Knowledge]  # the current knowledge base (read per request: it may be replaced)
    bot_admin: BotAdmin
    people: PeopleApi
    privacy: PrivacyApi


def services(request: Request) -> Services:
    """The process's services, as the app's lifespan stored them."""
    found: Services = request.app.state.services
    return found


async def get_turn_api(request: Request) -> TurnApi:
    """The turn endpoints' slice of the process."""
    return services(request).turns


TurnApiDep = Annotated[TurnApi, Depends(get_turn_api)]


async def get_readiness(request: Request) -> Readiness:
    """The health endpoints' slice of the process."""
    return services(request).readiness


ReadinessDep = Annotated[Readiness, Depends(get_readiness)]


async def get_knowledge(request: Request) -> Knowledge:
    """The knowledge base in use."""
    return services(request).knowledge()


KnowledgeDep = Annotated[Knowledge, Depends(get_knowledge)]


async def get_bot_admin(request: Request) -> BotAdmin:
    """The bot admin endpoints' slice of the process."""
    return services(request).bot_admin


BotAdminDep = Annotated[BotAdmin, Depends(get_bot_admin)]


async def get_people(request: Request) -> PeopleApi:
    """The handoff and desk endpoints' slice of the process."""
    return services(request).people


PeopleApiDep = Annotated[PeopleApi, Depends(get_people)]


async def get_privacy(request: Request) -> PrivacyApi:
    """The privacy endpoints' slice of the process."""
    return services(request).privacy


PrivacyApiDep = Annotated[PrivacyApi, Depends(get_privacy)]

DESK_COOKIE = "kefu_desk"
DESK_TOKEN_PREFIX = "kd_"


def desk_token(request: Request) -> str:
    """The desk login token of the request: ``Authorization: Bearer kd_…`` or the ``kefu_desk`` cookie.

    Any other bearer credential (a shopper's token, a server API key) is :class:`Forbidden`: the desk is for
    agents only. No credential at all is :class:`AuthError`."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token.startswith(DESK_TOKEN_PREFIX):
            return token
        raise Forbidden("the desk needs an agent login (POST /desk/api/login); this credential is not one")
    cookie = request.cookies.get(DESK_COOKIE)
    if cookie and cookie.startswith(DESK_TOKEN_PREFIX):
        return cookie
    raise AuthError("log in to the desk first (POST /desk/api/login)")


async def get_agent(request: Request) -> Agent:
    """The agent calling a desk endpoint."""
    return await services(request).people.accounts.authenticate(desk_token(request))


AgentDep = Annotated[Agent, Depends(get_agent)]


async def get_auth(request: Request) -> Authenticator:
    """The token and API-key checker."""
    return services(request).auth


AuthDep = Annotated[Authenticator, Depends(get_auth)]


async def get_limiter(request: Request) -> RateLimiter:
    """The rate limiter, for endpoints with limits of their own (visitor tokens, resumes)."""
    return services(request).limiter


LimiterDep = Annotated[RateLimiter, Depends(get_limiter)]


def client_ip(request: Request) -> str | None:
    """The address the request came from (the proxy's view when uvicorn trusts its forwarded headers)."""
    return request.client.host if request.client else None


async def get_identity(request: Request) -> Identity:
    """The caller, from ``Authorization: Bearer …`` (and ``X-Kefu-User`` for API keys)."""
    headers = request.headers
    return services(request).auth.authenticate(headers.get("authorization"), headers.get("x-kefu-user"))


IdentityDep = Annotated[Identity, Depends(get_identity)]


async def get_limited_identity(request: Request) -> Identity:
    """The caller, after counting this request against the user, API-key and IP rate limits (429 if over)."""
    identity = await get_identity(request)
    authorization = request.headers.get("authorization")
    api_key = authorization.partition(" ")[2].strip() if identity.kind == "server" and authorization else None
    await services(request).limiter.check(identity, client_ip=client_ip(request), api_key=api_key)
    return identity


# Use on endpoints that start work (a turn): they are what the limits protect.
LimitedIdentityDep = Annotated[Identity, Depends(get_limited_identity)]


async def require_api_key(request: Request) -> None:
    """Admin endpoints: server API keys only (403 for a valid end-user token, 401 for anything else)."""
    services(request).auth.require_server(request.headers.get("authorization"))


async def get_operator(request: Request) -> bool:
    """True when the caller holds a server API key; anyone else (no credentials at all included) is not an
    operator, and this never refuses the request."""
    try:
        services(request).auth.require_server(request.headers.get("authorization"))
    except KefuError:
        return False
    return True


OperatorDep = Annotated[bool, Depends(get_operator)]
