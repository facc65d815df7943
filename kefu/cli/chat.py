"""``kefu chat``: a terminal client that streams answers from a running kefu server.

While a person owns the conversation (docs/handoff.md), a background thread follows the conversation feed and
prints the person's messages and notices, until the conversation is the bot's again or closed (``/rate`` then).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from kefu.config import Settings
from kefu.identity import mint_token, resolve_jwt_secret

console = Console(highlight=False)
OPEN_STATES = ("queued", "agent")


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


class PeopleFeed:
    """Follows ``GET /v1/sessions/{id}/events`` in a daemon thread while a person owns the conversation.

    Resumes after the last seq read (``?after=``) when the connection drops, with backoff; events from before the
    handoff it follows (earlier handoffs of the session) are skipped. Stops once the handoff is back with the bot or
    closed (after the notice that goes with it)."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ending = False
        self.session_id: str | None = None
        self.seq = 0

    def follow(self, session_id: str, handoff_id: str | None, after: int | None = None) -> None:
        """Follow ``session_id``'s feed from the handoff ``handoff_id`` on, or (no handoff id) after the seq
        ``after``; a no-op if already following it."""
        with self._lock:
            if self._thread and self._thread.is_alive() and self.session_id == session_id and not self._ending:
                return
            self._stop.set()
            if session_id != self.session_id or after is not None:
                self.session_id, self.seq = session_id, after or 0
            self._stop, self._ending = threading.Event(), False
            self._thread = threading.Thread(target=self._run, args=(session_id, handoff_id, self._stop), daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop following (the thread ends at its next line)."""
        self._stop.set()

    def _run(self, session_id: str, handoff_id: str | None, stop: threading.Event) -> None:
        armed = handoff_id is None
        failures = 0
        while not stop.is_set():
            try:
                path = f"/v1/sessions/{session_id}/events"
                with self._client.stream("GET", path, params={"after": self.seq}) as response:
                    if response.status_code != 200:
                        response.read()
                        if response.status_code < 500 and response.status_code != 429:
                            console.print(f"[red]conversation feed: {response.status_code}[/red]")
                            return
                        raise httpx.TransportError(f"status {response.status_code}")
                    for event, data, seq in _feed_frames(response):
                        if stop.is_set():
                            return
                        failures = 0
                        if event == "ping":
                            if self._ending:
                                return
                            continue
                        if seq is not None:
                            with self._lock:
                                if stop.is_set():
                                    return
                                if seq <= self.seq:
                                    continue
                                self.seq = seq
                        if not armed:
                            armed = event == "handoff" and data.get("id") == handoff_id
                            if not armed:
                                continue
                        if self._show(event, data):
                            return
            except httpx.HTTPError:
                pass
            failures += 1
            stop.wait(min(10.0, 0.5 * 2 ** min(failures, 5)))

    def _show(self, event: str, data: dict[str, Any]) -> bool:
        """Print one feed event; True when following should stop."""
        if event == "agent":
            name = (data.get("agent") or {}).get("name") or "客服"
            console.print(f"\n[bold cyan]{escape(name)}:[/bold cyan] {escape(str(data.get('text', '')))}")
        elif event == "notice":
            console.print(f"\n[dim]{escape(str(data.get('text', '')))}[/dim]")
            return self._ending  # the notice that goes with the change: done
        elif event == "handoff":
            state = data.get("state")
            self._ending = state not in OPEN_STATES
            if state == "closed":
                console.print("\n[dim](closed: rate it with /rate 1-5 \\[comment])[/dim]")
            elif self._ending:
                console.print("\n[dim](back to the bot)[/dim]")
        return False


def _feed_frames(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any], int | None]]:
    """``(event, data, seq)`` of each SSE frame; ``("ping", {}, None)`` for a heartbeat comment."""
    event, data, ident, comment = "message", "", "", False
    for line in response.iter_lines():
        if not line:
            if data:
                seq = ident.rpartition(":")[2]
                yield event, json.loads(data), int(seq) if seq.isdigit() else None
            elif comment:
                yield "ping", {}, None
            event, data, ident, comment = "message", "", "", False
        elif line.startswith(":"):
            comment = True
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line.startswith("id:"):
            ident = line[3:].strip()


def _rate(client: httpx.Client, session_id: str | None, args: str) -> None:
    score, _, comment = args.strip().partition(" ")
    if not session_id or not score.isdigit():
        console.print("[yellow]usage: /rate 1-5 \\[comment] (after a person closed the conversation)[/yellow]")
        return
    body = {"score": int(score), "comment": comment.strip() or None}
    response = client.post(f"/v1/sessions/{session_id}/rating", json=body)
    if response.status_code == 204:
        console.print("[green]thank you for rating[/green]")
    else:
        error = response.json().get("error", {}) if response.content else {}
        console.print(f"[red]{response.status_code} {error.get('code')}: {error.get('message')}[/red]")


def _turn(client: httpx.Client, message: str, session_id: str | None, feed: PeopleFeed | None = None) -> str | None:
    turn_id: str | None = None
    handoff: dict[str, Any] | None = None
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
                elif event == "handoff":
                    handoff = data
                elif event == "done":
                    console.print(f"\n[dim]({data.get('source')}, {data.get('model')})[/dim]")
                    done_handoff = data.get("handoff")
                    if handoff is None and isinstance(done_handoff, dict):
                        handoff = done_handoff
                elif event == "error":
                    console.print(f"\n[red]error {data.get('code')}: {data.get('message')}[/red]")
    except KeyboardInterrupt:
        if turn_id:
            client.post(f"/v1/chat/turns/{turn_id}/cancel")
            console.print("\n[yellow](stopped)[/yellow]")
    if feed is not None and session_id and handoff and handoff.get("state") in OPEN_STATES:
        feed.follow(session_id, str(handoff.get("id") or "") or None)
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
        feed_client = httpx.Client(base_url=url, headers=client.headers, timeout=httpx.Timeout(10.0, read=None))
        feed = PeopleFeed(feed_client)
        if session:
            now = client.get(f"/v1/sessions/{session}/handoff")
            if now.status_code == 200 and now.json().get("state") in OPEN_STATES:
                feed.follow(session, None, after=int(now.json().get("last_seq") or 0))  # before it: history
        while True:
            try:
                message = console.input("[bold]> [/bold]")
            except (EOFError, KeyboardInterrupt):
                console.print()
                break
            if message.strip() in ("/quit", "/exit"):
                break
            if message.strip().startswith("/rate"):
                _rate(client, session, message.strip()[5:])
            elif message.strip():
                session = _turn(client, message, session, feed)
        feed.stop()
        if session:
            console.print(f"[dim]session: {session}[/dim]")
