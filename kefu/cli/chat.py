"""``kefu chat``: a terminal client that streams answers from a running kefu server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated

import httpx
import typer
from rich.console import Console

from kefu.config import Settings
from kefu.identity import mint_token, resolve_jwt_secret

console = Console(highlight=False)


def _get_token(client: httpx.Client, token: str | None, user: str | None) -> str:
    if token:
        return token
    if user:
        secret = resolve_jwt_secret(Settings())
        if secret is None:
            raise typer.BadParameter("--user needs KEFU_JWT_SECRET to sign a token", param_hint="--user")
        return mint_token(user, secret)
    response = client.post("/v1/demo/token")
    if response.status_code != 200:
        raise typer.BadParameter(
            "the server is not in demo mode: pass --token (from `kefu token USER_ID`) or --user", param_hint="--token"
        )
    value = response.json()["token"]
    assert isinstance(value, str)
    return value


def _events(response: httpx.Response) -> Iterator[tuple[str, dict[str, object]]]:
    event, data = "message", ""
    for line in response.iter_lines():
        if not line:
            if data:
                yield event, json.loads(data)
            event, data = "message", ""
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def _turn(client: httpx.Client, message: str, session_id: str | None) -> str | None:
    turn_id: str | None = None
    try:
        with client.stream("POST", "/v1/chat", json={"message": message, "session_id": session_id}) as response:
            if response.status_code != 200:
                response.read()
                error = response.json().get("error", {})
                console.print(f"[red]{response.status_code} {error.get('code')}: {error.get('message')}[/red]")
                return session_id
            for event, data in _events(response):
                if event == "session":
                    session_id = str(data["session_id"])
                    turn_id = str(data["turn_id"])
                elif event == "delta":
                    console.print(str(data["text"]), end="")
                elif event == "done":
                    console.print(f"\n[dim]({data.get('source')}, {data.get('model')})[/dim]")
                elif event == "error":
                    console.print(f"\n[red]error {data.get('code')}: {data.get('message')}[/red]")
    except KeyboardInterrupt:
        if turn_id:
            client.post(f"/v1/chat/turns/{turn_id}/cancel")
            console.print("\n[yellow](stopped)[/yellow]")
    return session_id


def chat(
    url: Annotated[str, typer.Option(help="The kefu server.")] = "http://127.0.0.1:8000",
    token: Annotated[str | None, typer.Option(envvar="KEFU_TOKEN", help="A bearer token.")] = None,
    user: Annotated[str | None, typer.Option(help="Sign a token for this user id with KEFU_JWT_SECRET.")] = None,
    session: Annotated[str | None, typer.Option(help="Continue this session id.")] = None,
) -> None:
    """Chat with a running kefu server; Ctrl-C stops an answer, Ctrl-D (or /quit) leaves.

    Example: kefu chat --url http://127.0.0.1:8000   (demo mode gets a visitor token by itself)
    """
    with httpx.Client(base_url=url, timeout=httpx.Timeout(10.0, read=None)) as client:
        try:
            bearer = _get_token(client, token, user)
        except httpx.ConnectError as exc:
            console.print(f"[red]cannot reach {url}: {exc}. Is `kefu serve` running?[/red]")
            raise typer.Exit(1) from exc
        client.headers["Authorization"] = f"Bearer {bearer}"
        console.print("[dim]kefu chat — Ctrl-C stops an answer, Ctrl-D leaves[/dim]")
        while True:
            try:
                message = console.input("[bold]> [/bold]")
            except (EOFError, KeyboardInterrupt):
                console.print()
                break
            if message.strip() in ("/quit", "/exit"):
                break
            if message.strip():
                session = _turn(client, message, session)
        if session:
            console.print(f"[dim]session: {session}[/dim]")
