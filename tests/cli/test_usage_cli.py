"""``kefu usage`` through typer's runner on a SQLite file: table, CSV and JSON reports, grouping, bad dates."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from kefu.cli.main import app
from kefu.store.migrate import upgrade_database
from kefu.store.sql import create_engine_for
from kefu.store.usage import UsageLedger, UsageRecord

TODAY = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0)


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")  # the table on one line per row
    url = f"sqlite+aiosqlite:///{tmp_path / 'kefu.db'}"
    monkeypatch.setenv("KEFU_DATABASE_URL", url)

    async def seed() -> None:
        await upgrade_database(url)
        ledger = UsageLedger(create_engine_for(url))
        for at, model, source, cost in (
            (TODAY, "deepseek-chat", "llm", 1_500_000),
            (TODAY, "deepseek-reasoner", "kb", 500_000),
            (TODAY - timedelta(days=1), "deepseek-chat", "llm", 1_000_000),
            (TODAY - timedelta(days=30), "deepseek-chat", "llm", 9_000_000),
        ):
            await ledger.record(
                UsageRecord(at, "t", "s", source, model, "primary", "stop", 10, 20, 30, 0, False, cost, "USD")
            )
        await ledger.aclose()

    asyncio.run(seed())
    return url


def kefu(*args: str) -> Result:
    return CliRunner().invoke(app, ["usage", *args])


def test_json_by_model_over_the_default_week(database_url: str) -> None:
    result = kefu("--by", "model", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["model"], r["calls"], r["cost"]) for r in rows] == [
        ("deepseek-chat", 2, "0.0025"),
        ("deepseek-reasoner", 1, "0.0005"),
    ]


def test_csv_by_day_with_since_and_until(database_url: str) -> None:
    day = (TODAY - timedelta(days=30)).date().isoformat()
    result = kefu("--since", day, "--until", day, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert rows == [
        {
            "day": day,
            "currency": "USD",
            "calls": "1",
            "estimated_calls": "0",
            "prompt_cache_hit_tokens": "10",
            "prompt_cache_miss_tokens": "20",
            "completion_tokens": "30",
            "reasoning_tokens": "0",
            "cost": "0.009",
        }
    ]


def test_table_by_source_has_totals(database_url: str) -> None:
    result = kefu("--by", "source")
    assert result.exit_code == 0, result.output
    assert "kb" in result.output and "llm" in result.output
    assert "0.003000 USD" in result.output  # the total of the week


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "2026-02-30"), "is not a date"),
        (("--until", "yesterday"), "is not a date"),
        (("--since", "2026-03-02", "--until", "2026-03-01"), "is before --since"),
    ],
)
def test_bad_dates_are_clear_errors(database_url: str, args: tuple[str, ...], message: str) -> None:
    result = kefu(*args)
    assert result.exit_code == 2
    assert message in result.output
