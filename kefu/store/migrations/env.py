"""Alembic environment for kefu.

Normally driven by :func:`kefu.store.migrate.upgrade_database`, which hands over an open connection in
``config.attributes["connection"]`` (already inside a transaction). Used any other way (``alembic`` on the
command line with a config whose ``script_location`` is this directory) it opens its own connection from
``sqlalchemy.url``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, text

import kefu.store.desk_models  # noqa: F401  (registers the desk tables)
import kefu.store.flow_models  # noqa: F401  (registers the flow tables)
import kefu.store.kb_models  # noqa: F401  (registers the knowledge-base tables on Base.metadata)
from kefu.store.models import Base

# Any constant works; it only has to be the same for every kefu process migrating one database.
PG_MIGRATION_LOCK_KEY = 0x6B656675

target_metadata = Base.metadata


def run_migrations(connection: Connection) -> None:
    """Bring the schema to the target revision on ``connection``."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Workers starting together queue here; each then sees the version table the first one wrote.
            # The transaction-scoped lock is released by the commit that publishes the new schema.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK_KEY})
        context.run_migrations()


async def _run_online(url: str) -> None:
    from kefu.store.migrate import migration_engine

    engine = migration_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def _main() -> None:
    if context.is_offline_mode():
        context.configure(
            url=context.config.get_main_option("sqlalchemy.url"),
            target_metadata=target_metadata,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url to migrate")
    asyncio.run(_run_online(url))


_main()
