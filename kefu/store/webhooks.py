"""Outgoing webhook deliveries in SQL (table ``webhook_deliveries``; SQLite and PostgreSQL).

Plain storage: what to send and when lives in :mod:`kefu.handoff.webhooks`. Several replicas may dispatch from
the same table, so a delivery is taken with a compare-and-set: the claim bumps ``attempts`` and pushes
``next_attempt_at`` forward by a lease, only where the row is still pending, due and unchanged. The replica whose
UPDATE matched owns that attempt; every other one sees no row. A replica that dies mid-send leaves the row to be
claimed again once the lease runs out. Results are recorded with the same guard, so a replica that overran its
lease cannot overwrite a newer attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from kefu.store.desk_models import WebhookDeliveryRow

DELIVERIES = cast(Table, WebhookDeliveryRow.__table__)

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One delivery as admins see it (the body is left out: it may be large and carries shopper text)."""

    id: str
    event: str
    target: str
    url: str
    session_id: str | None
    status: str  # pending | delivered | failed
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery to queue."""

    id: str
    event: str
    target: str
    url: str
    session_id: str | None
    body: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery this process now owns for one attempt; ``attempt`` counts from 1 and includes this one."""

    id: str
    event: str
    target: str
    url: str
    body: str
    attempt: int


def _record(row: Any) -> DeliveryRecord:
    return DeliveryRecord(
        id=row["id"],
        event=row["event"],
        target=row["target"],
        url=row["url"],
        session_id=row["session_id"],
        status=row["status"],
        attempts=row["attempts"],
        last_status=row["last_status"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
        next_attempt_at=row["next_attempt_at"],
    )


class WebhookStore:
    """SQL access for webhook deliveries (SQLAlchemy Core)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def insert(self, deliveries: Sequence[NewDelivery]) -> None:
        """Queue deliveries as pending and due now, in one INSERT."""
        if not deliveries:
            return
        rows = [
            {
                "id": d.id,
                "event": d.event,
                "target": d.target,
                "url": d.url,
                "session_id": d.session_id,
                "body": d.body,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": d.created_at,
                "created_at": d.created_at,
            }
            for d in deliveries
        ]
        async with self._engine.begin() as conn:
            await conn.execute(insert(DELIVERIES).values(rows))

    async def claim_due(self, now: datetime, *, lease: float, limit: int) -> list[ClaimedDelivery]:
        """Take up to ``limit`` due deliveries for one attempt each (oldest due first); see the module docstring."""
        if limit <= 0:
            return []
        candidates = (
            select(
                DELIVERIES.c.id,
                DELIVERIES.c.event,
                DELIVERIES.c.target,
                DELIVERIES.c.url,
                DELIVERIES.c.body,
                DELIVERIES.c.attempts,
            )
            .where(DELIVERIES.c.status == PENDING, DELIVERIES.c.next_attempt_at <= now)
            .order_by(DELIVERIES.c.next_attempt_at, DELIVERIES.c.id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(candidates)).mappings().all()
        if not rows:
            return []
        until = now + timedelta(seconds=lease)
        claimed: list[ClaimedDelivery] = []
        async with self._engine.begin() as conn:
            for row in rows:
                result = await conn.execute(
                    update(DELIVERIES)
                    .where(
                        DELIVERIES.c.id == row["id"],
                        DELIVERIES.c.status == PENDING,
                        DELIVERIES.c.next_attempt_at <= now,
                        DELIVERIES.c.attempts == row["attempts"],
                    )
                    .values(attempts=row["attempts"] + 1, next_attempt_at=until)
                )
                if result.rowcount == 1:
                    claimed.append(
                        ClaimedDelivery(
                            id=row["id"],
                            event=row["event"],
                            target=row["target"],
                            url=row["url"],
                            body=row["body"],
                            attempt=row["attempts"] + 1,
                        )
                    )
        return claimed

    async def mark_delivered(self, claimed: ClaimedDelivery, *, status: int, now: datetime) -> bool:
        """The attempt succeeded; False when the attempt was no longer this process's (its lease ran out)."""
        return await self._finish(claimed, status=DELIVERED, last_status=status, delivered_at=now)

    async def mark_failed(
        self, claimed: ClaimedDelivery, *, status: int | None, error: str, retry_at: datetime | None
    ) -> bool:
        """The attempt failed: due again at ``retry_at``, or ``failed`` for good when it is None."""
        if retry_at is None:
            return await self._finish(claimed, status=FAILED, last_status=status, last_error=error)
        return await self._finish(
            claimed, status=PENDING, last_status=status, last_error=error, next_attempt_at=retry_at
        )

    async def _finish(self, claimed: ClaimedDelivery, **values: Any) -> bool:
        query = (
            update(DELIVERIES)
            .where(
                DELIVERIES.c.id == claimed.id,
                DELIVERIES.c.status == PENDING,
                DELIVERIES.c.attempts == claimed.attempt,
            )
            .values(**values)
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(query)
        return bool(result.rowcount == 1)

    async def recent(self, limit: int = 100) -> list[DeliveryRecord]:
        """The newest deliveries first."""
        query = select(DELIVERIES).order_by(DELIVERIES.c.created_at.desc(), DELIVERIES.c.id.desc()).limit(max(limit, 0))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_record(row) for row in rows]

    async def delete_for_session(self, session_id: str) -> int:
        """Forget every delivery about a session (erasure); how many were deleted."""
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(DELIVERIES).where(DELIVERIES.c.session_id == session_id))
        return int(result.rowcount)
