"""``kefu bot …``: check a bot directory, reload a running server's bot."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from kefu.bot.loader import load_bot
from kefu.config import DEMO_BOT_DIR, Settings
from kefu.runtime import tool_allow_hosts, tool_env

DEFAULT_PORT = 8000  # `kefu serve`'s default port

app = typer.Typer(
    help="Bot directory: check it, reload it on a running server.\n\nExample: kefu bot check ./mybot",
    no_args_is_help=True,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


@app.command("check")
def check(
    bot_dir: Annotated[
        Path | None,
        typer.Argument(
            help="Bot directory (default: KEFU_BOT_DIR, else the demo shop in demo mode, the neutral bot otherwise).",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Validate a bot directory: prompt, texts, tools, flows, moderation and knowledge-base files, with file:line.

    Exit code 1 when anything would stop the server from starting.

    Example: kefu bot check ./mybot
    """
    settings = Settings() if bot_dir is None else Settings(bot_dir=bot_dir)
    if settings.demo_shop_url is None and settings.bot_dir.resolve() == DEMO_BOT_DIR.resolve():
        # `kefu serve` points the bundled demo's tools at the merchant API it mounts itself: check with that too.
        settings = settings.model_copy(update={"demo_shop_url": f"http://127.0.0.1:{DEFAULT_PORT}/demo/shop-api"})
    bot, problems = load_bot(
        settings.bot_dir, env=tool_env(settings), allow_hosts=tool_allow_hosts(settings), check_kb=True
    )
    for problem in problems.items:
        style = "red" if problem.severity == "error" else "yellow"
        err.print(f"[{style}]{problem}[/{style}]")
    if bot is None:
        err.print(f"[red]✗ {settings.bot_dir}: {len(problems.errors)} error(s); the server would refuse this bot[/red]")
        raise typer.Exit(1)
    out.print(
        f"✓ {settings.bot_dir}: {len(bot.flows)} flow(s), {len(bot.tools.risks())} tool(s)"
        + (f", {bot.moderator.term_count} moderation term(s)" if not bot.moderator.empty else "")
        + (f", {len(problems.items)} warning(s)" if problems.items else "")
    )


@app.command("reload")
def reload(
    url: Annotated[str, typer.Option("--url", help="The server.")] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="A server API key (default: KEFU_ADMIN_API_KEY).")
    ] = None,
) -> None:
    """Ask a running server to reload its bot directory (running turns are not dropped).

    The server checks the bot first and keeps the current one if it is invalid. With several replicas, run it
    against each (each loads its own copy of the directory).

    Example: kefu bot reload --url http://127.0.0.1:8000 --api-key $KEY
    """
    key = api_key or os.environ.get("KEFU_ADMIN_API_KEY")
    if not key:
        err.print(
            "[red]an API key is needed: --api-key or KEFU_ADMIN_API_KEY (one of the server's KEFU_API_KEYS)[/red]"
        )
        raise typer.Exit(2)
    try:
        response = httpx.post(f"{url.rstrip('/')}/v1/admin/bot/reload", headers={"Authorization": f"Bearer {key}"})
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach {url}: {exc}[/red]")
        raise typer.Exit(1) from exc
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code != 200:
        message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else response.text
        err.print(f"[red]reload refused ({response.status_code}):[/red]\n{message}")
        raise typer.Exit(1)
    out.print(f"✓ reloaded {body['directory']} ({body['fingerprint']}): flows {', '.join(body['flows']) or '-'}")
