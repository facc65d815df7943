"""``kefu token USER_ID``: sign an end-user token (for tests and for host apps to copy)."""

from __future__ import annotations

from typing import Annotated

import typer

from kefu.config import Settings
from kefu.errors import KefuError
from kefu.identity import mint_token, resolve_jwt_secret


def token(
    user_id: Annotated[str, typer.Argument(help="The end user's id in your shop (becomes the token's sub).")],
    ttl: Annotated[int, typer.Option(min=1, help="Lifetime in seconds.")] = 3600,
) -> None:
    """Print an HS256 JWT for USER_ID signed with KEFU_JWT_SECRET.

    Example: KEFU_JWT_SECRET=change-me kefu token user-42
    """
    settings = Settings()
    secret = resolve_jwt_secret(settings)
    if secret is None:
        typer.echo("error: KEFU_JWT_SECRET is not set (or run in demo mode with KEFU_DEMO=1)", err=True)
        raise typer.Exit(2)
    try:
        typer.echo(mint_token(user_id, secret, ttl_seconds=ttl))
    except KefuError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
