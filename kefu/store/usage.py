"""The token ledger in SQL: one row per model call (:class:`~kefu.store.models.UsageRow`), and reports over it.

A row per call rather than per turn: a turn makes at most one model call today, but a call is what a provider
bills, and rows per call stay right when a turn makes several (a flow asking the model again). Calls shared by
several turns (single-flight answers) are one row, on the turn that started the call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import ColumnElement, String, Table, case, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from kefu.store.models import UsageRow

USAGE = cast(Table, UsageRow.__table__)

Grouping = Literal["day", "model", "source", "upstream"]
GROUPINGS: tuple[Grouping, ...] = ("day", "model", "source", "upstream")


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One model call, as the ledger stores it."""

    created_at: datetime
    turn_id: str | None
    session_id: str | None
    source: str
    model: str
    upstream: str | None
    finish_reason: str | None
    prompt_cache_hit_tokens: int
    prompt_cache_miss_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    estimated: bool
    cost_nano: int | None
    currency: str | None


@dataclass(frozen=True, slots=True)
class UsageLine:
    """The calls of one group (a day, a model, a source or an upstream) in one currency (None: calls without a
    price)."""

    key: str
    currency: str | None
    calls: int
    estimated_calls: int
    prompt_cache_hit_tokens: int
    prompt_cache_miss_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cost_nano: int


class UsageLedger:
    """Writes and reads the ledger (SQLAlchemy Core; SQLite and PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, record: UsageRecord) -> None:
        """Append one call."""
        async with self._engine.begin() as conn:
            await conn.execute(insert(USAGE).values(_values(record)))

    async def spent(self, since: datetime, until: datetime, currency: str) -> int:
        """Total cost in nano-units of ``currency`` of the calls in ``[since, until)``."""
        query = select(func.coalesce(func.sum(USAGE.c.cost_nano), 0)).where(
            USAGE.c.created_at >= since, USAGE.c.created_at < until, USAGE.c.currency == currency
        )
        async with self._engine.connect() as conn:
            return int((await conn.scalar(query)) or 0)

    async def report(
        self, *, by: Grouping, since: datetime | None = None, until: datetime | None = None
    ) -> list[UsageLine]:
        """Sums per group and currency over ``[since, until)``, ordered by group then currency."""
        key = self._key(by).label("key")
        query = (
            select(
                key,
                USAGE.c.currency,
                func.count().label("calls"),
                func.sum(case((USAGE.c.estimated, 1), else_=0)).label("estimated_calls"),
                func.sum(USAGE.c.prompt_cache_hit_tokens).label("hit"),
                func.sum(USAGE.c.prompt_cache_miss_tokens).label("miss"),
                func.sum(USAGE.c.completion_tokens).label("completion"),
                func.sum(USAGE.c.reasoning_tokens).label("reasoning"),
                func.coalesce(func.sum(USAGE.c.cost_nano), 0).label("cost"),
            )
            .group_by(key, USAGE.c.currency)
            .order_by(key, USAGE.c.currency)
        )
        if since is not None:
            query = query.where(USAGE.c.created_at >= since)
        if until is not None:
            query = query.where(USAGE.c.created_at < until)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            UsageLine(
                key=str(r["key"]) if r["key"] is not None else "-",
                currency=r["currency"],
                calls=int(r["calls"]),
                estimated_calls=int(r["estimated_calls"] or 0),
                prompt_cache_hit_tokens=int(r["hit"] or 0),
                prompt_cache_miss_tokens=int(r["miss"] or 0),
                completion_tokens=int(r["completion"] or 0),
                reasoning_tokens=int(r["reasoning"] or 0),
                cost_nano=int(r["cost"] or 0),
            )
            for r in rows
        ]

    async def calls(self, *, turn_id: str | None = None, session_id: str | None = None) -> list[UsageRecord]:
        """The calls of one turn or one session, oldest first."""
        query = select(USAGE).order_by(USAGE.c.created_at, USAGE.c.id)
        if turn_id is not None:
            query = query.where(USAGE.c.turn_id == turn_id)
        if session_id is not None:
            query = query.where(USAGE.c.session_id == session_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [UsageRecord(**{k: v for k, v in r.items() if k != "id"}) for r in rows]

    def _key(self, by: Grouping) -> ColumnElement[Any]:
        if by == "day":
            if self._engine.dialect.name == "sqlite":
                # Stored as UTC text "YYYY-MM-DD HH:MM:SS…" (kefu.store.models.UTCDateTime).
                return func.substr(USAGE.c.created_at, 1, 10, type_=String())
            return func.to_char(func.timezone("UTC", USAGE.c.created_at), "YYYY-MM-DD", type_=String())
        if by == "upstream":
            return func.coalesce(USAGE.c.upstream, "-")
        return USAGE.c[by]

    async def aclose(self) -> None:
        """Close the pool."""
        await self._engine.dispose()


def _values(record: UsageRecord) -> dict[str, Any]:
    return asdict(record)
