"""``kefu agent …`` through typer's runner, on a SQLite file in the test's tmp dir.

The sub-app is driven directly (so these tests need only the agent commands to import); one test checks that
``kefu`` itself offers it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from kefu.cli.agent import app
from kefu.errors import AuthError
from kefu.handoff.accounts import Agent, AgentAccounts
from kefu.store.sql import create_engine_for

PASSWORD = "s3cret pass "  # the trailing space is part of it


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # no stray .env from the working directory
    return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'kefu.db'}"


def _agent(database_url: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=stdin, env={"KEFU_DATABASE_URL": database_url})


def _login(database_url: str, name: str, password: str) -> Agent:
    async def run() -> Agent:
        engine = create_engine_for(database_url)
        try:
            return (await AgentAccounts(engine).login(name, password))[0]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_add_reads_the_password_from_stdin_and_list_shows_the_agent(database_url: str) -> None:
    added = _agent(
        database_url,
        "add",
        "xiaowang",
        "--role",
        "admin",
        "--display-name",
        "小王",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    assert "added admin xiaowang" in added.stdout
    assert PASSWORD.strip() not in added.output
    assert _login(database_url, "xiaowang", PASSWORD).role == "admin"

    listed = _agent(database_url, "list")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.stdout.splitlines() if "xiaowang" in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")] == ["xiaowang", "小王", "admin", "no"]


def test_add_prompts_twice_for_a_hidden_password(database_url: str) -> None:
    result = _agent(database_url, "add", "xiaowang", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD.strip() not in result.output
    assert _login(database_url, "xiaowang", PASSWORD).role == "agent"


def test_the_password_cannot_be_given_as_an_argument(database_url: str) -> None:
    result = _agent(database_url, "add", "xiaowang", "--password", PASSWORD)
    assert result.exit_code == 2
    assert "No such option" in result.stderr


def test_a_bad_role_exits_non_zero_and_says_why(database_url: str) -> None:
    result = _agent(database_url, "add", "xiaowang", "--role", "boss", "--password-stdin", stdin=PASSWORD)
    assert result.exit_code == 2
    assert "--role" in result.stderr and "'boss' is not one of" in result.stderr
    assert "no agents yet" in _agent(database_url, "list").stdout


def test_a_taken_name_exits_non_zero_and_says_why(database_url: str) -> None:
    assert _agent(database_url, "add", "xiaowang", "--password-stdin", stdin=PASSWORD).exit_code == 0
    again = _agent(database_url, "add", "xiaowang", "--role", "admin", "--password-stdin", stdin="other password")
    assert again.exit_code == 1
    assert "error: an agent named 'xiaowang' already exists" in again.stderr
    assert _login(database_url, "xiaowang", PASSWORD).role == "agent"


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [("has space", PASSWORD, "agent name must be"), ("xiaowang", "short", "at least 8 characters")],
)
def test_bad_input_exits_non_zero_and_says_why(database_url: str, name: str, password: str, message: str) -> None:
    result = _agent(database_url, "add", name, "--password-stdin", stdin=password)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and message in result.stderr


def test_passwd_disable_enable_remove(database_url: str) -> None:
    assert _agent(database_url, "add", "xiaowang", "--password-stdin", stdin=PASSWORD).exit_code == 0

    assert _agent(database_url, "passwd", "xiaowang", "--password-stdin", stdin="new password").exit_code == 0
    assert _login(database_url, "xiaowang", "new password").name == "xiaowang"
    with pytest.raises(AuthError):
        _login(database_url, "xiaowang", PASSWORD)

    assert _agent(database_url, "disable", "xiaowang").exit_code == 0
    assert "│ yes" in _agent(database_url, "list").stdout
    with pytest.raises(AuthError):
        _login(database_url, "xiaowang", "new password")
    assert _agent(database_url, "enable", "xiaowang").exit_code == 0
    assert _login(database_url, "xiaowang", "new password").disabled is False

    assert _agent(database_url, "remove", "xiaowang").exit_code == 0
    assert "no agents yet" in _agent(database_url, "list").stdout


@pytest.mark.parametrize("command", ["passwd", "disable", "enable", "remove"])
def test_an_unknown_agent_exits_non_zero(database_url: str, command: str) -> None:
    result = _agent(database_url, command, "nobody", stdin="new password\nnew password\n")
    assert result.exit_code == 1
    assert "no agent named 'nobody'" in result.stderr


@pytest.mark.parametrize("command", ["", "add", "list", "passwd", "disable", "enable", "remove"])
def test_help_has_an_example(command: str) -> None:
    result = CliRunner().invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout


def test_kefu_offers_the_agent_commands() -> None:
    from kefu.cli.main import app as kefu

    result = CliRunner().invoke(kefu, ["agent", "--help"])
    assert result.exit_code == 0, result.output
    assert all(command in result.stdout for command in ("add", "list", "passwd", "disable", "enable", "remove"))
