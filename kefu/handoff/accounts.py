"""Agent accounts of the desk: who may log in, with which role, and their login tokens.

Passwords are hashed with argon2 (pwdlib); a login returns a random ``kd_…`` token of which only the SHA-256 is
stored, with an expiry. Hashing runs in a worker thread: argon2 is deliberately slow and must not stall the loop.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import hashlib
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pwdlib import PasswordHash
from pwdlib.exceptions import PwdlibError
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.ext.asyncio import AsyncEngine

from kefu.errors import AuthError, InvalidInput, NotFound
from kefu.obs.logging import get_logger
from kefu.store.agents import AgentRecord, AgentStore

Role = Literal["agent", "admin"]
ROLES: tuple[Role, ...] = ("agent", "admin")
TOKEN_PREFIX = "kd_"
MIN_PASSWORD_CHARS = 8
MAX_NAME_CHARS = 64  # the width of agents.name and agents.display_name

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HASHER = PasswordHash((Argon2Hasher(),))
_BAD_CREDENTIALS = "wrong name or password"
_INVALID_TOKEN = "invalid or expired desk login"

log = get_logger("kefu.accounts")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Agent:
    """A person who answers shoppers from the desk (never carries the password hash)."""

    id: str
    name: str
    display_name: str
    role: Role
    disabled: bool = False

    @property
    def is_admin(self) -> bool:
        """Admins see every open conversation and may transfer any of them."""
        return self.role == "admin"


def _agent(record: AgentRecord) -> Agent:
    # A role this code does not know (a newer release wrote it) gets the least power, never admin.
    role: Role = record.role if record.role in ROLES else "agent"
    return Agent(id=record.id, name=record.name, display_name=record.display_name, role=role, disabled=record.disabled)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@functools.cache
def _dummy_hash() -> str:
    # Unknown names are checked against this, so a login takes as long whether or not the name exists.
    return _HASHER.hash(secrets.token_urlsafe(16))


def _verify(password: str, password_hash: str) -> tuple[bool, str | None]:
    try:
        return _HASHER.verify_and_update(password, password_hash)
    except PwdlibError as exc:
        log.warning("agent_password_hash_unusable", error=type(exc).__name__)
        return False, None


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"agent name must be 1-{MAX_NAME_CHARS} letters, digits, '.', '_' or '-' (no spaces), not {name!r}"
        )


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD_CHARS} characters")


class AgentAccounts:
    """Add, change and remove agents; log them in and authenticate their desk tokens."""

    def __init__(
        self, engine: AsyncEngine, *, token_ttl: float = 12 * 3600, clock: Callable[[], datetime] = utcnow
    ) -> None:
        if token_ttl <= 0:
            raise ValueError("token_ttl must be positive")
        self._store = AgentStore(engine)
        self._token_ttl = timedelta(seconds=token_ttl)
        self._clock = clock

    async def add(self, name: str, password: str, *, role: str = "agent", display_name: str | None = None) -> Agent:
        """Create an agent. ``InvalidInput`` for a bad name, password, role or display name, and
        ``InvalidInput(code="agent_exists")`` when the name is taken."""
        _check_name(name)
        _check_password(password)
        if role not in ROLES:
            raise InvalidInput(f"role must be 'agent' or 'admin', not {role!r}")
        shown = name if display_name is None else display_name.strip()
        if not shown or len(shown) > MAX_NAME_CHARS:
            raise InvalidInput(f"display name must be 1-{MAX_NAME_CHARS} characters")
        if await self._store.by_name(name) is not None:  # before hashing: a quick, clear answer
            raise _exists(name)
        record = AgentRecord(
            id=f"ag_{uuid.uuid4().hex[:16]}",
            name=name,
            display_name=shown,
            role=role,
            password_hash=await asyncio.to_thread(_HASHER.hash, password),
            disabled=False,
            created_at=self._clock(),
        )
        if not await self._store.insert(record):  # someone took the name meanwhile
            raise _exists(name)
        return _agent(record)

    async def set_password(self, name: str, password: str) -> None:
        """Change the agent's password and end all its desk logins. ``NotFound`` for an unknown name."""
        _check_password(password)
        password_hash = await asyncio.to_thread(_HASHER.hash, password)
        if not await self._store.set_password_hash(name, password_hash):
            raise NotFound(f"no agent named {name!r}")

    async def set_disabled(self, name: str, disabled: bool) -> None:
        """Disable (ending its desk logins) or enable the agent. ``NotFound`` for an unknown name."""
        if not await self._store.set_disabled(name, disabled):
            raise NotFound(f"no agent named {name!r}")

    async def remove(self, name: str) -> bool:
        """Delete the agent and its logins; False when there was no such agent."""
        return await self._store.delete(name)

    async def list(self) -> builtins.list[Agent]:
        """Every agent, by name."""
        return [_agent(record) for record in await self._store.all()]

    async def get(self, agent_id: str) -> Agent | None:
        """The agent with this id, or None."""
        record = await self._store.by_id(agent_id)
        return _agent(record) if record is not None else None

    async def by_name(self, name: str) -> Agent | None:
        """The agent with this name, or None."""
        record = await self._store.by_name(name)
        return _agent(record) if record is not None else None

    async def login(self, name: str, password: str) -> tuple[Agent, str]:
        """Check the password and start a desk login: the agent and a new ``kd_…`` token.

        ``AuthError(code="bad_credentials")``, with one message, for an unknown name, a wrong password or a
        disabled agent.
        """
        record = await self._store.by_name(name)
        stored = record.password_hash if record is not None else await asyncio.to_thread(_dummy_hash)
        ok, new_hash = await asyncio.to_thread(_verify, password, stored)
        if record is None or not ok or record.disabled:
            raise AuthError(_BAD_CREDENTIALS, code="bad_credentials")
        if new_hash is not None:
            await self._store.rehash(record.id, stored, new_hash)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self._clock()
        await self._store.add_token(_token_hash(token), record.id, created_at=now, expires_at=now + self._token_ttl)
        return _agent(record), token

    async def authenticate(self, token: str) -> Agent:
        """The agent a desk token belongs to. ``AuthError(code="invalid_token")`` when it is unknown, expired,
        revoked, or its agent is disabled."""
        if not token.startswith(TOKEN_PREFIX):
            raise AuthError(_INVALID_TOKEN, code="invalid_token")
        token_hash = _token_hash(token)
        found = await self._store.token(token_hash)
        if found is None:
            raise AuthError(_INVALID_TOKEN, code="invalid_token")
        record, expires_at = found
        if expires_at <= self._clock():
            await self._store.delete_token(token_hash)
            raise AuthError(_INVALID_TOKEN, code="invalid_token")
        if record.disabled:
            raise AuthError(_INVALID_TOKEN, code="invalid_token")
        return _agent(record)

    async def logout(self, token: str) -> None:
        """End the desk login of this token (nothing happens for an unknown one)."""
        await self._store.delete_token(_token_hash(token))


def _exists(name: str) -> InvalidInput:
    return InvalidInput(f"an agent named {name!r} already exists", code="agent_exists")
