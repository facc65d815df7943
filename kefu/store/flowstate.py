"""Where a session's running flow lives between turns.

SQL is the truth (a restart, or another replica, continues the flow at the same step); a hot copy (Redis when
configured, else this process's memory) saves the read on every turn. Writes go to SQL first, then the hot copy,
so a reader never sees a hot state that SQL would contradict after a crash. A flow left idle longer than the
session TTL is over (the next message starts a fresh context, and no flow).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from redis.asyncio import Redis
from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from kefu.store.flow_models import FlowStateRow, HandoffRow

STATES = cast(Table, FlowStateRow.__table__)
HANDOFFS = cast(Table, HandoffRow.__table__)
_NONE = b""  # the hot copy's "this session has no running flow"
_MEMORY_SLOTS = 10_000


class FlowStateStore(Protocol):
    """What a turn's flow step needs: the session's running flow."""

    async def get(self, session_id: str) -> dict[str, Any] | None:
        """The session's running flow state, or None."""
        ...

    async def put(self, session_id: str, user_id: str, flow: str, state: dict[str, Any]) -> None:
        """Store the session's running flow state (SQL first, then the hot copy)."""
        ...

    async def clear(self, session_id: str) -> None:
        """The session has no running flow any more."""
        ...


class FlowStates:
    """The running flow of each session (one at most)."""

    def __init__(self, engine: AsyncEngine, *, redis: Redis | None = None, prefix: str = "kefu", ttl: int = 1800):
        self._engine = engine
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl
        self._memory: OrderedDict[str, tuple[bytes, float]] = OrderedDict()  # value, monotonic expiry

    def _key(self, session_id: str) -> str:
        return f"{self._prefix}:flow:{{{session_id}}}"

    async def get(self, session_id: str) -> dict[str, Any] | None:
        """The snapshot of the session's running flow, or None (also when it was left idle longer than the TTL)."""
        hot = await self._hot_get(session_id)
        if hot is not None:
            return json.loads(hot) if hot != _NONE else None
        query = select(STATES.c.state, STATES.c.updated_at).where(STATES.c.session_id == session_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        fresh = row is not None and datetime.now(UTC) - row[1] <= timedelta(seconds=self._ttl)
        raw = row[0].encode() if row is not None and fresh else _NONE
        await self._hot_set(session_id, raw)
        return json.loads(raw) if raw != _NONE else None

    async def put(self, session_id: str, user_id: str, flow: str, state: dict[str, Any]) -> None:
        """Save the snapshot after a turn that left the flow running."""
        raw = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
        values = {
            "session_id": session_id,
            "user_id": user_id,
            "flow": flow,
            "state": raw,
            "updated_at": datetime.now(UTC),
        }
        dialect = self._engine.dialect.name
        stmt: Any
        if dialect == "postgresql":
            stmt = postgresql.insert(STATES).values(values)
        else:
            stmt = sqlite.insert(STATES).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[STATES.c.session_id],
            set_={"flow": flow, "state": raw, "updated_at": values["updated_at"], "user_id": user_id},
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)
        await self._hot_set(session_id, raw.encode())

    async def clear(self, session_id: str) -> None:
        """Forget the session's running flow (it ended, or the session was deleted)."""
        async with self._engine.begin() as conn:
            await conn.execute(delete(STATES).where(STATES.c.session_id == session_id))
        await self._hot_set(session_id, _NONE)

    async def forget(self, session_id: str) -> None:
        """Drop the hot copy entirely (a deleted or erased session): :meth:`clear` leaves a "no flow" marker under
        a key that names the session. The SQL row goes with the session's rows."""
        if self._redis is not None:
            await self._redis.delete(self._key(session_id))
        else:
            self._memory.pop(session_id, None)

    async def aclose(self) -> None:
        """Close the SQL pool (Redis belongs to the caller)."""
        await self._engine.dispose()

    async def _hot_get(self, session_id: str) -> bytes | None:
        if self._redis is not None:
            value = await self._redis.get(self._key(session_id))
            return cast(bytes | None, value)
        entry = self._memory.get(session_id)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            del self._memory[session_id]
            return _NONE  # idle longer than the TTL: the flow is over, whatever SQL still holds
        self._memory.move_to_end(session_id)
        return entry[0]

    async def _hot_set(self, session_id: str, raw: bytes) -> None:
        if self._redis is not None:
            await self._redis.set(self._key(session_id), raw, ex=self._ttl)
            return
        self._memory[session_id] = (raw, time.monotonic() + self._ttl)
        self._memory.move_to_end(session_id)
        while len(self._memory) > _MEMORY_SLOTS:
            self._memory.popitem(last=False)
