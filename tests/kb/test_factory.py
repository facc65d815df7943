"""Settings → knowledge base: defaults agree with the calibrated thresholds; migration 0002 creates the tables."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from kefu.config import DEMO_BOT_DIR, Settings
from kefu.kb.confidence import Thresholds
from kefu.kb.factory import embedder, kb_config, open_knowledge_base
from kefu.store.sql import create_engine_for


def test_factory_settings_defaults_match_the_calibrated_thresholds() -> None:
    config = kb_config(Settings(_env_file=None))
    assert config.thresholds == Thresholds()
    assert embedder(Settings(_env_file=None)) is None


def test_factory_reads_kb_settings_from_the_environment(monkeypatch: object, tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        kb_confidence_high=0.6,
        kb_confidence_medium=0.2,
        kb_confidence_margin=0.1,
        kb_chunk_chars=100,
        kb_chunk_overlap=90,
        embeddings_base_url="http://127.0.0.1:9/v1",
        embeddings_model="m",
    )
    config = kb_config(settings)
    assert (config.thresholds.high, config.thresholds.medium, config.thresholds.margin) == (0.6, 0.2, 0.1)
    assert (config.chunking.size, config.chunking.overlap) == (100, 50)  # overlap capped at half a chunk
    client = embedder(settings)
    assert client is not None and client.model == "m"


async def test_migration_creates_kb_tables_and_open_syncs_the_demo(database_url: str) -> None:
    engine = create_engine_for(database_url)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        version = await conn.scalar(text("SELECT value FROM kb_meta WHERE name = 'version'"))
    await engine.dispose()
    assert {"kb_entries", "kb_meta"} <= tables and version == 0
    kb = await open_knowledge_base(Settings(_env_file=None, bot_dir=DEMO_BOT_DIR, database_url=database_url))
    try:
        assert kb.available and kb.version.startswith("1-")
        entries, total = await kb.store.list(kind="faq")
        assert total == 67 and entries
    finally:
        await kb.aclose()


async def test_migration_matches_the_kb_models(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import Connection

    from kefu.store import kb_models as models
    from kefu.store.models import Base

    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        changes = compare_metadata(context, Base.metadata)
        return [c for c in changes if "kb_" in repr(c)]

    assert models.KbEntryRow.__tablename__ in Base.metadata.tables
    engine = create_engine_for(database_url)
    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    await engine.dispose()
