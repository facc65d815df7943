"""Build the knowledge base from :class:`~kefu.config.Settings` (the server, the CLI and tests share this)."""

from __future__ import annotations

from kefu.config import Settings
from kefu.kb.botdir import Chunking
from kefu.kb.confidence import Thresholds
from kefu.kb.embeddings import Embedder
from kefu.kb.service import KbConfig, KnowledgeBase
from kefu.kb.store import KbStore
from kefu.store.sql import create_engine_for


def kb_config(settings: Settings) -> KbConfig:
    """The knowledge-base part of ``settings``."""
    return KbConfig(
        bot_dir=settings.bot_dir,
        thresholds=Thresholds(
            high=settings.kb_confidence_high,
            medium=settings.kb_confidence_medium,
            margin=settings.kb_confidence_margin,
            direct=settings.kb_confidence_direct,
        ),
        chunking=Chunking(
            size=settings.kb_chunk_chars, overlap=min(settings.kb_chunk_overlap, settings.kb_chunk_chars // 2)
        ),
        refresh_seconds=settings.kb_refresh_seconds,
    )


def embedder(settings: Settings) -> Embedder | None:
    """The embeddings client, when dense retrieval is configured."""
    if not settings.embeddings_base_url or not settings.embeddings_model:
        return None
    key = settings.embeddings_api_key.get_secret_value() if settings.embeddings_api_key else None
    return Embedder(settings.embeddings_base_url, settings.embeddings_model, key)


def kb_store(settings: Settings) -> KbStore:
    """The SQL store on its own small pool (the transcript store keeps its own)."""
    options = {} if settings.is_sqlite else {"pool_size": 2, "max_overflow": 3}
    return KbStore(create_engine_for(settings.database_url, **options))


async def open_knowledge_base(settings: Settings, *, sync_bot: bool = True) -> KnowledgeBase:
    """A started knowledge base: bot files synced into SQL (unless ``sync_bot`` is False), index built.

    The schema must be migrated already (``kefu.store.migrate.upgrade_database``)."""
    kb = KnowledgeBase(kb_store(settings), kb_config(settings), embedder=embedder(settings))
    try:
        await kb.start(sync_bot=sync_bot)
    except BaseException:
        await kb.aclose()
        raise
    return kb
