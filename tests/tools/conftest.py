"""Fixtures for tool tests: a loopback backend, an internal service beside it, and a helper that writes a bot's
tool files."""

from __future__ import annotations

import socket
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kefu.tools.base import ToolContext
from tests.tools.backend import Backend, start_backend
from tests.tools.internal import ADDRESS as INTERNAL_ADDRESS
from tests.tools.internal import Internal

CTX = ToolContext(user_id="u-verified", session_id="s-1", turn_id="t-1")


@pytest.fixture(scope="module")
def backend_server() -> Iterator[Backend]:
    backend, server, thread = start_backend()
    yield backend
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def backend(backend_server: Backend) -> Backend:
    """The module's backend with its request log and failure script cleared."""
    backend_server.seen.clear()
    backend_server.fail_next = 0
    return backend_server


@pytest.fixture
def bot(tmp_path: Path) -> Callable[..., Path]:
    """Write ``name -> YAML text`` into ``<tmp>/tools/`` and return the bot dir."""

    def write(**files: str) -> Path:
        folder = tmp_path / "tools"
        folder.mkdir(exist_ok=True)
        for name, text in files.items():
            (folder / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
        return tmp_path

    return write


@pytest.fixture
async def internal(backend: Backend) -> AsyncIterator[Internal]:
    """An internal service on 127.0.0.2 at the backend's port (see ``tests/tools/internal.py``)."""
    service = Internal(port=backend.port)
    await service.start()
    yield service
    await service.stop()


REBINDING_NAME = "shop.rebind.test"


@pytest.fixture
def rebinding_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The system resolver (what the guard and any HTTP client ask) answers ``shop.rebind.test`` with 127.0.0.1
    the first time and with the internal service's address after that; returns the lookups made."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode("ascii") if isinstance(host, bytes) else host  # anyio (httpx's backend) asks in bytes
        if name != REBINDING_NAME:
            return real(host, port, *args, **kwargs)
        lookups.append(name)
        address = "127.0.0.1" if len(lookups) == 1 else INTERNAL_ADDRESS
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    return lookups
