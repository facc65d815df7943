"""Knowledge-base entries in SQL (:class:`KbStore`): load, replace by origin, admin edits, the version counter.

Every change runs in one transaction that also bumps ``kb_meta.version``; replicas compare that number to the
one their index was built from. Writers first touch a ``kb_meta`` row, which takes the row lock (PostgreSQL)
or the write lock (SQLite) before anything is read, so two processes syncing the same files take turns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kefu.kb.entries import Entry, translations_from_json, translations_json
from kefu.store.kb_models import BOT_FINGERPRINT, VERSION, KbEntryRow, KbMetaRow

ENTRIES = cast(Table, KbEntryRow.__table__)
META = cast(Table, KbMetaRow.__table__)
_BATCH = 500
_ENTRY_COLUMNS = (
    ENTRIES.c.id,
    ENTRIES.c.kind,
    ENTRIES.c.question,
    ENTRIES.c.answer,
    ENTRIES.c.similar,
    ENTRIES.c.translations,
    ENTRIES.c.category,
    ENTRIES.c.valid_from,
    ENTRIES.c.valid_to,
    ENTRIES.c.origin,
    ENTRIES.c.source,
)


@dataclass(frozen=True, slots=True)
class Vector:
    """A stored embedding: for which content (``key``) and which model."""

    key: str
    model: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything an index is built from, read in one transaction."""

    version: int
    entries: list[Entry]
    vectors: dict[str, Vector]


