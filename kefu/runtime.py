"""Build everything a kefu process needs from :class:`Settings`, and tear it down again."""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from kefu.config import Settings
from kefu.engine.answering import Answerer
from kefu.engine.knowledge import Knowledge
from kefu.engine.prompts import load_system_prompt
from kefu.engine.runner import TurnConfig, TurnRunner
from kefu.engine.service import ChatService
from kefu.engine.sharing import SharedAnswers
from kefu.identity import Authenticator
from kefu.kb import KnowledgeBase, open_knowledge_base
from kefu.llm.base import ChatModel
from kefu.llm.factory import build_chat_model
from kefu.obs.logging import get_logger
from kefu.obs.metrics import Metrics
from kefu.ratelimit import RateLimiter
from kefu.store.base import HotState, TranscriptStore
from kefu.store.cache import AnswerCache, MemoryAnswerCache, RedisAnswerCache
from kefu.store.factory import build_hot_state, build_transcript_store
from kefu.store.migrate import upgrade_database

log = get_logger("kefu.runtime")


@dataclass(slots=True)
class Runtime:
    """The long-lived objects of one process."""

    settings: Settings
    store: TranscriptStore
    hot: HotState
    model: ChatModel | None
    knowledge: Knowledge
    metrics: Metrics
    auth: Authenticator
    chat: ChatService
    owner: str
    limiter: RateLimiter
    redis: Redis | None = None

    async def aclose(self) -> None:
        """Stop turns (keeping partial answers) and close every pool."""
        await self.chat.shutdown()
        if self.model is not None:
            await self.model.aclose()
        await self.hot.aclose()
        await self.store.aclose()
        if isinstance(self.knowledge, KnowledgeBase):
            await self.knowledge.aclose()
        if self.redis is not None:
            await self.redis.aclose()


async def build_runtime(settings: Settings, *, migrate: bool = True) -> Runtime:
    """Open the database (migrating it), hot state and model client; wire the chat service."""
    if migrate:
        await upgrade_database(settings.database_url)
    store = build_transcript_store(settings)
    hot = build_hot_state(settings)
    metrics = Metrics()
    model: ChatModel | None = build_chat_model(settings, metrics)
    if model is None:
        log.warning(
            "llm_not_configured",
            hint="set KEFU_LLM_API_KEY (and KEFU_LLM_BASE_URL / KEFU_LLM_MODEL); until then only the KB answers",
        )
    knowledge: Knowledge = await open_knowledge_base(settings)  # bot files synced, index built off the loop
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    system_prompt = load_system_prompt(settings.bot_dir)
    shared = None
    if settings.answer_cache_ttl > 0:
        cache: AnswerCache = RedisAnswerCache(redis, settings.redis_prefix) if redis else MemoryAnswerCache()
        shared = SharedAnswers(cache, ttl=settings.answer_cache_ttl, metrics=metrics)
    answerer = Answerer(
        model=model,
        knowledge=knowledge,
        metrics=metrics,
        system_prompt=system_prompt,
        token_budget=settings.history_token_budget,
        shared=shared,
        content_version=hashlib.sha256(system_prompt.encode()).hexdigest()[:16],
    )
    runner = TurnRunner(
        store=store,
        hot=hot,
        answerer=answerer,
        metrics=metrics,
        provider_name=model.name if model else "none",
        config=TurnConfig(
            max_context_messages=settings.history_max_messages,
            session_ttl=settings.session_ttl,
            coalesce_seconds=settings.coalesce_ms / 1000,
            lease_seconds=settings.turn_lease_seconds,
        ),
        owner=owner,
    )
    chat = ChatService(
        store=store,
        hot=hot,
        runner=runner,
        max_message_chars=settings.max_message_chars,
        session_ttl=settings.session_ttl,
        lease_seconds=settings.turn_lease_seconds,
        owner=owner,
    )
    return Runtime(
        settings=settings,
        store=store,
        hot=hot,
        model=model,
        knowledge=knowledge,
        metrics=metrics,
        auth=Authenticator.from_settings(settings),
        chat=chat,
        owner=owner,
        limiter=RateLimiter.from_settings(settings, metrics),
        redis=redis,
    )
