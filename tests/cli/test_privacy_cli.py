"""``kefu privacy …`` through typer's runner, on a SQLite file in the test's tmp dir (no Redis: the hot state is the
command's own memory)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from kefu.cli.main import app
from kefu.store.migrate import upgrade_database
from kefu.store.privacy import PrivacyStore
from kefu.store.sql import create_engine_for
from tests.store.personal_data import PHONE, seed_conversation


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # no stray .env from the working directory
    monkeypatch.delenv("KEFU_REDIS_URL", raising=False)
    url = f"sqlite+aiosqlite:///{tmp_path / 'kefu.db'}"
    monkeypatch.setenv("KEFU_DATABASE_URL", url)
    return url


def kefu(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, ["privacy", *args], input=stdin)


def seed(url: str, user_id: str, session_id: str, at: datetime) -> None:
    async def run() -> None:
        await upgrade_database(url)
        engine = create_engine_for(url)
        await seed_conversation(engine, user_id, session_id, at)
        await engine.dispose()

    asyncio.run(run())


def audit(url: str) -> list[tuple[str, str]]:
    async def run() -> list[tuple[str, str]]:
        engine = create_engine_for(url)
        records = await PrivacyStore(engine).audit_log()
        await engine.dispose()
        return [(r.action, r.actor) for r in records]

    return asyncio.run(run())


def test_unknown_user_is_a_clear_error(database_url: str) -> None:
    for command in (["export", "nobody"], ["erase", "nobody", "--yes"]):
        result = kefu(*command)
        assert result.exit_code == 1, result.output
        assert "error: kefu holds no data about user 'nobody'" in result.output
    assert audit(database_url) == []


def test_export_to_stdout_or_a_file(database_url: str, tmp_path: Path) -> None:
    seed(database_url, "ivy", "s_ivy", datetime.now(UTC))
    result = kefu("export", "ivy")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["user_id"] == "ivy" and document["sessions"][0]["session_id"] == "s_ivy"
    assert "desk_notes" not in document["sessions"][0]

    target = tmp_path / "ivy.json"
    result = kefu("export", "ivy", "-o", str(target), "--include-notes")
    assert result.exit_code == 0 and "wrote 1 conversation(s)" in result.output
    written = json.loads(target.read_text(encoding="utf-8"))
    assert PHONE in written["sessions"][0]["desk_notes"][0]["text"]
    assert audit(database_url) == [("export", "cli"), ("export", "cli")]


def test_erase_asks_first_unless_yes(database_url: str) -> None:
    seed(database_url, "ivy", "s_ivy", datetime.now(UTC))
    refused = kefu("erase", "ivy", stdin="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert kefu("export", "ivy").exit_code == 0  # still there

    erased = kefu("erase", "ivy", stdin="y\n")
    assert erased.exit_code == 0, erased.output
    assert "erased 1 conversation(s)" in erased.output and "messages: 2" in erased.output
    assert kefu("export", "ivy").exit_code == 1
    assert audit(database_url)[0] == ("erase", "cli")


def test_sweep_prints_counts_and_json(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.now(UTC)
    seed(database_url, "old", "s_old", now - timedelta(days=4))
    seed(database_url, "ancient", "s_ancient", now - timedelta(days=200))
    seed(database_url, "fresh", "s_fresh", now)

    result = kefu("sweep")
    assert result.exit_code == 0, result.output
    assert "anonymised 1 conversation(s), deleted 1" in result.output
    assert "messages: " in result.output

    again = kefu("sweep", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {"anonymised": 0, "deleted": 0, "rows": {}, "turn_logs": 0}

    monkeypatch.setenv("KEFU_RETENTION_ANONYMISE_HOURS", "0")  # never
    seed(database_url, "old2", "s_old2", now - timedelta(days=4))
    assert json.loads(kefu("sweep", "--json").stdout)["anonymised"] == 0
    assert audit(database_url) == [("sweep", "cli")] * 3


def test_every_command_has_help_with_an_example() -> None:
    for command in ("sweep", "export", "erase"):
        result = CliRunner().invoke(app, ["privacy", command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "Example" in result.output and f"kefu privacy {command}" in result.output
