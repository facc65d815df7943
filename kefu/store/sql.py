"""The durable transcript in SQL: :class:`SqlTranscriptStore` over an async SQLAlchemy engine.

SQLite (aiosqlite) and PostgreSQL (asyncpg) are supported. The store is on every turn's path, so each
method is a single statement where the database allows it, and on PostgreSQL single statements run in
autocommit mode (no BEGIN/COMMIT round trips).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Integer,
    RowMapping,
    String,
    Text,
    bindparam,
    delete,
    event,
    literal,
    make_url,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from kefu.errors import ConfigError, NotFound
from kefu.store.base import MessageRecord, MessageRole, MessageStatus, SessionRecord
from kefu.store.models import MessageRow, SessionRow, UTCDateTime, as_utc

SQLITE_BUSY_TIMEOUT_MS = 30_000

_SESSION_COLUMNS = (
    SessionRow.id,
    SessionRow.user_id,
    SessionRow.created_at,
    SessionRow.last_active_at,
    SessionRow.context_started_at,
)
_MESSAGE_COLUMNS = (
    MessageRow.id,
    MessageRow.session_id,
    MessageRow.turn_id,
    MessageRow.role,
    MessageRow.content,
    MessageRow.status,
    MessageRow.created_at,
    MessageRow.source,
    MessageRow.model,
    MessageRow.prompt_tokens,
    MessageRow.completion_tokens,
)
_SESSION_BY_ID = select(*_SESSION_COLUMNS).where(SessionRow.id == bindparam("session_id"))


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers run while a turn writes; NORMAL is still crash-safe in WAL mode.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def create_engine_for(database_url: str, **engine_kwargs: Any) -> AsyncEngine:
    """An async engine tuned for ``database_url`` (``sqlite+aiosqlite://…`` or ``postgresql+asyncpg://…``).

    ``engine_kwargs`` (pool settings, ``connect_args`` …) override the defaults.
    """
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000} | engine_kwargs.pop("connect_args", {})
        engine = create_async_engine(url, connect_args=connect_args, **engine_kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        options: dict[str, Any] = {
            "pool_size": 10,
            "max_overflow": 20,
            "pool_pre_ping": True,
            "pool_recycle": 1800,
        }
        options.update(engine_kwargs)
        if options.get("poolclass") is not None:
            for key in ("pool_size", "max_overflow"):
                options.pop(key, None)
        return create_async_engine(url, **options)
    raise ConfigError(f"unsupported database {backend!r}: use sqlite+aiosqlite:// or postgresql+asyncpg://")


def _session(row: RowMapping) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        user_id=row["user_id"],
        created_at=row["created_at"],
        last_active_at=row["last_active_at"],
        context_started_at=row["context_started_at"],
    )


def _message(row: RowMapping) -> MessageRecord:
    return MessageRecord(
        id=row["id"],
        session_id=row["session_id"],
        turn_id=row["turn_id"],
        role=cast(MessageRole, row["role"]),
        content=row["content"],
        status=cast(MessageStatus, row["status"]),
        created_at=row["created_at"],
        source=row["source"],
        model=row["model"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
    )


class SqlTranscriptStore:
    """:class:`~kefu.store.base.TranscriptStore` on SQLite or PostgreSQL.

    The schema must exist (run :func:`kefu.store.migrate.upgrade_database` first).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name
        if self._dialect == "postgresql":
            self._insert: Any = pg_insert
            self._single = engine.execution_options(isolation_level="AUTOCOMMIT")
        elif self._dialect == "sqlite":
            self._insert = sqlite_insert
            self._single = engine
        else:
            raise ConfigError(f"unsupported database dialect {self._dialect!r}")

    async def create_session(self, session_id: str, user_id: str, now: datetime) -> SessionRecord:
        now = as_utc(now)
        insert_new = (
            self._insert(SessionRow)
            .values(id=session_id, user_id=user_id, created_at=now, last_active_at=now, context_started_at=now)
            .on_conflict_do_nothing(index_elements=[SessionRow.id])
            .returning(*_SESSION_COLUMNS)
        )
        # A concurrent delete can slip between the two statements; then the insert is tried again.
        for _ in range(3):
            async with self._single.begin() as conn:
                row = (await conn.execute(insert_new)).mappings().one_or_none()
                if row is None:
                    row = (
                        (await conn.execute(select(*_SESSION_COLUMNS).where(SessionRow.id == session_id)))
                        .mappings()
                        .one_or_none()
                    )
            if row is not None:
                return _session(row)
        raise RuntimeError(f"session {session_id!r} kept disappearing while being created")

    async def get_session(self, session_id: str) -> SessionRecord | None:
        async with self._single.connect() as conn:
            row = (await conn.execute(_SESSION_BY_ID, {"session_id": session_id})).mappings().one_or_none()
        return None if row is None else _session(row)

    async def add_user_message(
        self, session_id: str, turn_id: str, content: str, now: datetime, *, reset_context: bool
    ) -> MessageRecord:
        """Store the user's message and touch the session. Raises :class:`NotFound` for an unknown session."""
        now = as_utc(now)
        values: dict[str, Any] = {"last_active_at": now}
        if reset_context:
            values["context_started_at"] = now
        touch = update(SessionRow).where(SessionRow.id == session_id).values(**values)
        if self._dialect == "postgresql":
            # One statement: the session update feeds the insert, so a missing session inserts nothing.
            touched = touch.returning(SessionRow.id).cte("touched")
            source = select(
                touched.c.id,
                literal(turn_id, String()),
                literal("user", String()),
                literal(content, Text()),
                literal("complete", String()),
                literal(now, UTCDateTime()),
            )
            stmt = (
                self._insert(MessageRow)
                .from_select(["session_id", "turn_id", "role", "content", "status", "created_at"], source)
                .returning(MessageRow.id)
            )
            async with self._single.begin() as conn:
                message_id = (await conn.execute(stmt)).scalar_one_or_none()
        else:
            async with self.engine.begin() as conn:
                if (await conn.execute(touch)).rowcount == 0:
                    message_id = None
                else:
                    message_id = (
                        await conn.execute(
                            self._insert(MessageRow)
                            .values(
                                session_id=session_id,
                                turn_id=turn_id,
                                role="user",
                                content=content,
                                status="complete",
                                created_at=now,
                            )
                            .returning(MessageRow.id)
                        )
                    ).scalar_one()
        if message_id is None:
            raise NotFound(f"session {session_id} does not exist")
        return MessageRecord(
            id=message_id,
            session_id=session_id,
            turn_id=turn_id,
            role="user",
            content=content,
            status="complete",
            created_at=now,
        )

    async def add_assistant_message(
        self,
        session_id: str,
        turn_id: str,
        content: str,
        status: MessageStatus,
        now: datetime,
        *,
        source: str | None,
        model: str | None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
    ) -> bool:
        """Store the answer once. Also returns False (storing nothing) when the session was deleted."""
        now = as_utc(now)
        # Selecting from sessions makes a deleted session a no-op instead of a foreign-key error.
        source_row = select(
            SessionRow.id,
            literal(turn_id, String()),
            literal("assistant", String()),
            literal(content, Text()),
            literal(status, String()),
            literal(source, String()),
            literal(model, String()),
            literal(prompt_tokens, Integer()),
            literal(completion_tokens, Integer()),
            literal(now, UTCDateTime()),
        ).where(SessionRow.id == session_id)
        stmt = (
            self._insert(MessageRow)
            .from_select(
                [
                    "session_id",
                    "turn_id",
                    "role",
                    "content",
                    "status",
                    "source",
                    "model",
                    "prompt_tokens",
                    "completion_tokens",
                    "created_at",
                ],
                source_row,
            )
            .on_conflict_do_nothing(index_elements=[MessageRow.turn_id, MessageRow.role])
            .returning(MessageRow.id)
        )
        async with self._single.begin() as conn:
            inserted = (await conn.execute(stmt)).scalar_one_or_none()
        return inserted is not None

    async def list_messages(
        self, session_id: str, *, since: datetime | None = None, last: int | None = None
    ) -> list[MessageRecord]:
        if last is not None and last < 0:
            raise ValueError("last must be >= 0")
        if last == 0:
            return []
        query = select(*_MESSAGE_COLUMNS).where(MessageRow.session_id == session_id)
        if since is not None:
            query = query.where(MessageRow.created_at >= as_utc(since))
        if last is not None:
            query = query.order_by(MessageRow.created_at.desc(), MessageRow.id.desc()).limit(last)
        else:
            query = query.order_by(MessageRow.created_at, MessageRow.id)
        async with self._single.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        messages = [_message(row) for row in rows]
        if last is not None:
            messages.reverse()
        return messages

    async def delete_session(self, session_id: str) -> bool:
        # Explicit message delete: SQLite only cascades when PRAGMA foreign_keys is on for that connection.
        async with self.engine.begin() as conn:
            await conn.execute(delete(MessageRow).where(MessageRow.session_id == session_id))
            deleted = (
                await conn.execute(delete(SessionRow).where(SessionRow.id == session_id).returning(SessionRow.id))
            ).scalar_one_or_none()
        return deleted is not None

    async def ping(self) -> None:
        async with self._single.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def aclose(self) -> None:
        await self.engine.dispose()
