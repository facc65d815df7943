"""PrivacyStore on SQLite and PostgreSQL: every table accounted for, listing, reading out, deleting and anonymising
a shopper's rows, the audit."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import kefu.store
from kefu.privacy.scrub import SCRUB
from kefu.store.migrate import upgrade_database
from kefu.store.models import Base
from kefu.store.privacy import NO_SHOPPER_DATA, PERSONAL_TABLES, PREVIEW_CHARS, PrivacyStore
from kefu.store.sql import SqlTranscriptStore, create_engine_for
from tests.store.personal_data import CARD, EMAIL, PHONE, dump, seed_conversation, table_names

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade_database(database_url)
    engine = create_engine_for(database_url)
    yield engine
    await engine.dispose()


def all_model_tables() -> set[str]:
    """The tables of every model module under kefu.store (imported here, so a new module counts too)."""
    for module in pkgutil.walk_packages(kefu.store.__path__, "kefu.store."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)
    return set(Base.metadata.tables)


async def test_every_table_is_either_personal_or_named_as_holding_no_shopper_data(engine: AsyncEngine) -> None:
    personal, exempt = set(PERSONAL_TABLES), set(NO_SHOPPER_DATA)
    assert personal & exempt == set()
    assert all(reason.strip() for reason in NO_SHOPPER_DATA.values())
    for tables in (all_model_tables(), set(await table_names(engine))):
        missing = tables - personal - exempt
        assert missing == set(), (
            f"{sorted(missing)}: erase, export and anonymise it in kefu/store/privacy.py, or add it to "
            "NO_SHOPPER_DATA with the reason it holds none"
        )


async def test_delete_sessions_removes_every_row_about_them_and_names_their_turns(engine: AsyncEngine) -> None:
    store = PrivacyStore(engine)
    a = await seed_conversation(engine, "user-erin", "s_erin_a", T0)
    b = await seed_conversation(engine, "user-erin", "s_erin_b", T0)
    kept = await seed_conversation(engine, "user-finn", "s_finn_a", T0)

    removed = await store.delete_sessions([a.session_id, b.session_id, "s_unknown"])

    assert sorted(removed.session_ids) == ["s_erin_a", "s_erin_b"]
    assert removed.rows == dict.fromkeys(PERSONAL_TABLES, 2) | {"messages": 4}
    assert set(removed.turn_ids) == {*a.turn_ids, *b.turn_ids, a.handoff_turn, b.handoff_turn}
    rows = await dump(engine)
    for table, content in rows.items():
        for trace in ("user-erin", "s_erin_a", "s_erin_b", *a.turn_ids, *b.turn_ids, a.handoff_turn):
            assert trace not in content, (table, trace)
    assert all(kept.session_id in rows[t] for t in PERSONAL_TABLES if t != "messages")
    assert kept.turn_ids[0] in rows["messages"]


async def test_delete_with_an_idle_guard_leaves_a_conversation_that_came_back(engine: AsyncEngine) -> None:
    store = PrivacyStore(engine)
    await seed_conversation(engine, "u", "s_old", T0)
    await seed_conversation(engine, "u", "s_back", T0 + timedelta(days=10))
    removed = await store.delete_sessions(["s_old", "s_back"], idle_before=T0 + timedelta(days=1))
    assert removed.session_ids == ["s_old"]
    assert await store.session_ids("u") == ["s_back"]


async def test_anonymise_masks_every_quote_keeps_the_text_and_drops_the_flow(engine: AsyncEngine) -> None:
    store = PrivacyStore(engine)
    old = await seed_conversation(engine, "user-erin", "s_old", T0)
    recent = await seed_conversation(engine, "user-erin", "s_recent", T0 + timedelta(days=3))
    cutoff, now = T0 + timedelta(days=1), T0 + timedelta(days=4)

    counts = await store.anonymise_sessions(
        [old.session_id, recent.session_id], idle_before=cutoff, now=now, scrub=SCRUB
    )

    assert counts == {
        "sessions": 1,
        "messages": 2,
        "handoff_requests": 1,
        "conversation_events": 1,
        "desk_notes": 1,
        "webhook_deliveries": 1,
        "flow_states": 1,
    }
    [data, untouched] = await store.read_sessions([old.session_id, recent.session_id])
    assert data.session["anonymised_at"] == now and untouched.session["anonymised_at"] is None
    everything = repr(data)
    for number in (PHONE, EMAIL, CARD):
        assert number not in everything
    assert data.messages[0]["content"] == "我的手机 [手机号]，邮箱 [邮箱]，卡号 [银行卡号]，订单 DD20261105002"
    assert data.handoffs[0]["rating_comment"] == "很好，有事打 [手机号]" and data.handoffs[0]["rating"] == 5
    assert "[手机号]" in data.handoffs[0]["context"] and "[手机号]" in data.deliveries[0]["body"]
    assert data.flow_state is None
    assert PHONE in repr(untouched)

    assert await store.idle_sessions(cutoff, not_anonymised=True) == []
    again = await store.anonymise_sessions([old.session_id], idle_before=cutoff, now=now, scrub=SCRUB)
    assert again == {"sessions": 0}


async def test_a_conversation_active_again_is_due_for_anonymisation_again(engine: AsyncEngine) -> None:
    store = PrivacyStore(engine)
    transcripts = SqlTranscriptStore(engine)
    await seed_conversation(engine, "u", "s_1", T0)
    await store.anonymise_sessions(
        ["s_1"], idle_before=T0 + timedelta(hours=1), now=T0 + timedelta(hours=2), scrub=SCRUB
    )
    await transcripts.add_user_message("s_1", "t_new", f"新号码 {PHONE}", T0 + timedelta(days=1), reset_context=False)
    later = T0 + timedelta(days=5)
    assert await store.idle_sessions(later, not_anonymised=True) == ["s_1"]
    await store.anonymise_sessions(["s_1"], idle_before=later, now=later, scrub=SCRUB)
    [data] = await store.read_sessions(["s_1"])
    assert [m["content"] for m in data.messages][-1] == "新号码 [手机号]"


async def test_list_sessions_pages_newest_first_through_equal_times(engine: AsyncEngine) -> None:
    store = PrivacyStore(engine)
    transcripts = SqlTranscriptStore(engine)
    for i in range(5):  # s_0..s_2 share one time: the id breaks the tie
        at = T0 + timedelta(minutes=max(i - 2, 0))
        await transcripts.start_session(f"s_{i}", "u", f"t_{i}", f"问题 {i} " + "很长" * 100, at)
    await transcripts.start_session("s_other", "someone-else", "t_x", "别人的", T0)

    seen: list[str] = []
    before = None
    while True:
        page = await store.list_sessions("u", limit=2, before=before)
        if not page:
            break
        seen += [s.id for s in page]
        before = (page[-1].last_active_at, page[-1].id)
    assert seen == ["s_4", "s_3", "s_2", "s_1", "s_0"]
    [first] = await store.list_sessions("u", limit=1)
    assert first.message_count == 1 and first.last_role == "user"
    assert first.last_text is not None and len(first.last_text) == PREVIEW_CHARS


async def test_the_audit_keeps_counts(engine: AsyncEngine) -> None:
    store = PrivacyStore(engine)
    await store.audit(at=T0, action="erase", actor="admin", subject="ab" * 32, details={"sessions": 2})
    await store.audit(at=T0 + timedelta(seconds=1), action="sweep", actor="sweep", subject=None, details={})
    records = await store.audit_log()
    assert [(r.action, r.actor, r.subject, r.details) for r in records] == [
        ("sweep", "sweep", None, {}),
        ("erase", "admin", "ab" * 32, {"sessions": 2}),
    ]
