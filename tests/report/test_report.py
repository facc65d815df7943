"""The report over a seeded week, on SQLite and PostgreSQL: every number against what the seed says happened."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from kefu.report.period import Period
from kefu.report.query import usage_ledger
from kefu.report.service import Reports

WEEK = Period(date(2026, 12, 1), date(2026, 12, 2))


async def test_conversations_and_deflection(reports: Reports) -> None:
    report = await reports.report(WEEK)
    c = report["conversations"]
    # s1…s8 started in the range; s0 started before it, s-empty has no shopper message.
    assert c["total"] == 8
    assert c["handed_off"] == 4  # s2 (asked), s5 (model), s7 (button), s8 (flow)
    assert c["deflected"] == 4  # s1, s3, s4, s6
    assert c["deflection_rate"] == 0.5
    assert c["deflected_without_fallback"] == 2  # s3 and s4 got suggestions / an apology
    assert c["per_day"] == [
        {"date": "2026-12-01", "conversations": 2, "deflected": 1, "handed_off": 1},
        {"date": "2026-12-02", "conversations": 6, "deflected": 3, "handed_off": 3},
    ]


async def test_handoffs_answers_and_csat(reports: Reports) -> None:
    report = await reports.report(WEEK)
    assert report["handoffs"]["by_reason"] == {"shopper_asked": 1, "model": 1, "button": 1, "flow": 1}
    assert report["handoffs"]["by_outcome"] == {"resolved": 1, "queued": 3}
    answers = report["answers"]
    assert answers["by_source"] == {
        "faq": 2,
        "kb": 1,
        "llm": 1,
        "flow": 2,
        "fallback": 4,
        "agent": 1,
        "human": 2,  # the handoff notices
    }
    assert answers["fallback_kinds"] == {"apology": 2, "suggestions": 2, "kb": 0}
    csat = report["csat"]
    assert (csat["rated"], csat["closed"], csat["average"], csat["response_rate"]) == (1, 1, 5.0, 1.0)
    assert csat["distribution"] == {"1": 0, "2": 0, "3": 0, "4": 0, "5": 1}


async def test_unanswered_questions_grouped_with_nearest_faq(reports: Reports) -> None:
    unanswered = (await reports.report(WEEK, top=10))["unanswered"]
    assert unanswered["total"] == 5
    assert unanswered["by_reason"] == {"handoff": 3, "apology": 2, "suggestion_not_taken": 1}
    groups = {g["question"]: g for g in unanswered["groups"]}
    # Three held-out warranty phrasings (never used to tune the threshold) are one group.
    warranty = unanswered["groups"][0]
    assert warranty["count"] == 3
    assert sorted(warranty["examples"]) == sorted(["保修多久", "保修期是多长时间", "这个保修几年"])
    assert warranty["reasons"] == {"suggestion_not_taken": 1, "apology": 1, "handoff": 1}
    assert warranty["answered_now"] is False  # the demo shop has no warranty FAQ
    # Paying in instalments: the apology and the handoff that followed count once, with both reasons.
    instalments = groups["可以分期付款吗"]
    assert instalments["count"] == 1
    assert instalments["reasons"] == {"apology": 1, "handoff": 1}
    assert instalments["nearest_faq"]["id"] == "pay-methods"
    # The button after a KB answer: the question before it; its nearest FAQ is the shop's overseas entry.
    assert groups["可以寄到美国吗"]["nearest_faq"]["id"] == "ship-overseas"
    # Neither the suggestion that was taken (s3), nor the flow's handoff (s8), nor the day before (s0).
    everything = {e for g in unanswered["groups"] for e in g["examples"]}
    assert everything.isdisjoint({"支持分期吗", "订单号 20261201", "我要退货"})
    assert len(unanswered["groups"]) == 3


async def test_top_limits_the_groups_shown(reports: Reports) -> None:
    unanswered = (await reports.report(WEEK, top=1))["unanswered"]
    assert [g["count"] for g in unanswered["groups"]] == [3]
    assert unanswered["groups_total"] == 3


async def test_days_are_counted_in_the_report_time_zone(reports: Reports) -> None:
    # In Los Angeles, 2026-12-01 02:00 UTC is still November 30th: s1 and s2 fall out of December 1st, and the
    # six of December 2nd (02:00-07:00 UTC) are December 1st's evening.
    report = await reports.report(Period(date(2026, 12, 1), date(2026, 12, 1), "America/Los_Angeles"))
    assert report["conversations"]["total"] == 6
    report = await reports.report(Period(date(2026, 11, 30), date(2026, 11, 30), "America/Los_Angeles"))
    assert report["conversations"]["total"] == 2
    assert report["period"]["start"] == "2026-11-30T08:00:00+00:00"


async def test_an_empty_range_has_zeros_not_errors(reports: Reports) -> None:
    report = await reports.report(Period(date(2025, 1, 1), date(2025, 1, 2)))
    assert report["conversations"]["total"] == 0
    assert report["conversations"]["deflection_rate"] is None
    assert [d["conversations"] for d in report["conversations"]["per_day"]] == [0, 0]
    assert report["unanswered"]["groups"] == []
    assert report["csat"]["average"] is None


def _filler(column: Any) -> Any:
    """A value for a required column the test does not care about."""
    kind = column.type.python_type
    return {int: 0, bool: False, datetime: datetime(2026, 12, 2, tzinfo=UTC), str: "x"}.get(kind, None)


async def test_cost_comes_from_the_usage_ledger_when_there_is_one(engine: AsyncEngine, reports: Reports) -> None:
    async with engine.connect() as conn:
        ledger = await usage_ledger(conn)
    if ledger is None:  # no ledger migration yet: make the plain shape the report also reads
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE TABLE usage (session_id VARCHAR(255), turn_id VARCHAR(255), "
                    "cost NUMERIC, currency VARCHAR(8))"
                )
            )
            ledger = await usage_ledger(conn)
    assert ledger is not None
    metadata = MetaData()
    async with engine.begin() as conn:
        table = await conn.run_sync(lambda sync: Table(ledger.table, metadata, autoload_with=sync))
        required = {
            c.name: _filler(c)
            for c in table.columns
            if not c.nullable and c.server_default is None and not (c.primary_key and c.autoincrement)
        }
        unit = round(1 / ledger.scale)
        rows = [
            ("s2", "t1", 2 * unit, "CNY"),
            ("s2", "t2", 1 * unit, "CNY"),
            ("s6", "t3", 3 * unit, "CNY"),
            ("s1", "t4", 1 * unit, "USD"),
            ("s0", "t5", 100 * unit, "CNY"),
        ]  # s0: before the range
        await conn.execute(
            insert(table),
            [
                required | {"session_id": s, "turn_id": t, ledger.cost_column: c, "currency": cur}
                for s, t, c, cur in rows
            ],
        )
    cost = (await reports.report(WEEK))["cost"]
    assert cost == {
        "by_currency": [
            {"currency": "CNY", "total": 6.0, "per_conversation": 0.75, "priced_conversations": 2, "turns": 3},
            {"currency": "USD", "total": 1.0, "per_conversation": 0.125, "priced_conversations": 1, "turns": 1},
        ]
    }


async def test_no_usage_ledger_means_no_cost_section(engine: AsyncEngine, reports: Reports) -> None:
    async with engine.begin() as conn:
        ledger = await usage_ledger(conn)
        if ledger is not None:
            await conn.execute(text(f"DROP TABLE {ledger.table}"))
    assert (await reports.report(WEEK))["cost"] is None


@pytest.mark.parametrize("top", [0, 1000])
async def test_top_is_clamped(reports: Reports, top: int) -> None:
    groups = (await reports.report(WEEK, top=top))["unanswered"]["groups"]
    assert len(groups) == (0 if top == 0 else 3)
