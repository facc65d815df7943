"""Fixtures for the report tests: a migrated database (SQLite file and PostgreSQL) seeded with a shop's week, and
the demo shop's knowledge base on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from kefu.bot.texts import CannedTexts
from kefu.config import DEMO_BOT_DIR, Settings
from kefu.kb.factory import open_knowledge_base
from kefu.kb.service import KnowledgeBase
from kefu.report.service import Reports
from kefu.store.migrate import upgrade_database
from kefu.store.sql import create_engine_for
from tests.report.seed import seed, week


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file in the test's tmp dir, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'kefu.db'}"
    url: str = request.getfixturevalue("postgres_db")
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The migrated database, seeded with :func:`tests.report.seed.week`."""
    await upgrade_database(database_url)
    engine = create_engine_for(database_url)
    await seed(engine, week())
    yield engine
    await engine.dispose()


@pytest.fixture
async def knowledge(database_url: str, engine: AsyncEngine) -> AsyncIterator[KnowledgeBase]:
    """The demo shop's knowledge base, in the same database."""
    kb = await open_knowledge_base(Settings(bot_dir=DEMO_BOT_DIR, database_url=database_url))
    yield kb
    await kb.aclose()


@pytest.fixture
def reports(engine: AsyncEngine, knowledge: KnowledgeBase) -> Reports:
    """Reports over the seeded database with the demo knowledge base and the default canned texts."""
    return Reports(engine, knowledge=lambda: knowledge, texts=CannedTexts)
