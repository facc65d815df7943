"""Build everything a kefu process needs from :class:`Settings`, and tear it down again."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from redis.asyncio import Redis

from kefu.bot.loader import Bot, load_bot
from kefu.config import Settings
from kefu.demo.shop import TOKEN_ENV as SHOP_TOKEN_ENV
from kefu.demo.shop import URL_ENV as SHOP_URL_ENV
from kefu.demo.shop import shop_token
from kefu.engine.answering import Answerer
from kefu.engine.flow_step import FlowStep, TurnSlotReader
from kefu.engine.people import People
from kefu.engine.runner import TurnConfig, TurnRunner
from kefu.engine.service import ChatService
from kefu.engine.sharing import SharedAnswers
from kefu.engine.slot_reader import ModelSlotReader
from kefu.engine.usage import UsageMeter, open_meter
from kefu.errors import ConfigError
from kefu.handoff.accounts import AgentAccounts
from kefu.handoff.config import HandoffConfig
from kefu.handoff.feed import FeedHub, MemoryFeedHub, MemoryPresence, RedisFeedHub, RedisPresence
from kefu.handoff.service import Desk, Presence
from kefu.handoff.webhooks import Webhooks, WebhookTarget
from kefu.identity import Authenticator
from kefu.kb import KnowledgeBase, open_knowledge_base
from kefu.kb.knowledge import Knowledge
from kefu.llm.base import ChatModel
from kefu.llm.factory import build_chat_model
from kefu.obs.logging import get_logger
from kefu.obs.metrics import Metrics
from kefu.privacy.retention import Retention, RetentionPolicy
from kefu.privacy.rights import Rights
from kefu.ratelimit import RateLimiter
from kefu.store.base import HotState, JobLocks, TranscriptStore
from kefu.store.cache import AnswerCache, MemoryAnswerCache, RedisAnswerCache
from kefu.store.desk import DeskStore
from kefu.store.factory import build_hot_state, build_transcript_store
from kefu.store.flowstate import FlowStates
from kefu.store.migrate import upgrade_database
from kefu.store.privacy import PrivacyStore
from kefu.store.redis import redis_client
from kefu.store.sql import create_engine_for

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
    bot: Bot
    flow_states: FlowStates
    answerer: Answerer
    desk: Desk
    accounts: AgentAccounts
    webhooks: Webhooks
    hub: FeedHub
    rights: Rights
    retention: Retention
    usage: UsageMeter | None = None
    slot_reader: TurnSlotReader | None = None  # the model reading flow answers the rules could not (None: rules only)
    redis: Redis | None = None
    tool_mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None
    _retired: list[Bot] = field(default_factory=list)
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    async def reload_bot(self) -> Bot:
        """Load the bot directory again and switch to it; running turns finish with the old one.

        Raises :class:`ConfigError` with the problem report (and keeps the current bot) when it is invalid.
        """
        # Reading files and building the flow router (jieba) happen off the event loop.
        bot = await asyncio.to_thread(open_bot, self.settings, self.metrics, self.tool_mounts)
        self._retired.append(self.bot)  # closed at shutdown: a running turn may still call its tools
        self.bot = bot
        self.answerer.use_bot(
            system_prompt=bot.system_prompt,
            texts=bot.texts,
            flow_step=flow_step_for(bot, self.flow_states, self.knowledge, self.metrics, read_slot=self.slot_reader),
            content_version=bot.fingerprint,
            moderator=bot.moderator,
            external_moderation=bot.external_moderation,
        )
        self.desk.use_config(bot.handoff)
        self.webhooks.use_targets(webhook_targets(bot.handoff))
        log.info("bot_reloaded", directory=str(bot.directory), fingerprint=bot.fingerprint, flows=len(bot.flows))
        return bot

    async def aclose(self) -> None:
        """Stop turns (keeping partial answers) and close every pool."""
        await self.chat.shutdown(self.settings.shutdown_grace)
        for task in self._background:
            task.cancel()
        await self.webhooks.stop()
        await self.hub.aclose()
        for bot in (self.bot, *self._retired):
            await bot.aclose()
        await self.flow_states.aclose()
        if self.model is not None:
            await self.model.aclose()
        await self.hot.aclose()
        await self.store.aclose()
        if isinstance(self.knowledge, KnowledgeBase):
            await self.knowledge.aclose()
        if self.redis is not None:
            await self.redis.aclose()


def webhook_targets(config: HandoffConfig) -> list[WebhookTarget]:
    """The bot's webhook targets, with their secrets read from the environment."""
    return [
        WebhookTarget(
            name=spec.name,
            url=spec.url,
            events=frozenset(spec.events),
            secret=os.environ.get(spec.secret_env) if spec.secret_env else None,
            format=spec.format,
        )
        for spec in config.webhooks
    ]


