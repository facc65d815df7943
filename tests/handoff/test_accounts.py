"""Agent accounts against a real database (a SQLite file, and PostgreSQL when it runs)."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from kefu.errors import AuthError, InvalidInput, NotFound
from kefu.handoff import accounts as accounts_module
from kefu.handoff.accounts import Agent, AgentAccounts
from kefu.store.agents import AGENTS, TOKENS
from kefu.store.migrate import upgrade_database, upgrade_database_sync
from kefu.store.sql import create_engine_for

PASSWORD = "correct horse"


class Clock:
    """A settable clock for token expiry."""

    def __init__(self) -> None:
        self.now = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite file that each test copies (migrating takes longer than the test)."""
    path = tmp_path_factory.mktemp("template") / "kefu.db"
    upgrade_database_sync(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of this test's own: a copy of the migrated SQLite file, or an empty PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "kefu.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_db")
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade_database(database_url)  # a no-op on the migrated SQLite copy
    engine = create_engine_for(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sqlite_accounts(migrated_sqlite: Path, tmp_path: Path) -> AsyncIterator[AgentAccounts]:
    """Accounts on SQLite only, for rules checked before any SQL runs."""
    path = tmp_path / "kefu.db"
    shutil.copyfile(migrated_sqlite, path)
    engine = create_engine_for(f"sqlite+aiosqlite:///{path}")
    yield AgentAccounts(engine)
    await engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(engine: AsyncEngine, clock: Clock) -> AgentAccounts:
    return AgentAccounts(engine, token_ttl=3600, clock=clock)


async def _stored_hash(engine: AsyncEngine, name: str) -> str:
    async with engine.connect() as conn:
        value: str = (await conn.execute(select(AGENTS.c.password_hash).where(AGENTS.c.name == name))).scalar_one()
    return value


async def _stored_tokens(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(TOKENS.c.token_hash))).scalars())


async def test_add_login_authenticate_logout(accounts: AgentAccounts) -> None:
    added = await accounts.add("xiaowang", PASSWORD, role="admin", display_name=" 小王 ")
    assert added.id.startswith("ag_") and len(added.id) == 3 + 16
    assert (added.name, added.display_name, added.role, added.disabled, added.is_admin) == (
        "xiaowang",
        "小王",
        "admin",
        False,
        True,
    )
    agent, token = await accounts.login("xiaowang", PASSWORD)
    assert agent == added
    assert token.startswith("kd_") and len(token) > 40
    assert await accounts.authenticate(token) == added
    await accounts.logout(token)
    with pytest.raises(AuthError) as caught:
        await accounts.authenticate(token)
    assert caught.value.code == "invalid_token"


async def test_lookups_and_list(accounts: AgentAccounts) -> None:
    bob = await accounts.add("bob", PASSWORD)
    alice = await accounts.add("alice", PASSWORD, role="admin")
    assert bob.display_name == "bob" and bob.role == "agent" and not bob.is_admin
    assert [a.name for a in await accounts.list()] == ["alice", "bob"]
    assert await accounts.get(alice.id) == alice
    assert await accounts.by_name("bob") == bob
    assert await accounts.get("ag_missing") is None
    assert await accounts.by_name("carol") is None


async def test_the_password_is_stored_as_an_argon2_hash(accounts: AgentAccounts, engine: AsyncEngine) -> None:
    await accounts.add("xiaowang", PASSWORD)
    stored = await _stored_hash(engine, "xiaowang")
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_only_the_sha256_of_a_token_is_stored(accounts: AgentAccounts, engine: AsyncEngine) -> None:
    await accounts.add("xiaowang", PASSWORD)
    _, token = await accounts.login("xiaowang", PASSWORD)
    stored = await _stored_tokens(engine)
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in stored


