"""``kefu``: the command-line entry point."""

from __future__ import annotations

import typer

from kefu.cli import agent, bot, chat, db, kb, mock, privacy, serve, test, token

app = typer.Typer(
    name="kefu",
    help="kefu (客服): AI customer-service backend.\n\nExample: KEFU_DEMO=1 kefu serve",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve.serve)
app.command("chat")(chat.chat)
app.command("token")(token.token)
app.command("mock-llm")(mock.mock_llm)
app.command("test")(test.test)
app.add_typer(db.app, name="db")
app.add_typer(kb.app, name="kb")
app.add_typer(bot.app, name="bot")
app.add_typer(agent.app, name="agent")
app.add_typer(privacy.app, name="privacy")


def main() -> None:
    """Console-script entry point."""
    app()