async def _expire_queue(desk: Desk, every: float) -> None:
    # Every replica runs this; each return to the bot is a compare-and-set, so only one replica makes it.
    while True:
        await asyncio.sleep(every)
        try:
            await desk.expire_queue()
        except Exception as exc:
            log.warning("queue_expiry_failed", error=repr(exc))


async def _sweep(retention: Retention, every: float) -> None:
    # Every replica tries; the job lock lets one sweep at a time, the others find it taken and wait for the next.
    # The first try comes soon after start (spread over a minute, so a rollout does not start them all at once):
    # replicas restarted more often than every `every` seconds would otherwise never sweep.
    delay = random.uniform(0, min(every, 60.0))
    while True:
        await asyncio.sleep(delay)
        delay = every
        try:
            await retention.sweep()
        except Exception as exc:
            log.warning("privacy_sweep_failed", error=repr(exc))


async def _close_lost_turns(chat: ChatService, locks: JobLocks, every: float, owner: str) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            if not await locks.acquire_job("lost-turns", owner, lease_seconds=every * 2):
                continue  # another replica is at it
            try:
                closed = await chat.close_lost_turns()
            finally:
                await locks.release_job("lost-turns", owner)
            if closed:
                log.warning("lost_turns_closed", turns=closed)
        except Exception as exc:
            log.warning("lost_turn_sweep_failed", error=repr(exc))


def retention_policy(settings: Settings) -> RetentionPolicy:
    """The retention periods configured (0 = never)."""
    anonymise, delete = settings.retention_anonymise_hours, settings.retention_delete_days
    return RetentionPolicy(
        anonymise_after=timedelta(hours=anonymise) if anonymise > 0 else None,
        delete_after=timedelta(days=delete) if delete > 0 else None,
    )


def flow_step_for(
    bot: Bot, states: FlowStates, knowledge: Knowledge, metrics: Metrics, *, read_slot: TurnSlotReader | None = None
) -> FlowStep | None:
    """The flow step of ``bot``'s turns (None for a bot without flows)."""
    return FlowStep(bot.interpreter, states, knowledge, metrics, read_slot=read_slot) if len(bot.flows) else None


def tool_env(settings: Settings) -> dict[str, str]:
    """What ``{env.NAME}`` in tool definitions sees: the environment, plus the demo shop's address and (in demo
    mode) the token of the merchant API this server mounts."""
    env = dict(os.environ)
    if settings.demo_shop_url:
        env[SHOP_URL_ENV] = settings.demo_shop_url
    if settings.demo:
        env[SHOP_TOKEN_ENV] = shop_token(settings)
    return env