@dataclass(frozen=True, slots=True)
class Changes:
    """What a replace did."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    version: int = 0

    @property
    def changed(self) -> bool:
        """True when anything changed."""
        return bool(self.added or self.updated or self.removed)


def _entry(row: Any) -> Entry:
    return Entry(
        id=row.id,
        kind=cast(Literal["faq", "doc"], row.kind),
        question=row.question,
        answer=row.answer,
        similar=tuple(json.loads(row.similar)),
        translations=translations_from_json(json.loads(row.translations)) if row.translations else (),
        category=row.category,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        origin=row.origin,
        source=row.source,
    )


def _values(entry: Entry, now: datetime) -> dict[str, Any]:
    return {
        "id": entry.id,
        "kind": entry.kind,
        "question": entry.question,
        "answer": entry.answer,
        "similar": json.dumps(list(entry.similar), ensure_ascii=False),
        "translations": json.dumps(translations_json(entry.translations), ensure_ascii=False)
        if entry.translations
        else None,
        "category": entry.category,
        "valid_from": entry.valid_from,
        "valid_to": entry.valid_to,
        "origin": entry.origin,
        "source": entry.source,
        "content_key": entry.content_key(),
        "updated_at": now,
    }


def _same(a: Entry, b: Entry) -> bool:
    return (a.content_key(), a.category, a.valid_from, a.valid_to, a.origin) == (
        b.content_key(),
        b.category,
        b.valid_from,
        b.valid_to,
        b.origin,
    )


class KbStore:
    """The knowledge base's tables on an async engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def aclose(self) -> None:
        """Close the engine's pool."""
        await self.engine.dispose()

    async def version(self) -> int:
        """The current content version (one indexed primary-key read)."""
        async with self.engine.connect() as conn:
            value = await conn.scalar(select(META.c.value).where(META.c.name == VERSION))
        return int(value or 0)

    async def snapshot(self) -> Snapshot:
        """Version, entries and vectors, consistent with each other."""
        async with self.engine.begin() as conn:
            version = await conn.scalar(select(META.c.value).where(META.c.name == VERSION))
            rows = (await conn.execute(select(*_ENTRY_COLUMNS).order_by(ENTRIES.c.id))).all()
            vec_rows = (
                await conn.execute(
                    select(ENTRIES.c.id, ENTRIES.c.embedding_key, ENTRIES.c.embedding_model, ENTRIES.c.embedding).where(
                        ENTRIES.c.embedding.is_not(None)
                    )
                )
            ).all()
        vectors = {r.id: Vector(r.embedding_key or "", r.embedding_model or "", r.embedding) for r in vec_rows}
        return Snapshot(int(version or 0), [_entry(r) for r in rows], vectors)

    async def _lock_and_bump(self, conn: AsyncConnection) -> int:
        await conn.execute(update(META).where(META.c.name == VERSION).values(value=META.c.value + 1))
        value = await conn.scalar(select(META.c.value).where(META.c.name == VERSION))
        return int(value or 0)

    async def _replace(self, conn: AsyncConnection, origin: str, entries: Sequence[Entry]) -> Changes:
        now = datetime.now(UTC)
        wanted = {e.id: e for e in entries}
        # Whole table: ids may move between origins, and huge IN lists break SQLite's variable limit.
        rows = (await conn.execute(select(*_ENTRY_COLUMNS))).all()
        existing = {r.id: _entry(r) for r in rows}
        gone = [i for i, e in existing.items() if e.origin == origin and i not in wanted]
        for start in range(0, len(gone), _BATCH):
            await conn.execute(delete(ENTRIES).where(ENTRIES.c.id.in_(gone[start : start + _BATCH])))
        added = [e for i, e in wanted.items() if i not in existing]
        changed = [e for i, e in wanted.items() if i in existing and not _same(e, existing[i])]
        for start in range(0, len(added), _BATCH):
            await conn.execute(insert(ENTRIES), [_values(e, now) for e in added[start : start + _BATCH]])
        for entry in changed:
            values = _values(entry, now) | {"embedding": None, "embedding_model": None, "embedding_key": None}
            await conn.execute(update(ENTRIES).where(ENTRIES.c.id == entry.id).values(**values))
        return Changes(len(added), len(changed), len(gone))

    async def replace_origin(self, origin: str, entries: Sequence[Entry]) -> Changes:
        """Make the entries of ``origin`` exactly ``entries`` (same ids are overwritten whatever their origin)."""
        async with self.engine.begin() as conn:
            version = await self._lock_and_bump(conn)
            changes = await self._replace(conn, origin, [e.with_origin(origin) for e in entries])
            if not changes.changed:
                await conn.rollback()
                return Changes(version=version - 1)
        return Changes(changes.added, changes.updated, changes.removed, version)

    async def sync_bot(self, entries: Sequence[Entry], fingerprint: str) -> Changes | None:
        """Replace the ``bot`` entries when the bot directory's fingerprint differs from the stored one.

        Returns None when the files are unchanged (another replica may have synced them already)."""
        async with self.engine.begin() as conn:
            await conn.execute(update(META).where(META.c.name == BOT_FINGERPRINT).values(value=META.c.value + 1))
            stored = await conn.scalar(select(META.c.text).where(META.c.name == BOT_FINGERPRINT))
            if stored == fingerprint:
                await conn.rollback()
                return None
            changes = await self._replace(conn, "bot", [e.with_origin("bot") for e in entries])
            await conn.execute(update(META).where(META.c.name == BOT_FINGERPRINT).values(text=fingerprint))
            version = await self._lock_and_bump(conn) if changes.changed else await self._current(conn)
        return Changes(changes.added, changes.updated, changes.removed, version)

    async def _current(self, conn: AsyncConnection) -> int:
        return int(await conn.scalar(select(META.c.value).where(META.c.name == VERSION)) or 0)

    async def put(self, entry: Entry, *, create: bool) -> tuple[Entry, int] | None:
        """Insert (``create``) or update one entry; None when creating an existing id / updating a missing one."""
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            version = await self._lock_and_bump(conn)
            exists = await conn.scalar(select(ENTRIES.c.id).where(ENTRIES.c.id == entry.id))
            if (exists is not None) == create:
                await conn.rollback()
                return None
            if create:
                await conn.execute(insert(ENTRIES).values(**_values(entry, now)))
            else:
                values = _values(entry, now) | {"embedding": None, "embedding_model": None, "embedding_key": None}
                await conn.execute(update(ENTRIES).where(ENTRIES.c.id == entry.id).values(**values))
        return entry, version

    async def delete(self, entry_id: str) -> int | None:
        """Delete one entry; the new version, or None when there was no such entry."""
        async with self.engine.begin() as conn:
            version = await self._lock_and_bump(conn)
            result = await conn.execute(delete(ENTRIES).where(ENTRIES.c.id == entry_id))
            if not result.rowcount:
                await conn.rollback()
                return None
        return version

    async def get(self, entry_id: str) -> Entry | None:
        """One entry by id."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(*_ENTRY_COLUMNS).where(ENTRIES.c.id == entry_id))).first()
        return _entry(row) if row is not None else None

    async def list(self, *, kind: str | None = None, offset: int = 0, limit: int = 100) -> tuple[list[Entry], int]:
        """A page of entries (by id) and the total count."""
        query = select(*_ENTRY_COLUMNS).order_by(ENTRIES.c.id)
        count = select(func.count()).select_from(ENTRIES)
        if kind:
            query = query.where(ENTRIES.c.kind == kind)
            count = count.where(ENTRIES.c.kind == kind)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.offset(offset).limit(limit))).all()
            total = int(await conn.scalar(count) or 0)
        return [_entry(r) for r in rows], total

    async def save_vectors(self, vectors: dict[str, Vector]) -> None:
        """Store embeddings (does not bump the version: the content is the same)."""
        if not vectors:
            return
        async with self.engine.begin() as conn:
            for entry_id, vector in vectors.items():
                await conn.execute(
                    update(ENTRIES)
                    .where(ENTRIES.c.id == entry_id)
                    .values(embedding=vector.data, embedding_model=vector.model, embedding_key=vector.key)
                )
