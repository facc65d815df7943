"""``kefu agent …``: the desk's agent accounts (add, list, passwd, disable, enable, remove).

Every command migrates KEFU_DATABASE_URL first, so it works on a fresh database. Passwords are read from stdin
(``--password-stdin``) or a hidden prompt, never from the command line (it would end up in shell history and
``ps``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from kefu.config import Settings
from kefu.errors import KefuError
from kefu.handoff.accounts import AgentAccounts
from kefu.obs.logging import configure_logging
from kefu.store.migrate import upgrade_database_sync
from kefu.store.sql import create_engine_for

app = typer.Typer(
    help="Agent accounts for the desk (/desk).\n\nExample: kefu agent add alice --role admin",
    no_args_is_help=True,
)
out = Console(highlight=False)
T = TypeVar("T")


class RoleChoice(StrEnum):
    """What an agent may do: answer conversations, or also see and transfer everyone's."""

    agent = "agent"
    admin = "admin"


NameArg = Annotated[str, typer.Argument(help="The agent's login name (letters, digits, '.', '_', '-').")]
PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin (for scripts).")
]


def _run(work: Callable[[AgentAccounts], Awaitable[T]]) -> T:
    settings = Settings()
    configure_logging("warning")
    upgrade_database_sync(settings.database_url)

    async def run() -> T:
        engine = create_engine_for(settings.database_url)
        try:
            return await work(AgentAccounts(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except KefuError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc


def _password(from_stdin: bool) -> str:
    if from_stdin:
        # Strip only the line end: leading or trailing spaces may be part of the password.
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@app.command("add")
def add(
    name: NameArg,
    role: Annotated[RoleChoice, typer.Option(help="agent, or admin (sees every conversation).")] = RoleChoice.agent,
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="The name shoppers see (default: NAME).")
    ] = None,
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Add an agent who can log in to the desk (asks for the password twice unless --password-stdin).

    Example: echo 's3cret-pass' | kefu agent add xiaowang --display-name 小王 --password-stdin
    """
    password = _password(password_stdin)
    agent = _run(lambda accounts: accounts.add(name, password, role=role.value, display_name=display_name))
    typer.echo(f"added {agent.role} {agent.name} ({agent.display_name}), id {agent.id}")


@app.command("list")
def list_() -> None:
    """List the agents: name, display name, role, and whether they are disabled.

    Example: kefu agent list
    """
    agents = _run(lambda accounts: accounts.list())
    if not agents:
        typer.echo("no agents yet; add one with: kefu agent add NAME")
        return
    table = Table("name", "display name", "role", "disabled")
    for agent in agents:
        table.add_row(agent.name, agent.display_name, agent.role, "yes" if agent.disabled else "no")
    out.print(table)


@app.command("passwd")
def passwd(name: NameArg, password_stdin: PasswordStdinOpt = False) -> None:
    """Set a new password for NAME; the agent's open desk logins end.

    Example: kefu agent passwd xiaowang
    """
    password = _password(password_stdin)
    _run(lambda accounts: accounts.set_password(name, password))
    typer.echo(f"password of {name} changed; their desk logins have ended")


@app.command("disable")
def disable(name: NameArg) -> None:
    """Stop NAME from logging in; the agent's open desk logins end at once.

    Example: kefu agent disable xiaowang
    """
    _run(lambda accounts: accounts.set_disabled(name, True))
    typer.echo(f"{name} is disabled")


@app.command("enable")
def enable(name: NameArg) -> None:
    """Let a disabled agent log in again.

    Example: kefu agent enable xiaowang
    """
    _run(lambda accounts: accounts.set_disabled(name, False))
    typer.echo(f"{name} is enabled")


@app.command("remove")
def remove(name: NameArg) -> None:
    """Delete NAME's account and end its desk logins.

    Example: kefu agent remove xiaowang
    """
    if not _run(lambda accounts: accounts.remove(name)):
        typer.echo(f"error: no agent named {name!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed {name}")
