"""Retention: conversations anonymised after ``anonymise_after`` idle, deleted after ``delete_after``.

Anonymised means every phone, ID, bank card and e-mail in them replaced by its type (``[手机号]``) — in the
messages and everywhere the conversation is quoted (handoff context, conversation feed, desk notes, webhook
bodies) — and the running-flow state dropped; the text stays for quality work. Deleted means every row and hot
copy, as an erasure does.

A sweep runs on one process at a time: it takes a job lock in the hot state (Redis with replicas), and a second
sweep that finds it taken does nothing. It works in batches of sessions (one transaction each), so memory stays
flat whatever the backlog, and a conversation that came back to life meanwhile is left alone (the batch's update
re-checks its idle time). Each sweep that ran leaves one audit record with counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from kefu.obs.logging import get_logger
from kefu.privacy.audit import Actor
from kefu.privacy.rights import FlowHotCopy
from kefu.privacy.scrub import SCRUB
from kefu.store.base import ContextCache, JobLocks, TurnLog
from kefu.store.privacy import PrivacyStore

log = get_logger("kefu.privacy")

JOB = "privacy-sweep"
BATCH = 100


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long conversations keep personal data, and how long they are kept at all (None: for ever)."""

    anonymise_after: timedelta | None = timedelta(hours=72)
    delete_after: timedelta | None = timedelta(days=180)


@dataclass(slots=True)
class SweepResult:
    """What one sweep did: sessions anonymised and deleted, and rows changed per table."""

    anonymised: int = 0
    deleted: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    turn_logs: int = 0

    def as_dict(self) -> dict[str, object]:
        """The JSON form (CLI ``--json``, the audit record)."""
        return {"anonymised": self.anonymised, "deleted": self.deleted, "rows": self.rows, "turn_logs": self.turn_logs}


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Retention:
    """Runs retention sweeps."""

    def __init__(
        self,
        store: PrivacyStore,
        *,
        policy: RetentionPolicy,
        turns: TurnLog,
        context: ContextCache,
        flows: FlowHotCopy,
        locks: JobLocks,
        lease_seconds: float = 600.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._store = store
        self.policy = policy
        self._turns = turns
        self._context = context
        self._flows = flows
        self._locks = locks
        self._lease = lease_seconds
        self._clock = clock

    async def sweep(self, *, actor: Actor = "sweep", now: datetime | None = None) -> SweepResult | None:
        """One sweep; None when another process is sweeping right now."""
        holder = f"sweep_{uuid.uuid4().hex}"
        if not await self._locks.acquire_job(JOB, holder, lease_seconds=self._lease):
            return None
        try:
            now = now or self._clock()
            result = SweepResult()
            if self.policy.delete_after is not None:
                await self._delete(now - self.policy.delete_after, result, holder)
            if self.policy.anonymise_after is not None:
                await self._anonymise(now, now - self.policy.anonymise_after, result, holder)
            # Also when nothing was old enough: the audit then shows the sweeps did run.
            await self._store.audit(at=now, action="sweep", actor=actor, subject=None, details=result.as_dict())
            log.info("privacy_sweep", anonymised=result.anonymised, deleted=result.deleted)
            return result
        finally:
            await self._locks.release_job(JOB, holder)

    async def _anonymise(self, now: datetime, cutoff: datetime, result: SweepResult, holder: str) -> None:
        after = ""
        while ids := await self._store.idle_sessions(cutoff, after=after, limit=BATCH, not_anonymised=True):
            counts = await self._store.anonymise_sessions(ids, idle_before=cutoff, now=now, scrub=SCRUB)
            result.anonymised += counts.get("sessions", 0)
            _add(result.rows, counts)
            for session_id in ids:
                await self._flows.forget(session_id)  # the SQL row went; a hot copy may outlive it
            after = ids[-1]
            await self._locks.acquire_job(JOB, holder, lease_seconds=self._lease)  # still ours: extend

    async def _delete(self, cutoff: datetime, result: SweepResult, holder: str) -> None:
        after = ""
        while ids := await self._store.idle_sessions(cutoff, after=after, limit=BATCH):
            removed = await self._store.delete_sessions(ids, idle_before=cutoff)
            result.deleted += removed.rows.get("sessions", 0)
            _add(result.rows, removed.rows)
            result.turn_logs += await self._turns.forget_turns(removed.turn_ids)
            for session_id in removed.session_ids:
                await self._flows.forget(session_id)
                await self._context.clear_session(session_id)
            after = ids[-1]
            await self._locks.acquire_job(JOB, holder, lease_seconds=self._lease)


def _add(total: dict[str, int], counts: dict[str, int]) -> None:
    for table, count in counts.items():
        total[table] = total.get(table, 0) + count
