"""Helpers for tests that run real processes: free ports, a kefu server, the mock upstream, an SSE reader."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

JWT_SECRET = "test-secret-for-kefu-tests-only-0123456789"
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0, log: IO[bytes] | None = None) -> None:
    """Wait until ``url`` answers 200, failing early (with its output, from ``log`` or its stdout) if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if log is not None:
                log.seek(0)
            source = log if log is not None else proc.stdout
            out = source.read().decode(errors="replace") if source else ""
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was up:\n{out[-4000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not up after {timeout}s")


def service_unavailable(kind: str, reason: str) -> None:
    """Skip (visibly) when a backing service is down; under CI=true fail instead."""
    message = f"{kind} not reachable: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the service must run)")
    pytest.skip(message)


@dataclass
class MockLLM:
    """A running mock upstream (``kefu mock-llm``) and its control API; the one client every test uses."""

    port: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *steps: dict[str, Any]) -> None:
        """Queue behaviours for the next requests (``{}`` = a normal answer)."""
        httpx.post(f"{self.url}/_mock/script", json={"steps": list(steps)}).raise_for_status()

    def reset(self) -> None:
        """Forget the script, the counters and the OAuth settings."""
        httpx.post(f"{self.url}/_mock/reset").raise_for_status()

    def oauth(self, **settings: Any) -> None:
        """Change how the mock's token endpoint behaves."""
        httpx.post(f"{self.url}/_mock/oauth", json=settings).raise_for_status()

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self.url}/_mock/stats").json()
        return data

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        if self.log is not None:
            self.log.close()


def start_mock(*args: str) -> MockLLM:
    """Start the mock upstream on a free port (its output goes to a temporary file) and wait until it serves."""
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kefu", "mock-llm", "--port", str(port), *args],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    mock = MockLLM(port=port, proc=proc, log=log)
    wait_http(f"{mock.url}/healthz", proc, log=log)
    return mock


@dataclass
class KefuServer:
    """A ``kefu serve`` process; ``restart`` keeps the same port, database and environment."""

    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    workers: int = 1
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> KefuServer:
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kefu", "serve", "--port", str(self.port), "--workers", str(self.workers)],
            env=env,
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        wait_http(f"{self.url}/healthz", self.proc)
        return self

    def stop(self, *, kill: bool = False) -> str:
        """Stop the server and return what it printed."""
        assert self.proc is not None
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out.decode(errors="replace") if out else ""

    def restart(self) -> KefuServer:
        self.stop()
        return self.start()


def token_for(user_id: str, secret: str = JWT_SECRET, ttl: int = 3600) -> str:
    """A signed end-user token (same code path as ``kefu token``)."""
    from kefu.identity import mint_token

    return mint_token(user_id, secret, ttl_seconds=ttl)


def auth(user_id: str) -> dict[str, str]:
    """Authorization headers for ``user_id``."""
    return {"Authorization": f"Bearer {token_for(user_id)}"}


@dataclass
class SSEEvent:
    """One parsed Server-Sent Event."""

    event: str
    data: dict[str, Any]
    id: str | None


def iter_sse(response: httpx.Response) -> Iterator[SSEEvent | None]:
    """Parse SSE frames from a streaming response; yields None for comment-only frames (heartbeats)."""
    event, data, ident, comment = "message", "", None, False
    for line in response.iter_lines():
        if line == "":
            if data:
                yield SSEEvent(event, json.loads(data), ident)
            elif comment:
                yield None
            event, data, ident, comment = "message", "", None, False
        elif line.startswith(":"):
            comment = True
        elif line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data += line.split(":", 1)[1].strip()
        elif line.startswith("id:"):
            ident = line.split(":", 1)[1].strip()


def chat(client: httpx.Client, user: str, message: str, session_id: str | None = None, **kw: Any) -> list[SSEEvent]:
    """POST /v1/chat and read the whole event stream."""
    with client.stream(
        "POST", "/v1/chat", json={"message": message, "session_id": session_id}, headers=auth(user), **kw
    ) as response:
        assert response.status_code == 200, response.read()
        return [e for e in iter_sse(response) if e is not None]


def answer_text(events: list[SSEEvent]) -> str:
    """The concatenated ``delta`` texts."""
    return "".join(e.data["text"] for e in events if e.event == "delta")
