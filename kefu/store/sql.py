"""The durable transcript in SQL: :class:`SqlTranscriptStore` over an async SQLAlchemy engine.

SQLite and PostgreSQL (asyncpg) are supported. The store is on every turn's path, so each method is a single
statement where the database allows it, statements are built once (only parameters change per call), and on
PostgreSQL single statements run in autocommit mode (no BEGIN/COMMIT round trips).

Writes are group-committed: a write that arrives while another batch is being committed waits for it and then
goes out together with every other write that queued meanwhile, in one transaction (:class:`GroupCommit`). A
lone write goes out at once, as before, so nothing waits at low load; at high load the per-transaction costs
(pool checkout, BEGIN/COMMIT, SQLite's write lock) are paid once per batch, and SQLite sees one writer instead of
many connections contending for its lock.

Operations are plain synchronous SQLAlchemy code run by a :class:`_Executor`. On a SQLite file each whole
operation (or batch) runs on a small thread pool with the stdlib driver: one thread hop per operation, where
aiosqlite makes one per cursor call (cursor, execute, fetch, close, commit, reset), and each hop is CPU and, on a
busy machine, scheduling delay before the first token. On PostgreSQL they run in the async engine's greenlet
(``run_sync``), i.e. straight over asyncpg.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    RowMapping,
    String,
    Text,
    bindparam,
    create_engine,
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

from kefu.errors import ConfigError, Conflict, NotFound
from kefu.store.base import MessageRecord, MessageRole, MessageStatus, SessionRecord
from kefu.store.models import MessageRow, SessionRow, UTCDateTime, as_utc

SQLITE_BUSY_TIMEOUT_MS = 30_000
# A SQLite connection is a thread in aiosqlite: keep enough of them that bursts reuse instead of opening new ones.
SQLITE_POOL_SIZE = 20
SQLITE_MAX_OVERFLOW = 30
# The most writes one group commit carries.
MAX_BATCH = 128
# Threads running SQLite operations (writes are serialised by the group commit; reads run beside them).
SQLITE_THREADS = 4

_SESSION_COLUMNS = (
    SessionRow.id,
    SessionRow.user_id,
    SessionRow.created_at,
    SessionRow.last_active_at,
    SessionRow.context_started_at,
    SessionRow.handoff_state,
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
    MessageRow.author,
    MessageRow.moderation,
)
_SESSION_BY_ID = select(*_SESSION_COLUMNS).where(SessionRow.id == bindparam("session_id"))
_ASSISTANT_COLUMNS = [
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
    "moderation",
]
# Selecting from sessions makes a deleted session a no-op instead of a foreign-key error.
_ASSISTANT_SOURCE = select(
    SessionRow.id,
    bindparam("turn_id", type_=String()),
    literal("assistant", String()),
    bindparam("content", type_=Text()),
    bindparam("status", type_=String()),
    bindparam("source", type_=String()),
    bindparam("model", type_=String()),
    bindparam("prompt_tokens", type_=Integer()),
    bindparam("completion_tokens", type_=Integer()),
    bindparam("now", type_=UTCDateTime()),
    bindparam("moderation", type_=String()),
).where(SessionRow.id == bindparam("session_id"))
_TOUCH = update(SessionRow).where(SessionRow.id == bindparam("session_id"))
_TOUCH_ONLY = _TOUCH.values(last_active_at=bindparam("now"))
_TOUCH_RESET = _TOUCH.values(last_active_at=bindparam("now"), context_started_at=bindparam("now"))
_USER_SOURCE_VALUES = (
    literal("user", String()),
    bindparam("content", type_=Text()),
    literal("complete", String()),
    bindparam("now", type_=UTCDateTime()),
)
_USER_COLUMNS = ["session_id", "turn_id", "role", "content", "status", "created_at"]

Op = Callable[[Connection], Any]


class _Executor(Protocol):
    """Runs synchronous SQLAlchemy operations without blocking the event loop."""

    async def transaction(self, ops: list[Op], *, alone: bool) -> list[Any]:
        """Run ``ops`` in one transaction (``alone``: a single operation, autocommit where that is cheaper)."""
        ...

    async def read(self, op: Op) -> Any:
        """Run a read-only operation."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads."""
        ...