async def test_a_token_expires_and_is_then_deleted(accounts: AgentAccounts, engine: AsyncEngine, clock: Clock) -> None:
    await accounts.add("xiaowang", PASSWORD)
    _, token = await accounts.login("xiaowang", PASSWORD)
    clock.advance(3599)
    assert (await accounts.authenticate(token)).name == "xiaowang"
    clock.advance(1)
    with pytest.raises(AuthError) as caught:
        await accounts.authenticate(token)
    assert caught.value.code == "invalid_token"
    assert await _stored_tokens(engine) == []


async def test_a_login_drops_the_agents_expired_tokens(
    accounts: AgentAccounts, engine: AsyncEngine, clock: Clock
) -> None:
    await accounts.add("xiaowang", PASSWORD)
    await accounts.login("xiaowang", PASSWORD)  # expires below
    clock.advance(7200)
    _, new = await accounts.login("xiaowang", PASSWORD)
    assert await _stored_tokens(engine) == [hashlib.sha256(new.encode()).hexdigest()]


@pytest.mark.parametrize("token", ["", "nope", "kd_not-a-real-token", "Bearer kd_x"])
async def test_unknown_tokens_are_refused(accounts: AgentAccounts, token: str) -> None:
    with pytest.raises(AuthError) as caught:
        await accounts.authenticate(token)
    assert caught.value.code == "invalid_token"


async def test_bad_credentials_look_the_same_whatever_was_wrong(accounts: AgentAccounts) -> None:
    await accounts.add("xiaowang", PASSWORD)
    await accounts.add("gone", PASSWORD)
    await accounts.set_disabled("gone", True)
    failures = []
    for name, password in [("xiaowang", "wrong password"), ("nobody", PASSWORD), ("gone", PASSWORD)]:
        with pytest.raises(AuthError) as caught:
            await accounts.login(name, password)
        failures.append((caught.value.code, caught.value.message))
    assert len(set(failures)) == 1
    assert failures[0][0] == "bad_credentials"


