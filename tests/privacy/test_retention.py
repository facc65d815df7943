"""The retention sweep on its own: one process at a time, batches, conversations that came back to life."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kefu.cli.main import app
from kefu.privacy.retention import JOB, Retention, RetentionPolicy
from kefu.store.flowstate import FlowStates
from kefu.store.memory import MemoryHotState
from kefu.store.migrate import upgrade_database
from kefu.store.privacy import PrivacyStore
from kefu.store.sql import SqlTranscriptStore, create_engine_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[SqlTranscriptStore, Retention, MemoryHotState]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'kefu.db'}"
    await upgrade_database(url)
    transcripts = SqlTranscriptStore(create_engine_for(url))
    engine = create_engine_for(url)
    hot = MemoryHotState()
    retention = Retention(
        PrivacyStore(engine),
        policy=RetentionPolicy(anonymise_after=timedelta(hours=72), delete_after=timedelta(days=180)),
        turns=hot,
        context=hot,
        flows=FlowStates(engine),
        locks=hot,
    )
    yield transcripts, retention, hot
    await transcripts.aclose()
    await engine.dispose()


async def test_anonymise_then_delete_by_age(parts: tuple[SqlTranscriptStore, Retention, MemoryHotState]) -> None:
    store, retention, _ = parts
    await store.start_session("s_old", "u1", "t_1", "电话 13800138000", T0)
    await store.start_session("s_new", "u1", "t_2", "电话 13900139000", T0 + timedelta(days=10))
    result = await retention.sweep(now=T0 + timedelta(days=5))
    assert result is not None and result.anonymised == 1 and result.deleted == 0
    assert (await store.list_messages("s_old"))[0].content == "电话 [手机号]"
    assert (await store.list_messages("s_new"))[0].content == "电话 13900139000"
    again = await retention.sweep(now=T0 + timedelta(days=5))
    assert again is not None and again.anonymised == 0  # done once, not every sweep
    # Active again after anonymisation: its new messages are anonymised in turn, later.
    await store.add_user_message("s_old", "t_3", "新号码 13700137000", T0 + timedelta(days=6), reset_context=False)
    later = await retention.sweep(now=T0 + timedelta(days=10))
    assert later is not None and later.anonymised == 1
    assert [m.content for m in await store.list_messages("s_old")] == ["电话 [手机号]", "新号码 [手机号]"]
    gone = await retention.sweep(now=T0 + timedelta(days=187))
    assert gone is not None and gone.deleted == 1
    assert await store.get_session("s_old") is None and await store.get_session("s_new") is not None


async def test_only_one_sweep_at_a_time(parts: tuple[SqlTranscriptStore, Retention, MemoryHotState]) -> None:
    store, retention, hot = parts
    await store.start_session("s_old", "u1", "t_1", "13800138000", T0)
    assert await hot.acquire_job(JOB, "another-replica", lease_seconds=60)
    assert await retention.sweep(now=T0 + timedelta(days=5)) is None
    assert (await store.list_messages("s_old"))[0].content == "13800138000"
    await hot.release_job(JOB, "another-replica")
    results = await asyncio.gather(*(retention.sweep(now=T0 + timedelta(days=5)) for _ in range(3)))
    ran = [r for r in results if r is not None]
    assert len(ran) >= 1 and sum(r.anonymised for r in ran) == 1


async def test_many_sessions_go_in_batches(parts: tuple[SqlTranscriptStore, Retention, MemoryHotState]) -> None:
    store, retention, _ = parts
    for i in range(230):
        await store.start_session(f"s_{i:03d}", "u", f"t_{i}", f"卡 6222021234567890128 #{i}", T0)
    result = await retention.sweep(now=T0 + timedelta(days=4))
    assert result is not None and result.anonymised == 230 and result.rows["messages"] == 230


def test_cli_sweep_export_and_erase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'kefu.db'}")
    monkeypatch.delenv("KEFU_REDIS_URL", raising=False)
    runner = CliRunner()
    missing = runner.invoke(app, ["privacy", "erase", "nobody", "--yes"])
    assert missing.exit_code == 1 and "no data about user 'nobody'" in missing.output

    async def seed() -> None:
        await upgrade_database(f"sqlite+aiosqlite:///{tmp_path / 'kefu.db'}")
        store = SqlTranscriptStore(create_engine_for(f"sqlite+aiosqlite:///{tmp_path / 'kefu.db'}"))
        await store.start_session("s_1", "ivy", "t_1", "手机 13800138000", datetime.now(UTC))
        await store.aclose()

    asyncio.run(seed())
    exported = runner.invoke(app, ["privacy", "export", "ivy", "-o", str(tmp_path / "ivy.json")])
    assert exported.exit_code == 0, exported.output
    assert "13800138000" in (tmp_path / "ivy.json").read_text(encoding="utf-8")
    swept = runner.invoke(app, ["privacy", "sweep", "--json"])
    assert swept.exit_code == 0 and '"anonymised": 0' in swept.output  # too recent
    refused = runner.invoke(app, ["privacy", "erase", "ivy"], input="n\n")
    assert refused.exit_code == 1
    erased = runner.invoke(app, ["privacy", "erase", "ivy", "--yes"])
    assert erased.exit_code == 0 and "erased 1 conversation(s)" in erased.output
