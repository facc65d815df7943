"""Run the schema migrations from code (no ``alembic.ini`` needed).

Safe to call from several processes starting at once: on PostgreSQL the migration holds an advisory lock,
on SQLite it runs inside one ``BEGIN IMMEDIATE`` transaction (the database's write lock). Within one
process, concurrent calls take turns.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from kefu.store.sql import create_engine_for

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

_IN_PROCESS = threading.Lock()


def alembic_config(database_url: str) -> Config:
    """An Alembic config for kefu's migrations, built in code."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would eat the '%' of URL-encoded passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def migration_engine(database_url: str) -> AsyncEngine:
    """An engine for migrating: no pool, and on SQLite transactions that take the write lock at BEGIN."""
    engine = create_engine_for(database_url, poolclass=NullPool)
    if engine.dialect.name == "sqlite":
        # pysqlite would commit around DDL and begin lazily; take control of transactions instead, so the
        # whole migration (version check included) is one transaction that other migrators wait for.
        @event.listens_for(engine.sync_engine, "connect")
        def _manual_transactions(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _begin_immediate(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _ensure_sqlite_dir(database_url: str) -> None:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


async def upgrade_database(database_url: str) -> None:
    """Create or upgrade the schema at ``database_url`` to the newest revision. Idempotent."""
    await asyncio.to_thread(upgrade_database_sync, database_url)


def upgrade_database_sync(database_url: str) -> None:
    """:func:`upgrade_database` for code without an event loop (the CLI); not from inside a running loop."""
    # Alembic keeps the running migration in module globals (``alembic.context``), so two migrations in
    # one process must not interleave; other processes are kept out by the database locks.
    with _IN_PROCESS:
        _ensure_sqlite_dir(database_url)
        asyncio.run(_upgrade_async(database_url))


async def _upgrade_async(database_url: str) -> None:
    config = alembic_config(database_url)
    engine = migration_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, config)
    finally:
        await engine.dispose()


def _upgrade(connection: Connection, config: Config) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
