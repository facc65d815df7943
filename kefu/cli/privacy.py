"""``kefu privacy …``: retention sweeps (for cron or a Kubernetes CronJob), and export / erasure by user id.

Uses KEFU_DATABASE_URL and, when set, KEFU_REDIS_URL (the turn logs, context windows and flow copies that erasure
removes, and the sweep's lock). Without Redis each server keeps those in its own memory: use the admin API
(``/v1/admin/privacy``) there, so the erasure runs inside the server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from kefu.config import Settings
from kefu.errors import KefuError
from kefu.obs.logging import configure_logging
from kefu.privacy.retention import Retention
from kefu.privacy.rights import Rights
from kefu.runtime import retention_policy
from kefu.store.factory import build_hot_state
from kefu.store.flowstate import FlowStates
from kefu.store.migrate import upgrade_database_sync
from kefu.store.privacy import PrivacyStore
from kefu.store.redis import redis_client
from kefu.store.sql import create_engine_for

app = typer.Typer(
    help="Personal data: retention sweeps, export and erasure (docs/privacy.md).\n\n"
    "Examples: kefu privacy sweep · kefu privacy export USER -o user.json · kefu privacy erase USER --yes",
    no_args_is_help=True,
)
out = Console(highlight=False)
T = TypeVar("T")
UserArg = Annotated[str, typer.Argument(help="The user id (as your shop identifies the shopper).")]


def _run(work: Callable[[Rights, Retention], Awaitable[T]]) -> T:
    settings = Settings()
    configure_logging("warning")
    upgrade_database_sync(settings.database_url)

    async def run() -> T:
        engine = create_engine_for(settings.database_url)
        hot = build_hot_state(settings)
        redis = redis_client(settings.redis_url) if settings.redis_url else None
        flows = FlowStates(engine, redis=redis, prefix=settings.redis_prefix, ttl=settings.session_ttl)
        store = PrivacyStore(engine)
        rights = Rights(
            store, turns=hot, leases=hot, context=hot, flows=flows, lease_seconds=settings.turn_lease_seconds
        )
        retention = Retention(store, policy=retention_policy(settings), turns=hot, context=hot, flows=flows, locks=hot)
        try:
            return await work(rights, retention)
        finally:
            await hot.aclose()
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    try:
        return asyncio.run(run())
    except KefuError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc


@app.command("sweep")
def sweep(as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False) -> None:
    """Anonymise conversations idle past KEFU_RETENTION_ANONYMISE_HOURS and delete those idle past
    KEFU_RETENTION_DELETE_DAYS. Exits 0 (and says so) when another process is sweeping right now.

    Example (cron, hourly): 17 * * * * kefu privacy sweep --json
    """
    result = _run(lambda _, retention: retention.sweep(actor="cli"))
    if result is None:
        typer.echo("another sweep is running; nothing done")
        return
    if as_json:
        typer.echo(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    out.print(f"anonymised {result.anonymised} conversation(s), deleted {result.deleted}")
    for table, count in sorted(result.rows.items()):
        out.print(f"  {table}: {count} row(s)")


@app.command("export")
def export(
    user: UserArg,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the JSON here (default: stdout).")
    ] = None,
    include_notes: Annotated[
        bool, typer.Option("--include-notes", help="Add the shop's internal desk notes (review before sending).")
    ] = False,
) -> None:
    """Everything kefu holds about USER, as JSON. Exits 1 when kefu holds nothing about USER.

    Example: kefu privacy export shopper-42 -o shopper-42.json
    """
    document = _run(lambda rights, _: rights.export(user, actor="cli", include_notes=include_notes, missing_ok=False))
    text = json.dumps(document, ensure_ascii=False, indent=2)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"wrote {len(document['sessions'])} conversation(s) to {output}", err=True)


@app.command("erase")
def erase(
    user: UserArg,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete everything kefu holds about USER (every conversation, message, handoff, note, turn log). Exits 1
    when kefu holds nothing about USER.

    Example: kefu privacy erase shopper-42 --yes
    """
    if not yes:
        typer.confirm(f"Erase everything kefu holds about {user!r}? This cannot be undone", abort=True)
    counts = _run(lambda rights, _: rights.erase(user, actor="cli", missing_ok=False))
    out.print(f"erased {counts.get('sessions', 0)} conversation(s)")
    for table, count in sorted(counts.items()):
        if count and table != "sessions":
            out.print(f"  {table}: {count}")
