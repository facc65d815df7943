"""``kefu report`` as a real process over a seeded SQLite database (the demo shop's bot and knowledge base)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kefu.config import DEMO_BOT_DIR
from kefu.store.migrate import upgrade_database
from kefu.store.sql import create_engine_for
from tests.report.seed import seed, week
from tests.support import ROOT


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'kefu.db'}"

    async def prepare() -> None:
        await upgrade_database(url)
        engine = create_engine_for(url)
        await seed(engine, week())
        await engine.dispose()

    asyncio.run(prepare())
    return {**os.environ, "KEFU_DATABASE_URL": url, "KEFU_BOT_DIR": str(DEMO_BOT_DIR), "KEFU_DEMO": "0"}


def kefu(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kefu", "report", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_json_report(env: dict[str, str]) -> None:
    done = kefu(env, "--since", "2026-12-01", "--until", "2026-12-02", "--format", "json", "--top", "2")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["conversations"]["total"] == 8
    assert report["conversations"]["deflection_rate"] == 0.5
    assert [g["count"] for g in report["unanswered"]["groups"]] == [3, 1]


def test_csv_and_table(env: dict[str, str]) -> None:
    done = kefu(env, "--since", "2026-12-01", "--until", "2026-12-02", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == ["section", "name", "value"]
    assert ["handoff_reason", "button", "1"] in rows
    assert ["conversations", "deflection_rate", "50%"] in rows
    table = kefu(env, "--since", "2026-12-02")
    assert table.returncode == 0, table.stderr
    assert "保修多久" in table.stdout
    assert "2026-12-02" in table.stdout


def test_bad_dates_exit_non_zero_with_a_clear_message(env: dict[str, str]) -> None:
    done = kefu(env, "--since", "2026-12-05", "--until", "2026-12-01")
    assert done.returncode == 2
    assert "since (2026-12-05) is after until (2026-12-01)" in done.stderr
    done = kefu(env, "--since", "last week")
    assert done.returncode == 2
    assert "since must be a date" in done.stderr
