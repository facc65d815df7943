"""Build the stores from :class:`~kefu.config.Settings` (called once, in the app's lifespan)."""

from __future__ import annotations

from kefu.config import Settings
from kefu.store.base import HotState
from kefu.store.memory import MemoryHotState
from kefu.store.redis import RedisHotState
from kefu.store.sql import SqlTranscriptStore, create_engine_for


def build_transcript_store(settings: Settings) -> SqlTranscriptStore:
    """The SQL transcript store for ``settings.database_url`` (the schema is migrated separately)."""
    return SqlTranscriptStore(create_engine_for(settings.database_url))


def build_hot_state(settings: Settings) -> HotState:
    """Redis when ``settings.redis_url`` is set (shared by workers and replicas), else process memory."""
    if settings.redis_url:
        return RedisHotState.from_url(
            settings.redis_url,
            settings.redis_prefix,
            turn_log_ttl=settings.turn_log_ttl,
            max_connections=settings.redis_max_connections,
            pool_timeout=settings.redis_pool_timeout,
        )
    return MemoryHotState(turn_log_ttl=settings.turn_log_ttl)