def tool_allow_hosts(settings: Settings) -> list[str]:
    """Hosts tools may call on private addresses: the configured ones, and in demo mode the demo shop's."""
    hosts = settings.tools_allow_host_list
    if settings.demo and settings.demo_shop_url:
        # Exactly the demo shop's host and port: not every service on its (loopback) address, Redis included.
        parts = urlsplit(settings.demo_shop_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or ""
        hosts = [*hosts, f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    return hosts


def open_bot(
    settings: Settings,
    metrics: Metrics | None = None,
    mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> Bot:
    """The configured bot directory, loaded; :class:`ConfigError` with the full report when it is invalid.

    ``mounts`` route tool calls for a base URL to an in-process app (``kefu test`` uses it for the demo shop).
    """
    bot, problems = load_bot(
        settings.bot_dir,
        env=tool_env(settings),
        allow_hosts=tool_allow_hosts(settings),
        metrics=metrics,
        mounts=mounts,
    )
    for problem in problems.items:
        if problem.severity == "warning":
            log.warning("bot_warning", problem=str(problem))
    if bot is None:
        raise ConfigError(f"the bot in {settings.bot_dir} is invalid:\n{problems.report()}")
    return bot


async def build_runtime(
    settings: Settings,
    *,
    migrate: bool = True,
    tool_mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> Runtime:
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
    redis = (
        redis_client(
            settings.redis_url, max_connections=settings.redis_max_connections, pool_timeout=settings.redis_pool_timeout
        )
        if settings.redis_url
        else None
    )
    bot = await asyncio.to_thread(open_bot, settings, metrics, tool_mounts)  # jieba: off the loop
    if settings.neutral_bot:
        log.warning(
            "bot_neutral",
            directory=str(settings.bot_dir),
            hint="no KEFU_BOT_DIR: the built-in neutral bot answers (no FAQ, no shop policies); "
            "run `kefu init ./mybot` and set KEFU_BOT_DIR=./mybot",
        )
    aux_engine = create_engine_for(settings.database_url)  # flow state, handoffs, agents, webhooks
    flow_states = FlowStates(aux_engine, redis=redis, prefix=settings.redis_prefix, ttl=settings.session_ttl)
    hub: FeedHub = RedisFeedHub(redis, settings.redis_prefix) if redis else MemoryFeedHub()
    presence: Presence = RedisPresence(redis, settings.redis_prefix) if redis else MemoryPresence()
    accounts = AgentAccounts(aux_engine)
    webhooks = Webhooks(aux_engine, metrics=metrics)
    webhooks.use_targets(webhook_targets(bot.handoff))

    async def agent_name(agent_id: str) -> str | None:
        agent = await accounts.get(agent_id)
        return agent.display_name if agent else None

    desk = Desk(
        DeskStore(aux_engine),
        hub,
        config=bot.handoff,
        metrics=metrics,
        presence=presence,
        notifier=webhooks,
        agent_name=agent_name,
    )
    people = People(desk)

    async def forget(session_id: str) -> None:
        # What the session's rows do not take with them (feed, notes and handoffs cascade in SQL).
        await flow_states.forget(session_id)
        await webhooks.forget_session(session_id)

    shared = None
    if settings.answer_cache_ttl > 0:
        cache: AnswerCache = RedisAnswerCache(redis, settings.redis_prefix) if redis else MemoryAnswerCache()
        shared = SharedAnswers(cache, ttl=settings.answer_cache_ttl, metrics=metrics)
    usage = await open_meter(settings, metrics, aux_engine, redis)  # the token ledger, prices, daily budget
    slot_reader = None
    if model is not None and settings.flow_model_slots:
        slot_reader = ModelSlotReader(model, metrics=metrics, usage=usage, pii_kinds=settings.pii_mask_kinds)
    flow_step = flow_step_for(bot, flow_states, knowledge, metrics, read_slot=slot_reader)
    answerer = Answerer(
        model=model,
        knowledge=knowledge,
        metrics=metrics,
        system_prompt=bot.system_prompt,
        texts=bot.texts,
        token_budget=settings.history_token_budget,
        shared=shared,
        content_version=bot.fingerprint,
        flow_step=flow_step,
        people=people,
        pii_kinds=settings.pii_mask_kinds,
        moderator=bot.moderator,
        external_moderation=bot.external_moderation,
        usage=usage,
    )
    runner = TurnRunner(
        store=store,
        turns=hot,
        leases=hot,
        context=hot,
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
        turns=hot,
        leases=hot,
        context=hot,
        runner=runner,
        max_message_chars=settings.max_message_chars,
        session_ttl=settings.session_ttl,
        lease_seconds=settings.turn_lease_seconds,
        owner=owner,
        on_session_deleted=forget,
        people=people,
    )
    webhooks.start()
    privacy = PrivacyStore(aux_engine)
    rights = Rights(
        privacy, turns=hot, leases=hot, context=hot, flows=flow_states, lease_seconds=settings.turn_lease_seconds
    )
    retention = Retention(
        privacy, policy=retention_policy(settings), turns=hot, context=hot, flows=flow_states, locks=hot
    )
    background = [asyncio.create_task(_expire_queue(desk, 15.0), name="handoff-queue-expiry")]
    if settings.lost_turn_sweep_seconds > 0:
        background.append(
            asyncio.create_task(
                _close_lost_turns(chat, hot, settings.lost_turn_sweep_seconds, owner), name="lost-turn-sweep"
            )
        )
    if settings.retention_sweep_seconds > 0:
        background.append(
            asyncio.create_task(_sweep(retention, settings.retention_sweep_seconds), name="privacy-retention-sweep")
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
        bot=bot,
        flow_states=flow_states,
        answerer=answerer,
        desk=desk,
        accounts=accounts,
        webhooks=webhooks,
        hub=hub,
        redis=redis,
        tool_mounts=tool_mounts,
        rights=rights,
        retention=retention,
        usage=usage,
        slot_reader=slot_reader,
        _background=background,
    )