class _AsyncEngineExecutor:
    """Operations inside the async engine's greenlet (PostgreSQL over asyncpg; SQLite in memory)."""

    def __init__(self, engine: AsyncEngine, single: AsyncEngine) -> None:
        self._engine = engine
        self._single = single

    async def transaction(self, ops: list[Op], *, alone: bool) -> list[Any]:
        async with (self._single if alone else self._engine).begin() as conn:
            return await conn.run_sync(_run_all, ops)

    async def read(self, op: Op) -> Any:
        async with self._single.connect() as conn:
            return await conn.run_sync(op)

    async def aclose(self) -> None:
        return None


class _ThreadExecutor:
    """Operations on a SQLite file with the stdlib driver, each one whole on a small thread pool."""

    def __init__(self, engine: Engine, threads: int = SQLITE_THREADS) -> None:
        self._engine = engine
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kefu-sqlite")

    async def transaction(self, ops: list[Op], *, alone: bool) -> list[Any]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._transaction, ops)

    async def read(self, op: Op) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._read, op)

    def _transaction(self, ops: list[Op]) -> list[Any]:
        with self._engine.begin() as conn:
            return _run_all(conn, ops)

    def _read(self, op: Op) -> Any:
        with self._engine.connect() as conn:
            return op(conn)

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._engine.dispose)
        self._pool.shutdown(wait=False)


def _run_all(conn: Connection, ops: list[Op]) -> list[Any]:
    return [op(conn) for op in ops]


