"""``kefu token USER_ID``: sign an end-user token (for tests and for host apps to copy)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# Where a demo server keeps the secret it made (kefu.identity.resolve_jwt_secret, relative to its working directory).
DEMO_SECRET_FILE = Path(".kefu") / "jwt-secret"


def token(
    user_id: Annotated[str, typer.Argument(help="The end user's id in your shop (becomes the token's sub).")],
    ttl: Annotated[int, typer.Option(min=1, help="Lifetime in seconds.")] = 3600,
) -> None:
    """Print an HS256 JWT for USER_ID, signed with the secret a server started here verifies.

    That is KEFU_JWT_SECRET (environment or .env) when set,
    else the secret a demo server (./scripts/demo.sh) keeps in .kefu/jwt-secret in this directory.

    Example: TOKEN=$(kefu token user-42)
    """
    from kefu.config import Settings
    from kefu.errors import KefuError
    from kefu.identity import mint_token, resolve_jwt_secret

    settings = Settings()
    if settings.jwt_secret is None and not settings.demo and DEMO_SECRET_FILE.is_file():
        # A demo server ran from this directory: sign with its secret, as it verifies (not with a made-up one).
        settings = settings.model_copy(update={"demo": True})
    secret = resolve_jwt_secret(settings)
    if secret is None:
        typer.echo(
            "error: no secret to sign with: set KEFU_JWT_SECRET (the same as the server's), or run this in the "
            "directory of a demo server (./scripts/demo.sh keeps its secret in .kefu/jwt-secret)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        typer.echo(mint_token(user_id, secret, ttl_seconds=ttl))
    except KefuError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
