"""``kefu``: the command-line entry point.

Commands are loaded when they run (or when their own ``--help`` is asked for), not at start-up: importing every
command group pulls in SQLAlchemy, jieba, FastAPI and the rest, which made ``kefu --help`` take seconds. A command is
one ``command(...)`` or ``group(...)`` line below, naming its module, the attribute and the one line ``kefu --help``
shows. (An eager ``app.add_typer(module.app, name=...)`` still works, at the cost of importing the module.)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

# name -> ("module:attribute", the line `kefu --help` shows)
_LAZY: dict[str, tuple[str, str]] = {}


def command(name: str, target: str, summary: str) -> None:
    """Register a command function (``"kefu.cli.serve:serve"``), imported only when used."""
    _LAZY[name] = (target, summary)


group = command  # a typer.Typer sub-app (``"kefu.cli.kb:app"``) is registered the same way


class _LazyGroup(TyperGroup):
    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in _LAZY if name not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        if found is not None or cmd_name not in _LAZY:
            return found
        target, summary = _LAZY[cmd_name]
        if self._listing:  # the top-level help only needs the summary line
            return TyperCommand(name=cmd_name, help=summary, short_help=summary)
        loaded = _load(cmd_name, target)
        self.commands[cmd_name] = loaded
        return loaded

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def _load(name: str, target: str) -> Any:
    module, _, attribute = target.partition(":")
    obj = getattr(import_module(module), attribute)
    loaded: Any
    if isinstance(obj, typer.Typer):
        loaded = typer.main.get_group(obj)
    else:
        single = typer.Typer()
        single.command(name)(obj)
        loaded = typer.main.get_command(single)
    loaded.name = name
    return loaded


app = typer.Typer(
    name="kefu",
    cls=_LazyGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """kefu (客服): AI customer-service backend.

    Example: KEFU_DEMO=1 kefu serve
    """


command("serve", "kefu.cli.serve:serve", "Run the HTTP server (uvicorn).")
command("chat", "kefu.cli.chat:chat", "Chat with a running server in the terminal.")
command("token", "kefu.cli.token:token", "Print an end-user token (JWT) for USER_ID.")
command("mock-llm", "kefu.cli.mock:mock_llm", "Run the fake OpenAI-compatible upstream (tests, benchmarks).")
command("test", "kefu.cli.test:test", "Run scripted conversation tests against the bot.")
command("init", "kefu.cli.init:init", "Start a bot directory for your shop (then KEFU_BOT_DIR=DIR).")
group("db", "kefu.cli.db:app", "Database schema management.")
group("kb", "kefu.cli.kb:app", "Knowledge base: import, list, search, evaluate.")
group("bot", "kefu.cli.bot:app", "Bot directory: check it, reload it on a running server.")
group("agent", "kefu.cli.agent:app", "Agent accounts for the desk (/desk).")
group("privacy", "kefu.cli.privacy:app", "Personal data: retention sweeps, export and erasure.")
command("usage", "kefu.cli.usage:usage", "Model tokens and cost by day, model or source (the ledger).")
command("report", "kefu.cli.report:report", "Numbers for the shop team: deflection, handoffs, unanswered questions.")


def main() -> None:
    """Console-script entry point."""
    app()