class GroupCommit:
    """Runs write operations; those that queue up while a transaction commits share the next one.

    An operation is a function of a connection inside a transaction; it must not commit itself and should report
    outcomes by its return value (an exception fails the batch, which is then retried one operation per
    transaction so that one bad write cannot take the others down). A batch of one may use a cheaper mode
    (autocommit on PostgreSQL).
    """

    def __init__(self, executor: _Executor, *, max_batch: int = MAX_BATCH) -> None:
        self._executor = executor
        self._max_batch = max_batch
        self._pending: list[tuple[Op, asyncio.Future[Any], bool]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # transactions committed, for tests and diagnostics
        self.writes = 0

    async def run(self, op: Op, *, atomic: bool = False) -> Any:
        """Run ``op`` in the next transaction and return its result (once committed).

        ``atomic``: ``op`` runs several statements that must commit together, so it never takes the autocommit
        mode of a batch of one.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((op, future, atomic))
        if self._task is None:
            self._task = loop.create_task(self._drain())
        # The write is committed (or not) by the drain task even if this caller stops waiting.
        return await asyncio.shield(future)

    async def wait_idle(self) -> None:
        """Wait until every queued write has been committed."""
        while self._task is not None:
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        batch: list[tuple[Op, asyncio.Future[Any], bool]] = []
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                if len(batch) == 1:
                    await self._run_alone(*batch[0])
                    continue
                try:
                    results = await self._executor.transaction([op for op, _, _ in batch], alone=False)
                except Exception:
                    for op, future, atomic in batch:  # isolate the failing write; the others still commit
                        await self._run_alone(op, future, atomic)
                    continue
                self.batches += 1
                self.writes += len(batch)
                for (_, future, _), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
            batch = []
        except BaseException as exc:  # cancelled (loop shutdown): nobody may wait for ever
            for _, future, _ in batch + self._pending:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("write abandoned"))
            self._pending.clear()
            raise
        finally:
            self._task = None

    async def _run_alone(self, op: Op, future: asyncio.Future[Any], atomic: bool) -> None:
        try:
            [result] = await self._executor.transaction([op], alone=not atomic)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        self.batches += 1
        self.writes += 1
        if not future.done():
            future.set_result(result)


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
        if _is_sqlite_file(url.database) and "poolclass" not in engine_kwargs:
            engine_kwargs.setdefault("pool_size", SQLITE_POOL_SIZE)
            engine_kwargs.setdefault("max_overflow", SQLITE_MAX_OVERFLOW)
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


def _is_sqlite_file(database: str | None) -> bool:
    return bool(database) and database != ":memory:" and not str(database).startswith("file::memory:")


def _sync_sqlite_engine(engine: AsyncEngine) -> Engine | None:
    """A stdlib-driver engine on the same SQLite file as ``engine`` (None for in-memory databases)."""
    url = engine.url
    if not _is_sqlite_file(url.database):
        return None
    sync = create_engine(
        url.set(drivername="sqlite"),
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=SQLITE_THREADS,
        max_overflow=SQLITE_THREADS,
    )
    event.listen(sync, "connect", _sqlite_pragmas)
    return sync


def _session_row(session_id: str, user_id: str, now: datetime) -> dict[str, Any]:
    """The values of a new session's row."""
    return {"id": session_id, "user_id": user_id, "created_at": now, "last_active_at": now, "context_started_at": now}


def _user_row(session_id: str, turn_id: str, content: str, now: datetime) -> dict[str, Any]:
    """The values of a user message's row."""
    return {
        "session_id": session_id,
        "turn_id": turn_id,
        "role": "user",
        "content": content,
        "status": "complete",
        "created_at": now,
    }


def _user_record(message_id: int, row: dict[str, Any]) -> MessageRecord:
    return MessageRecord(
        id=message_id,
        session_id=row["session_id"],
        turn_id=row["turn_id"],
        role="user",
        content=row["content"],
        status="complete",
        created_at=row["created_at"],
    )


def _session(row: RowMapping) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        user_id=row["user_id"],
        created_at=row["created_at"],
        last_active_at=row["last_active_at"],
        context_started_at=row["context_started_at"],
        handoff_state=row["handoff_state"],
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
        author=row["author"],
        moderation=row["moderation"],
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
        sync = _sync_sqlite_engine(engine) if self._dialect == "sqlite" else None
        self._executor: _Executor = (
            _ThreadExecutor(sync) if sync is not None else _AsyncEngineExecutor(engine, self._single)
        )
        self.writes = GroupCommit(self._executor)
        self._insert_session = (
            self._insert(SessionRow).on_conflict_do_nothing(index_elements=[SessionRow.id]).returning(*_SESSION_COLUMNS)
        )
        self._insert_user = self._insert(MessageRow).returning(MessageRow.id)
        self._insert_assistant = (
            self._insert(MessageRow)
            .from_select(_ASSISTANT_COLUMNS, _ASSISTANT_SOURCE)
            .on_conflict_do_nothing(index_elements=[MessageRow.turn_id, MessageRow.role])
            .returning(MessageRow.id)
        )
        # PostgreSQL: one statement, the session update feeds the insert, so a missing session inserts nothing.
        self._pg_user: dict[bool, Any] = {}
        if self._dialect == "postgresql":
            for reset, touch in ((False, _TOUCH_ONLY), (True, _TOUCH_RESET)):
                touched = touch.returning(SessionRow.id).cte("touched")
                source = select(touched.c.id, bindparam("turn_id", type_=String()), *_USER_SOURCE_VALUES)
                self._pg_user[reset] = (
                    self._insert(MessageRow).from_select(_USER_COLUMNS, source).returning(MessageRow.id)
                )

    async def create_session(self, session_id: str, user_id: str, now: datetime) -> SessionRecord:
        now = as_utc(now)
        params = _session_row(session_id, user_id, now)

        def op(conn: Connection) -> SessionRecord | None:
            row = conn.execute(self._insert_session, params).mappings().one_or_none()
            if row is None:
                row = conn.execute(_SESSION_BY_ID, {"session_id": session_id}).mappings().one_or_none()
            return None if row is None else _session(row)

        # A concurrent delete can slip between the two statements; then the insert is tried again.
        for _ in range(3):
            record = await self.writes.run(op)
            if record is not None:
                return cast(SessionRecord, record)
        raise RuntimeError(f"session {session_id!r} kept disappearing while being created")

    async def start_session(
        self, session_id: str, user_id: str, turn_id: str, content: str, now: datetime
    ) -> MessageRecord:
        now = as_utc(now)
        session = _session_row(session_id, user_id, now)
        message = _user_row(session_id, turn_id, content, now)

        def op(conn: Connection) -> int | None:
            if conn.execute(self._insert_session, session).mappings().one_or_none() is None:
                return None  # the id is taken: never add a message to a conversation that is not this one
            return cast(int, conn.execute(self._insert_user, message).scalar_one())

        message_id = await self.writes.run(op, atomic=True)
        if message_id is None:
            raise Conflict(f"session {session_id} exists already", code="session_exists")
        return _user_record(message_id, message)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        def op(conn: Connection) -> SessionRecord | None:
            row = conn.execute(_SESSION_BY_ID, {"session_id": session_id}).mappings().one_or_none()
            return None if row is None else _session(row)

        return cast(SessionRecord | None, await self._executor.read(op))

    async def add_user_message(
        self, session_id: str, turn_id: str, content: str, now: datetime, *, reset_context: bool
    ) -> MessageRecord:
        """Store the user's message and touch the session. Raises :class:`NotFound` for an unknown session."""
        now = as_utc(now)
        params = {"session_id": session_id, "turn_id": turn_id, "content": content, "now": now}
        if self._dialect == "postgresql":
            statement = self._pg_user[reset_context]

            def op(conn: Connection) -> int | None:
                return cast(int | None, conn.execute(statement, params).scalar_one_or_none())

        else:
            touch = _TOUCH_RESET if reset_context else _TOUCH_ONLY
            row = _user_row(session_id, turn_id, content, now)

            def op(conn: Connection) -> int | None:
                if conn.execute(touch, {"session_id": session_id, "now": now}).rowcount == 0:
                    return None
                return cast(int, conn.execute(self._insert_user, row).scalar_one())

        message_id = await self.writes.run(op)
        if message_id is None:
            raise NotFound(f"session {session_id} does not exist")
        return _user_record(message_id, _user_row(session_id, turn_id, content, now))

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
        moderation: str | None = None,
    ) -> bool:
        """Store the answer once. Also returns False (storing nothing) when the session was deleted."""
        params = {
            "moderation": moderation,
            "session_id": session_id,
            "turn_id": turn_id,
            "content": content,
            "status": status,
            "source": source,
            "model": model,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "now": as_utc(now),
        }

        def op(conn: Connection) -> bool:
            return conn.execute(self._insert_assistant, params).scalar_one_or_none() is not None

        return cast(bool, await self.writes.run(op))

    async def mark_message(self, turn_id: str, role: MessageRole, mark: str) -> bool:
        """Record what content moderation did to a stored message; False if there is no such message."""
        query = (
            update(MessageRow)
            .where(MessageRow.turn_id == turn_id, MessageRow.role == role)
            .values(moderation=mark[:64])
        )

        def op(conn: Connection) -> bool:
            return conn.execute(query).rowcount > 0

        return cast(bool, await self.writes.run(op))

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

        def op(conn: Connection) -> list[MessageRecord]:
            return [_message(row) for row in conn.execute(query).mappings()]

        messages = cast(list[MessageRecord], await self._executor.read(op))
        if last is not None:
            messages.reverse()
        return messages

    async def delete_session(self, session_id: str) -> bool:
        # Explicit message delete: SQLite only cascades when PRAGMA foreign_keys is on for that connection.
        def op(conn: Connection) -> bool:
            conn.execute(delete(MessageRow).where(MessageRow.session_id == session_id))
            deleted = conn.execute(
                delete(SessionRow).where(SessionRow.id == session_id).returning(SessionRow.id)
            ).scalar_one_or_none()
            return deleted is not None

        [deleted] = await self._executor.transaction([op], alone=False)
        return cast(bool, deleted)

    async def ping(self) -> None:
        def op(conn: Connection) -> None:
            conn.execute(text("SELECT 1"))

        await self._executor.read(op)

    async def aclose(self) -> None:
        await self.writes.wait_idle()
        await self._executor.aclose()
        await self.engine.dispose()
