"""``kefu serve``: run the HTTP server."""

from __future__ import annotations

import os
from typing import Annotated

import typer
import uvicorn

from kefu.config import Settings
from kefu.store.migrate import upgrade_database_sync


def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (more than 1 needs KEFU_REDIS_URL).")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve the chat API (and the demo page when KEFU_DEMO=1).

    Example: KEFU_DEMO=1 KEFU_LLM_API_KEY=sk-... kefu serve --port 8000
    """
    settings = Settings()
    if workers > 1 and not settings.redis_url:
        typer.echo(
            "error: --workers > 1 needs shared state: set KEFU_REDIS_URL (e.g. redis://127.0.0.1:6379/0).\n"
            "Without Redis, turns, locks and resumes live in one process's memory.",
            err=True,
        )
        raise typer.Exit(2)
    if workers > 1 and settings.is_sqlite:
        typer.echo(
            "warning: several workers on SQLite serialise writes; use a postgresql+asyncpg:// KEFU_DATABASE_URL.",
            err=True,
        )
    if not settings.llm_configured:
        typer.echo(
            "note: no model configured (KEFU_LLM_API_KEY unset): only the knowledge base answers "
            "(a bot without one answers with error 'llm_not_configured').",
            err=True,
        )
    if settings.demo and not settings.demo_shop_url:
        # The demo bot's tools call the demo merchant API this server mounts; workers read this from the env.
        local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        os.environ["KEFU_DEMO_SHOP_URL"] = f"http://{local}:{port}/demo/shop-api"
    # Migrate once here so workers do not race each other at start-up.
    upgrade_database_sync(settings.database_url)
    typer.echo(f"kefu serving on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''})", err=True)
    uvicorn.run(
        "kefu.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        timeout_graceful_shutdown=10,
    )
