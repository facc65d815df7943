"""Fixtures for tool tests: a loopback backend and a helper that writes a bot's tool files."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kefu.tools.base import ToolContext
from tests.tools.backend import Backend, start_backend

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
