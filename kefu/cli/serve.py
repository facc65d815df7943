"""``kefu serve``: run the HTTP server."""

from __future__ import annotations

import gc
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
import uvicorn

from kefu.config import Settings
from kefu.store.migrate import upgrade_database_sync

if TYPE_CHECKING:
    from fastapi import FastAPI


def create_served_app() -> FastAPI:
    """The app for ``uvicorn --factory`` (each worker reads the environment), tuned for a long-running server.

    Once the lifespan has started (bot, knowledge base and clients loaded), everything alive is moved out of the
    garbage collector's sight (``gc.freeze``): a full collection then walks only what turns allocate, instead of
    stalling the event loop for tens of milliseconds over a couple of hundred thousand start-up objects (seen as
    TTFT p99 spikes at 100 concurrent streams).
    """
    from kefu.app import create_app_from_env

    app = create_app_from_env()
    started = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with started(app) as state:
            gc.collect()
            gc.freeze()
            yield state

    app.router.lifespan_context = cast(Any, lifespan)  # same contract; state (if any) passed through
    return app


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
        "kefu.cli.serve:create_served_app",
        factory=True,
        # uvloop and httptools come with uvicorn[standard]; ask for them by name so that a missing one fails
        # loudly instead of silently serving on the slower pure-Python loop and parser.
        loop="uvloop",
        http="httptools",
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        # Readers of running turns stay connected while those turns finish (KEFU_SHUTDOWN_GRACE).
        timeout_graceful_shutdown=max(1, math.ceil(settings.shutdown_grace)),
    )
