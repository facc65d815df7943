"""The ``kefu`` command line, run as a real process."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kefu.identity import Authenticator


def _kefu(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    return subprocess.run(
        [sys.executable, "-m", "kefu", *args],
        env={**clean, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_token_prints_a_verifiable_token() -> None:
    result = _kefu("token", "user-42", "--ttl", "60", env={"KEFU_JWT_SECRET": "x" * 40})
    assert result.returncode == 0, result.stderr
    identity = Authenticator(jwt_secret="x" * 40, api_keys=frozenset()).authenticate(f"Bearer {result.stdout.strip()}")
    assert identity.user_id == "user-42"


def test_cli_token_without_secret_explains(tmp_path: Path) -> None:
    result = _kefu("token", "user-42", cwd=tmp_path)
    assert result.returncode == 2
    assert "KEFU_JWT_SECRET" in result.stderr


def test_cli_serve_refuses_workers_without_redis(tmp_path: Path) -> None:
    result = _kefu("serve", "--workers", "2", cwd=tmp_path)
    assert result.returncode == 2
    assert "KEFU_REDIS_URL" in result.stderr


def test_cli_db_upgrade_creates_schema(tmp_path: Path) -> None:
    db = tmp_path / "data" / "kefu.db"
    env = {"KEFU_DATABASE_URL": f"sqlite:///{db}"}
    for _ in range(2):  # idempotent
        result = _kefu("db", "upgrade", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    tables = {row[0] for row in sqlite3.connect(db).execute("select name from sqlite_master where type='table'")}
    assert {"sessions", "messages"} <= tables


@pytest.mark.parametrize("command", ["serve", "chat", "token", "mock-llm", "db upgrade"])
def test_cli_help_has_an_example(command: str) -> None:
    result = _kefu(*command.split(), "--help")
    assert result.returncode == 0
    assert "Example" in result.stdout


def test_cli_token_signs_with_the_demo_servers_secret_in_its_directory(tmp_path: Path) -> None:
    # ./scripts/demo.sh's server keeps its secret in .kefu/jwt-secret; the README's `kefu token` must match it.
    (tmp_path / ".kefu").mkdir()
    (tmp_path / ".kefu" / "jwt-secret").write_text("demo-secret-" + "d" * 30)
    result = _kefu("token", "user-42", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    verifier = Authenticator(jwt_secret="demo-secret-" + "d" * 30, api_keys=frozenset())
    assert verifier.authenticate(f"Bearer {result.stdout.strip()}").user_id == "user-42"


def test_cli_help_lists_every_command_without_importing_them() -> None:
    probe = "import sys; from kefu.cli.main import app; import typer.main as t; " + (
        "print(sorted(m for m in ('sqlalchemy', 'jieba', 'fastapi') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
    listed = _kefu("--help").stdout
    for name in ("serve", "chat", "token", "mock-llm", "test", "db", "kb", "bot", "agent", "privacy"):
        assert f" {name} " in listed
