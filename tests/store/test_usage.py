"""The token ledger on SQLite and PostgreSQL: recording, reports by day/model/source, today's spend, and erasure
leaving the counts linked to nobody; the spend counters (memory and Redis); prices and estimates."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from kefu.errors import ConfigError
from kefu.llm.base import Usage
from kefu.llm.prices import load_prices, parse_prices
from kefu.llm.usage import TokenCounts, counts_from_usage, estimate_counts, estimate_tokens
from kefu.store.migrate import upgrade_database
from kefu.store.privacy import PrivacyStore
from kefu.store.sql import create_engine_for
from kefu.store.usage import UsageLedger, UsageRecord
from kefu.store.usage_spend import MemorySpend, RedisSpend
from tests.store.conftest import delete_prefix
from tests.store.personal_data import dump, seed_conversation

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade_database(database_url)
    engine = create_engine_for(database_url)
    yield engine
    await engine.dispose()


def record(
    at: datetime,
    *,
    model: str = "deepseek-chat",
    source: str = "llm",
    cost: int | None = 100,
    session_id: str | None = "s1",
    turn_id: str | None = "t1",
    estimated: bool = False,
) -> UsageRecord:
    return UsageRecord(
        created_at=at,
        turn_id=turn_id,
        session_id=session_id,
        source=source,
        model=model,
        upstream="primary",
        finish_reason="stop",
        prompt_cache_hit_tokens=10,
        prompt_cache_miss_tokens=20,
        completion_tokens=30,
        reasoning_tokens=5,
        estimated=estimated,
        cost_nano=cost,
        currency="USD" if cost is not None else None,
    )


async def test_reports_group_by_day_model_and_source(engine: AsyncEngine) -> None:
    ledger = UsageLedger(engine)
    await ledger.record(record(T0))
    await ledger.record(record(T0 + timedelta(hours=1), model="deepseek-reasoner", source="kb", estimated=True))
    await ledger.record(record(T0 + timedelta(days=1, hours=13), cost=None, model="unpriced"))
    by_day = await ledger.report(by="day")
    assert [(line.key, line.currency, line.calls) for line in by_day] == [
        ("2026-03-01", "USD", 2),
        ("2026-03-03", None, 1),
    ]
    assert by_day[0].cost_nano == 200 and by_day[0].estimated_calls == 1
    assert by_day[0].prompt_cache_hit_tokens == 20 and by_day[0].reasoning_tokens == 10
    by_model = await ledger.report(by="model", since=T0, until=T0 + timedelta(days=1))
    assert [(line.key, line.calls) for line in by_model] == [("deepseek-chat", 1), ("deepseek-reasoner", 1)]
    assert {line.key for line in await ledger.report(by="source")} == {"kb", "llm"}
    assert await ledger.spent(T0 - timedelta(hours=12), T0 + timedelta(hours=12), "USD") == 200
    assert await ledger.spent(T0 - timedelta(hours=12), T0 + timedelta(hours=12), "CNY") == 0


async def test_deleting_a_session_keeps_its_counts_linked_to_nobody(engine: AsyncEngine) -> None:
    ledger = UsageLedger(engine)
    seeded = await seed_conversation(engine, "user-erin", "s_erin_a", T0)
    await ledger.record(record(T0, session_id="s_erin_a", turn_id=seeded.turn_ids[0]))
    await ledger.record(record(T0, session_id="s_other", turn_id="t_other"))
    await PrivacyStore(engine).delete_sessions(["s_erin_a"])
    rows = await dump(engine)
    assert "s_erin_a" not in rows["llm_usage"] and seeded.turn_ids[0] not in rows["llm_usage"]
    assert "s_other" in rows["llm_usage"]  # other conversations keep their link
    assert sum(line.calls for line in await ledger.report(by="model")) == 2  # the counts stay


async def test_memory_spend_counts_per_day_and_currency() -> None:
    spend = MemorySpend()
    spend.seed("2026-03-01", "USD", 5)
    assert await spend.add("2026-03-01", "USD", 10) == 15
    assert await spend.add("2026-03-01", "CNY", 1) == 1
    assert await spend.add("2026-03-02", "USD", 3) == 3
    assert await spend.total("2026-03-01", "USD") == 0  # an old day is dropped


@pytest.mark.redis
async def test_redis_spend_is_one_shared_counter(redis_url: str) -> None:
    prefix = f"kefutest:{uuid.uuid4().hex[:12]}"
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        one, other = RedisSpend(client, prefix), RedisSpend(client, prefix)
        assert await one.add("2026-03-01", "USD", 7) == 7
        assert await other.add("2026-03-01", "USD", 5) == 12
        assert await one.total("2026-03-01", "USD") == 12
        assert 0 < await client.ttl(f"{prefix}:spend:2026-03-01:USD") <= 2 * 86400
    finally:
        await client.aclose()
        await delete_prefix(redis_url, prefix)


def test_usage_split_reads_deepseek_and_openai_fields() -> None:
    deepseek = Usage(
        100, 50, 150, {"prompt_cache_hit_tokens": 60, "prompt_cache_miss_tokens": 40, "reasoning_tokens": 20}
    )
    assert counts_from_usage(deepseek) == TokenCounts(60, 40, 50, 20)
    openai = Usage(100, 50, 150, {"cached_tokens": 30})
    assert counts_from_usage(openai) == TokenCounts(30, 70, 50, 0)
    assert counts_from_usage(Usage(100, 50, 150)) == TokenCounts(0, 100, 50, 0)


def test_estimates_count_cjk_dearer_than_latin() -> None:
    assert estimate_tokens("你好") == pytest.approx(1.2)
    assert estimate_tokens("ab c") == pytest.approx(0.9)
    counts = estimate_counts(None, ["你好", "abc"])
    assert counts == TokenCounts(0, 0, 3, 0, estimated=True)


def test_prices_exact_before_glob_and_cost_in_nano_units(tmp_path: Path) -> None:
    table = parse_prices(
        {
            "currency": "usd",
            "models": {
                "gpt-4o*": {"input_cache_hit": 1, "input_cache_miss": 2, "output": 4},
                "gpt-4o-mini": {"input_cache_hit": 0.1, "input_cache_miss": 0.2, "output": 0.4, "currency": "CNY"},
            },
        }
    )
    assert table.currency == "USD" and table.currencies == {"USD", "CNY"}
    mini = table.price("gpt-4o-mini")
    assert mini is not None and mini.currency == "CNY"
    big = table.price("gpt-4o-2024-08-06")
    assert big is not None and big.cost_nano(TokenCounts(1, 1, 1)) == 7000
    assert table.price("other") is None
    bad = tmp_path / "prices.yaml"
    bad.write_text("currency: USD\nmodels:\n  m: {input_cache_hit: -1, input_cache_miss: 1, output: 1}\n")
    with pytest.raises(ConfigError, match="models.m.input_cache_hit"):
        load_prices(bad)
    bad.write_text("currency: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_prices(bad)
