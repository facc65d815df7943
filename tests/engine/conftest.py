"""The engine wired as :func:`kefu.runtime.build_runtime` wires it, with a fake model, in-memory hot state on a fake
clock and a real SQLite transcript store in the test's tmp dir. No HTTP.

Several replicas (ChatService + TurnRunner + Answerer, each with its own owner id) can share one hot state and
one store, as processes behind a load balancer share Redis and the database.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kefu.engine.answering import Answerer
from kefu.engine.events import Logged
from kefu.engine.people import People
from kefu.engine.runner import TurnConfig, TurnRunner
from kefu.engine.service import ChatService, TurnHandle
from kefu.handoff.config import HandoffConfig
from kefu.handoff.feed import MemoryFeedHub, MemoryPresence
from kefu.handoff.service import Desk
from kefu.identity import Identity
from kefu.kb.knowledge import NoKnowledge
from kefu.llm.base import ChatModel
from kefu.obs.metrics import Metrics
from kefu.store.base import MessageRecord, TurnMeta
from kefu.store.desk import DeskStore
from kefu.store.memory import MemoryHotState
from kefu.store.migrate import upgrade_database_sync
from kefu.store.sql import SqlTranscriptStore, create_engine_for
from tests.engine.fakes import FakeClock, SpyStore, collect

SESSION_TTL = 1800
ALICE = Identity("alice", "user")
BOB = Identity("bob", "user")

LEASE_SECONDS = 0.3  # renewed every 0.1 s of real time; expiry is on the fake clock
HEARTBEAT = 0.02  # how long a follower waits for events before it checks the lease


@dataclass
class Replica:
    """One process's engine."""

    chat: ChatService
    runner: TurnRunner
    answerer: Answerer
    model: ChatModel | None
    owner: str
    metrics: Metrics

    def active_turns(self) -> float:
        """Turns running in this replica (the gauge drops when a turn's task has fully ended)."""
        return self.metrics.registry.get_sample_value("kefu_active_turns") or 0.0


@dataclass
class Engine:
    """Shared state (store, hot state, clock) and the replicas built on it."""

    store: SpyStore
    hot: MemoryHotState
    clock: FakeClock
    db_url: str = ""
    replicas: list[Replica] = field(default_factory=list)
    hub: MemoryFeedHub = field(default_factory=MemoryFeedHub)
    presence: MemoryPresence = field(default_factory=MemoryPresence)
    desks: list[Desk] = field(default_factory=list)

    def desk(self, config: HandoffConfig | None = None) -> Desk:
        """The people side on the shared database (one per replica, as in ``build_runtime``)."""
        desk = Desk(
            DeskStore(create_engine_for(self.db_url)),
            self.hub,
            config=config or HandoffConfig(),
            metrics=Metrics(),
            presence=self.presence,
        )
        self.desks.append(desk)
        return desk

    def replica(
        self, model: ChatModel | None, *, lease_seconds: float = LEASE_SECONDS, desk: Desk | None = None
    ) -> Replica:
        """A new process on the shared store and hot state (wired as ``build_runtime`` does); ``desk`` hands
        conversations to people."""
        metrics = Metrics()
        owner = f"test-host:{len(self.replicas)}:{uuid.uuid4().hex[:8]}"
        people = People(desk) if desk is not None else None
        answerer = Answerer(
            model=model,
            knowledge=NoKnowledge(),
            metrics=metrics,
            system_prompt="You are a test bot.",
            token_budget=4000,
            people=people,
        )
        runner = TurnRunner(
            store=self.store,
            turns=self.hot,
            leases=self.hot,
            context=self.hot,
            answerer=answerer,
            metrics=metrics,
            provider_name=model.name if model else "none",
            config=TurnConfig(
                max_context_messages=20, session_ttl=SESSION_TTL, coalesce_seconds=0.0, lease_seconds=lease_seconds
            ),
            owner=owner,
            clock=self.clock,
        )
        chat = ChatService(
            store=self.store,
            turns=self.hot,
            leases=self.hot,
            context=self.hot,
            runner=runner,
            max_message_chars=4000,
            session_ttl=SESSION_TTL,
            lease_seconds=lease_seconds,
            owner=owner,
            people=people,
        )
        replica = Replica(chat, runner, answerer, model, owner, metrics)
        self.replicas.append(replica)
        return replica

    async def follow_all(
        self, replica: Replica, meta: TurnMeta | TurnHandle, after: int = 0, **kw: float
    ) -> list[Logged]:
        """Every event of the turn after ``after`` as ``replica`` serves it, until ``done``/``error``."""
        m = meta.meta if isinstance(meta, TurnHandle) else meta
        return await collect(replica.chat.follow(m, after, heartbeat=HEARTBEAT), **kw)

    async def answers(self, session_id: str) -> list[MessageRecord]:
        """The session's assistant rows."""
        return [m for m in await self.store.list_messages(session_id) if m.role == "assistant"]


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with the schema, migrated once per run (each test gets a copy)."""
    path = tmp_path_factory.mktemp("engine-db") / "template.db"
    upgrade_database_sync(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
async def engine(tmp_path: Path, migrated_db: Path) -> AsyncIterator[Engine]:
    path = tmp_path / "kefu.db"
    shutil.copyfile(migrated_db, path)
    sql = SqlTranscriptStore(create_engine_for(f"sqlite+aiosqlite:///{path}"))
    clock = FakeClock()
    env = Engine(
        store=SpyStore(sql), hot=MemoryHotState(clock=clock), clock=clock, db_url=f"sqlite+aiosqlite:///{path}"
    )
    yield env
    for replica in env.replicas:
        await replica.chat.shutdown(grace=0)
    for desk in env.desks:
        await desk.aclose()
    await env.hot.aclose()
    await sql.aclose()
