"""Agents of the desk and their login tokens in SQL (tables ``agents`` and ``agent_tokens``).

Plain storage: rules (names, roles, passwords, expiry) live in :mod:`kefu.handoff.accounts`. Tokens are stored
only as their SHA-256; changing an agent's password, disabling or removing it drops its tokens in the same
transaction, so no login outlives the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kefu.store.desk_models import AgentRow, AgentTokenRow

AGENTS = cast(Table, AgentRow.__table__)
TOKENS = cast(Table, AgentTokenRow.__table__)


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """One row of ``agents``."""

    id: str
    name: str
    display_name: str
    role: str
    password_hash: str
    disabled: bool
    created_at: datetime


def _record(row: Any) -> AgentRecord:
    return AgentRecord(
        id=row["id"],
        name=row["name"],
        display_name=row["display_name"],
        role=row["role"],
        password_hash=row["password_hash"],
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
    )


class AgentStore:
    """SQL access for agents and desk tokens (SQLAlchemy Core; SQLite and PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def insert(self, record: AgentRecord) -> bool:
        """Add an agent; False when its name (or id) is taken."""
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(AGENTS).values(
                        id=record.id,
                        name=record.name,
                        display_name=record.display_name,
                        role=record.role,
                        password_hash=record.password_hash,
                        disabled=record.disabled,
                        created_at=record.created_at,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def by_id(self, agent_id: str) -> AgentRecord | None:
        """The agent with this id, or None."""
        return await self._one(select(AGENTS).where(AGENTS.c.id == agent_id))

    async def by_name(self, name: str) -> AgentRecord | None:
        """The agent with this name, or None."""
        return await self._one(select(AGENTS).where(AGENTS.c.name == name))

    async def all(self) -> list[AgentRecord]:
        """Every agent, by name."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(AGENTS).order_by(AGENTS.c.name))).mappings().all()
        return [_record(row) for row in rows]

    async def set_password_hash(self, name: str, password_hash: str) -> bool:
        """Replace the agent's password hash and drop its tokens; False for an unknown name."""
        async with self._engine.begin() as conn:
            agent_id = await self._id_of(conn, name)
            if agent_id is None:
                return False
            await conn.execute(update(AGENTS).where(AGENTS.c.id == agent_id).values(password_hash=password_hash))
            await conn.execute(delete(TOKENS).where(TOKENS.c.agent_id == agent_id))
        return True

    async def rehash(self, agent_id: str, old_hash: str, new_hash: str) -> None:
        """Store a stronger hash of the same password (tokens stay); a no-op if the hash changed meanwhile."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(AGENTS)
                .where(AGENTS.c.id == agent_id, AGENTS.c.password_hash == old_hash)
                .values(password_hash=new_hash)
            )

    async def set_disabled(self, name: str, disabled: bool) -> bool:
        """Disable (dropping its tokens) or enable the agent; False for an unknown name."""
        async with self._engine.begin() as conn:
            agent_id = await self._id_of(conn, name)
            if agent_id is None:
                return False
            await conn.execute(update(AGENTS).where(AGENTS.c.id == agent_id).values(disabled=disabled))
            if disabled:
                await conn.execute(delete(TOKENS).where(TOKENS.c.agent_id == agent_id))
        return True

    async def delete(self, name: str) -> bool:
        """Remove the agent and its tokens; False for an unknown name."""
        async with self._engine.begin() as conn:
            agent_id = await self._id_of(conn, name)
            if agent_id is None:
                return False
            # Explicit rather than trusting ON DELETE CASCADE: SQLite enforces it only with foreign_keys=ON.
            await conn.execute(delete(TOKENS).where(TOKENS.c.agent_id == agent_id))
            await conn.execute(delete(AGENTS).where(AGENTS.c.id == agent_id))
        return True

    async def add_token(self, token_hash: str, agent_id: str, *, created_at: datetime, expires_at: datetime) -> None:
        """Record a login; expired tokens of the same agent are dropped on the way."""
        async with self._engine.begin() as conn:
            await conn.execute(delete(TOKENS).where(TOKENS.c.agent_id == agent_id, TOKENS.c.expires_at <= created_at))
            await conn.execute(
                insert(TOKENS).values(
                    token_hash=token_hash, agent_id=agent_id, created_at=created_at, expires_at=expires_at
                )
            )

    async def token(self, token_hash: str) -> tuple[AgentRecord, datetime] | None:
        """The agent a token belongs to and when the token expires, or None for an unknown token."""
        query = (
            select(AGENTS, TOKENS.c.expires_at)
            .join(TOKENS, TOKENS.c.agent_id == AGENTS.c.id)
            .where(TOKENS.c.token_hash == token_hash)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            return None
        expires_at: datetime = row["expires_at"]
        return _record(row), expires_at

    async def delete_token(self, token_hash: str) -> None:
        """Forget one token (logout, or found expired)."""
        async with self._engine.begin() as conn:
            await conn.execute(delete(TOKENS).where(TOKENS.c.token_hash == token_hash))

    async def _one(self, query: Any) -> AgentRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _record(row) if row is not None else None

    @staticmethod
    async def _id_of(conn: AsyncConnection, name: str) -> str | None:
        agent_id: str | None = (await conn.execute(select(AGENTS.c.id).where(AGENTS.c.name == name))).scalar()
        return agent_id