async def test_an_unknown_name_is_still_checked_against_a_hash(
    accounts: AgentAccounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    real_verify = accounts_module._verify

    def spy(password: str, password_hash: str) -> tuple[bool, str | None]:
        checked.append(password_hash)
        return real_verify(password, password_hash)

    monkeypatch.setattr(accounts_module, "_verify", spy)
    with pytest.raises(AuthError):
        await accounts.login("nobody", PASSWORD)
    assert len(checked) == 1 and checked[0].startswith("$argon2id$")


async def test_disabling_ends_logins_and_enabling_allows_new_ones(accounts: AgentAccounts) -> None:
    added = await accounts.add("xiaowang", PASSWORD)
    _, token = await accounts.login("xiaowang", PASSWORD)
    await accounts.set_disabled("xiaowang", True)
    assert await accounts.by_name("xiaowang") == Agent(
        id=added.id, name="xiaowang", display_name="xiaowang", role="agent", disabled=True
    )
    with pytest.raises(AuthError) as caught:
        await accounts.authenticate(token)
    assert caught.value.code == "invalid_token"
    await accounts.set_disabled("xiaowang", False)
    with pytest.raises(AuthError):  # re-enabling does not bring old logins back
        await accounts.authenticate(token)
    _, fresh = await accounts.login("xiaowang", PASSWORD)
    assert (await accounts.authenticate(fresh)).disabled is False


async def test_a_new_password_ends_logins_and_replaces_the_old_one(accounts: AgentAccounts) -> None:
    await accounts.add("xiaowang", PASSWORD)
    _, token = await accounts.login("xiaowang", PASSWORD)
    await accounts.set_password("xiaowang", "another pass")
    with pytest.raises(AuthError):
        await accounts.authenticate(token)
    with pytest.raises(AuthError):
        await accounts.login("xiaowang", PASSWORD)
    agent, _ = await accounts.login("xiaowang", "another pass")
    assert agent.name == "xiaowang"


async def test_changing_an_unknown_agent_is_not_found(accounts: AgentAccounts) -> None:
    with pytest.raises(NotFound):
        await accounts.set_password("nobody", PASSWORD)
    with pytest.raises(NotFound):
        await accounts.set_disabled("nobody", True)
    assert await accounts.remove("nobody") is False


async def test_remove_deletes_the_agent_and_its_logins(accounts: AgentAccounts, engine: AsyncEngine) -> None:
    added = await accounts.add("xiaowang", PASSWORD)
    _, token = await accounts.login("xiaowang", PASSWORD)
    assert await accounts.remove("xiaowang") is True
    assert await accounts.get(added.id) is None
    assert await _stored_tokens(engine) == []
    with pytest.raises(AuthError):
        await accounts.authenticate(token)


async def test_a_taken_name_is_refused(accounts: AgentAccounts) -> None:
    await accounts.add("xiaowang", PASSWORD)
    with pytest.raises(InvalidInput) as caught:
        await accounts.add("xiaowang", "other password", role="admin")
    assert caught.value.code == "agent_exists"
    assert [a.role for a in await accounts.list()] == ["agent"]


async def test_two_adds_racing_for_one_name_leave_one_agent(accounts: AgentAccounts) -> None:
    results = await asyncio.gather(
        accounts.add("xiaowang", PASSWORD), accounts.add("xiaowang", PASSWORD), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["Agent", "InvalidInput"]
    refused = next(r for r in results if isinstance(r, InvalidInput))
    assert refused.code == "agent_exists"
    assert len(await accounts.list()) == 1


@pytest.mark.parametrize(
    ("name", "password", "role", "display_name", "words"),
    [
        ("", PASSWORD, "agent", None, "agent name"),
        ("has space", PASSWORD, "agent", None, "agent name"),
        ("x" * 65, PASSWORD, "agent", None, "agent name"),
        ("a/b", PASSWORD, "agent", None, "agent name"),
        ("xiaowang", "short", "agent", None, "at least 8"),
        ("xiaowang", PASSWORD, "boss", None, "role"),
        ("xiaowang", PASSWORD, "agent", "   ", "display name"),
        ("xiaowang", PASSWORD, "agent", "x" * 65, "display name"),
    ],
)
async def test_bad_input_is_refused(
    sqlite_accounts: AgentAccounts, name: str, password: str, role: str, display_name: str | None, words: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await sqlite_accounts.add(name, password, role=role, display_name=display_name)
    assert caught.value.code == "invalid_input"
    assert words in caught.value.message
    assert await sqlite_accounts.list() == []


async def test_a_short_new_password_is_refused(accounts: AgentAccounts) -> None:
    await accounts.add("xiaowang", PASSWORD)
    with pytest.raises(InvalidInput):
        await accounts.set_password("xiaowang", "short")
    assert (await accounts.login("xiaowang", PASSWORD))[0].name == "xiaowang"


async def test_a_weak_hash_is_upgraded_at_login_without_ending_logins(
    accounts: AgentAccounts, engine: AsyncEngine
) -> None:
    await accounts.add("xiaowang", PASSWORD)
    _, token = await accounts.login("xiaowang", PASSWORD)
    weak = Argon2Hasher(time_cost=1, memory_cost=8 * 1024).hash(PASSWORD)
    async with engine.begin() as conn:
        await conn.execute(update(AGENTS).where(AGENTS.c.name == "xiaowang").values(password_hash=weak))
    await accounts.login("xiaowang", PASSWORD)
    upgraded = await _stored_hash(engine, "xiaowang")
    assert upgraded != weak
    assert not Argon2Hasher().check_needs_rehash(upgraded)
    assert (await accounts.authenticate(token)).name == "xiaowang"
    assert (await accounts.login("xiaowang", PASSWORD))[0].name == "xiaowang"


async def test_an_unusable_stored_hash_refuses_the_login(accounts: AgentAccounts, engine: AsyncEngine) -> None:
    await accounts.add("xiaowang", PASSWORD)
    async with engine.begin() as conn:
        await conn.execute(update(AGENTS).where(AGENTS.c.name == "xiaowang").values(password_hash="plain"))
    with pytest.raises(AuthError) as caught:
        await accounts.login("xiaowang", "plain")
    assert caught.value.code == "bad_credentials"
