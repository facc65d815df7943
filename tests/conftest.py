"""Shared fixtures: the mock upstream and kefu servers as real processes over loopback."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import JWT_SECRET, KefuServer, MockLLM, service_unavailable, start_mock

REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get("KEFU_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
# The demo shop's system prompt without its knowledge base: these tests exercise the model path, and an FAQ
# hit would answer without asking the model (tests/kb runs the demo shop with its knowledge base).
MODEL_ONLY_BOT = Path(__file__).parent / "bots" / "model-only"


@pytest.fixture(scope="session")
def mock_llm() -> Iterator[MockLLM]:
    """One mock upstream for the whole run (tests script it per request)."""
    mock = start_mock("--ttft", "0.01", "--tps", "2000", "--tokens", "40")
    yield mock
    mock.stop()


@pytest.fixture
def fresh_mock(mock_llm: MockLLM) -> MockLLM:
    """The session mock with its script queue cleared."""
    mock_llm.reset()
    return mock_llm


def server_env(mock: MockLLM | None, **extra: str) -> dict[str, str]:
    """Environment for a kefu server talking to ``mock``."""
    env = {
        "KEFU_JWT_SECRET": JWT_SECRET,
        "KEFU_API_KEYS": "test-api-key",
        "KEFU_LLM_FIRST_TOKEN_TIMEOUT": "5",
        "KEFU_LLM_IDLE_TIMEOUT": "5",
        "KEFU_LOG_LEVEL": "info",
        "KEFU_DEMO": "0",
        "KEFU_BOT_DIR": str(MODEL_ONLY_BOT),
        # Every test request comes from 127.0.0.1 and a few user ids: rate-limit tests set their own limits.
        "KEFU_RATE_LIMIT_IP": "off",
        "KEFU_RATE_LIMIT_USER": "off",
        "KEFU_RATE_LIMIT_API_KEY": "off",
        "KEFU_RATE_LIMIT_VISITOR_TOKENS": "off",
        "KEFU_RATE_LIMIT_RESUME": "off",
        # A test that exhausts the model's retries opens its breaker; the next test must not inherit that.
        "KEFU_LLM_BREAKER_OPEN_SECONDS": "0.05",
        # Shared answers would replay one scripted answer to later tests asking the same question.
        "KEFU_ANSWER_CACHE_TTL": "0",
    }
    if mock is not None:
        env |= {"KEFU_LLM_BASE_URL": mock.url + "/v1", "KEFU_LLM_API_KEY": "sk-test", "KEFU_LLM_MODEL": "mock-chat"}
    return env | extra


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., KefuServer]]:
    """Start kefu servers (stopped at the end of the test); SQLite in the test's tmp dir by default."""
    started: list[KefuServer] = []

    def make(mock: MockLLM | None, *, workers: int = 1, **extra: str) -> KefuServer:
        env = server_env(mock, **extra)
        env.setdefault("KEFU_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'kefu.db'}")
        server = KefuServer(env=env, workdir=tmp_path, workers=workers)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory, mock_llm: MockLLM) -> Iterator[KefuServer]:
    """One kefu server per test module (SQLite) for tests that don't restart it."""
    workdir = tmp_path_factory.mktemp("kefu")
    env = server_env(mock_llm, KEFU_DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'kefu.db'}")
    server = KefuServer(env=env, workdir=workdir).start()
    yield server
    server.stop()


@pytest.fixture
def client(shared_server: KefuServer, fresh_mock: MockLLM) -> Iterator[httpx.Client]:
    """An HTTP client for the module's server, with the mock's script cleared."""
    with httpx.Client(base_url=shared_server.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis, or skip (fail under CI=true)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:  # any failure to reach it
        service_unavailable("Redis", f"{REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """A reachable PostgreSQL server URL, or skip (fail under CI=true)."""
    import asyncio

    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(DATABASE_URL.replace("+asyncpg", ""), timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # any failure to reach it
        service_unavailable("PostgreSQL", f"{DATABASE_URL}: {exc}")
    return DATABASE_URL


@pytest.fixture
def postgres_db(postgres_server_url: str) -> Iterator[str]:
    """A throwaway database on the PostgreSQL server, dropped after the test."""
    import asyncio
    import uuid

    import asyncpg

    name = f"kefu_test_{uuid.uuid4().hex[:12]}"
    admin = postgres_server_url.replace("+asyncpg", "")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    base = postgres_server_url.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
