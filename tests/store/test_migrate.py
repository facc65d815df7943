"""Migrations on SQLite and PostgreSQL: idempotent, safe to run concurrently, and matching the models."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

import kefu
from kefu.store import desk_models, flow_models, kb_models  # noqa: F401  (register their tables on Base)
from kefu.store.migrate import alembic_config, upgrade_database, upgrade_database_sync
from kefu.store.models import Base
from kefu.store.sql import create_engine_for


async def schema_state(url: str) -> tuple[set[str], list[str], list[Any]]:
    """Tables, applied revisions, and the differences between the models and the live schema."""

    def read(conn: Connection) -> tuple[set[str], list[str], list[Any]]:
        tables = set(inspect(conn).get_table_names())
        versions = [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return tables, versions, compare_metadata(context, Base.metadata)

    engine = create_engine_for(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(read)
    finally:
        await engine.dispose()


def head(url: str) -> str:
    revision = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert revision is not None
    return revision


async def test_upgrade_creates_the_schema_and_is_idempotent(database_url: str) -> None:
    await upgrade_database(database_url)
    await upgrade_database(database_url)
    tables, versions, diff = await schema_state(database_url)
    assert tables == {
        "sessions",
        "messages",
        "kb_entries",
        "kb_meta",
        "flow_states",
        "handoff_requests",
        "agents",
        "agent_tokens",
        "conversation_events",
        "desk_notes",
        "webhook_deliveries",
        "privacy_audit",
        "llm_usage",
        "alembic_version",
    }
    assert versions == [head(database_url)]
    assert diff == []


async def test_concurrent_upgrades_in_one_process(database_url: str) -> None:
    await asyncio.gather(*(upgrade_database(database_url) for _ in range(4)))
    tables, versions, _ = await schema_state(database_url)
    assert {"sessions", "messages"} <= tables
    assert versions == [head(database_url)]


async def test_upgrades_from_several_processes_at_once(database_url: str) -> None:
    """Workers starting together: the database lock (advisory lock / BEGIN IMMEDIATE) lets one migrate."""
    # Each process imports first, then all start migrating at the same moment.
    code = (
        "import sys, time; from kefu.store.migrate import upgrade_database_sync; "
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); upgrade_database_sync(sys.argv[1])"
    )
    start_at = str(time.time() + 3)
    env = os.environ | {"PYTHONPATH": str(Path(kefu.__file__).parents[1])}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, database_url, start_at, env=env, stdout=PIPE, stderr=STDOUT
        )
        for _ in range(4)
    ]
    outputs = [(await proc.communicate())[0].decode(errors="replace") for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, "\n".join(outputs)
    tables, versions, _ = await schema_state(database_url)
    assert {"sessions", "messages"} <= tables
    assert versions == [head(database_url)]


def test_sync_upgrade_creates_the_sqlite_directory(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "kefu.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade_database_sync(url)
    upgrade_database_sync(url)
    assert path.exists()
    tables, versions, _ = asyncio.run(schema_state(url))
    assert "messages" in tables and versions == [head(url)]
