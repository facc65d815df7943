"""``kefu db …``: database schema management."""

from __future__ import annotations

import typer

from kefu.config import Settings
from kefu.store.migrate import upgrade_database_sync

app = typer.Typer(help="Database schema management.", no_args_is_help=True)


@app.command("upgrade")
def upgrade() -> None:
    """Apply all migrations to KEFU_DATABASE_URL (safe to run again).

    Example: KEFU_DATABASE_URL=postgresql+asyncpg://kefu@db/kefu kefu db upgrade
    """
    settings = Settings()
    upgrade_database_sync(settings.database_url)
    typer.echo(f"database at {settings.database_url.split('@')[-1]} is up to date")
