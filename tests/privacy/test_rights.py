"""Rights on SQLite and PostgreSQL, memory and Redis hot state: listing with cursors, the export's content, erasure
of rows and hot copies, a running turn cancelled before its conversation goes, the audit."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from kefu.errors import Conflict, InvalidInput, NotFound
from kefu.privacy.rights import Rights, encode_cursor
from kefu.store.base import ContextMessage, HotState, TurnMeta
from kefu.store.flowstate import FlowStates
from kefu.store.migrate import upgrade_database
from kefu.store.privacy import PERSONAL_TABLES, PrivacyStore
from kefu.store.sql import create_engine_for
from tests.store.conftest import HotStateFactory
from tests.store.personal_data import PHONE, Seeded, dump, seed_conversation

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)


@dataclass
class World:
    engine: AsyncEngine
    hot: HotState
    flows: FlowStates
    store: PrivacyStore
    rights: Rights


@pytest.fixture
async def world(database_url: str, hot_factory: HotStateFactory) -> AsyncIterator[World]:
    await upgrade_database(database_url)
    engine = create_engine_for(database_url)
    hot = hot_factory()
    flows = FlowStates(engine)  # its hot copy in this process (the Redis copy is covered in tests/store)
    store = PrivacyStore(engine)
    rights = Rights(
        store, turns=hot, leases=hot, context=hot, flows=flows, lease_seconds=1.0, cancel_wait=2.0, clock=lambda: NOW
    )
    yield World(engine, hot, flows, store, rights)
    await engine.dispose()


async def replayable(world: World, seeded: Seeded) -> None:
    """What a live conversation leaves in the hot state: a finished turn log, a context window, a flow copy."""
    for turn_id in seeded.turn_ids:
        meta = TurnMeta(turn_id, seeded.session_id, seeded.user_id, time.time())
        assert (
            await world.hot.begin_turn(meta, [("delta", f'{{"text":"{PHONE}"}}')], owner="w", lease_seconds=5) is None
        )
        await world.hot.append(turn_id, [("done", "{}")], final=True)
        await world.hot.release_session(seeded.session_id, turn_id)
    window = [ContextMessage("user", PHONE)]
    await world.hot.set_context(seeded.session_id, window, max_messages=10, ttl=60, owner=seeded.user_id)
    await world.flows.put(seeded.session_id, seeded.user_id, "change_address", {"slots": {"phone": PHONE}})


async def test_erase_removes_every_row_and_every_hot_copy(world: World) -> None:
    a = await seed_conversation(world.engine, "user-erin", "s_erin_a", T0)
    b = await seed_conversation(world.engine, "user-erin", "s_erin_b", T0)
    other = await seed_conversation(world.engine, "user-finn", "s_finn_a", T0)
    for seeded in (a, b, other):
        await replayable(world, seeded)

    counts = await world.rights.erase("user-erin", actor="shopper")

    assert counts == dict.fromkeys(PERSONAL_TABLES, 2) | {"messages": 4, "turn_logs": 4}
    for seeded in (a, b):
        for turn_id in seeded.turn_ids:
            assert await world.hot.get_turn(turn_id) is None
            assert await world.hot.read(turn_id, 0, 0) == []
        assert await world.hot.get_window(seeded.session_id) is None
        assert await world.flows.get(seeded.session_id) is None
        # The session lock erasure held is gone too: a (new) turn could take it at once.
        assert await world.hot.acquire_session(seeded.session_id, "t_next", lease_seconds=1) is None
    rows = await dump(world.engine)
    for table, content in rows.items():
        for trace in ("user-erin", a.session_id, b.session_id, *a.turn_ids, *b.turn_ids, a.handoff_turn):
            assert trace not in content, (table, trace)
    assert (
        "user-erin" not in rows["privacy_audit"] and hashlib.sha256(b"user-erin").hexdigest() in rows["privacy_audit"]
    )
    # Someone else's conversation is untouched, hot copies included.
    assert await world.hot.get_turn(other.turn_ids[0]) is not None
    assert await world.hot.get_window(other.session_id) is not None
    assert (await world.rights.list_sessions("user-finn")).sessions[0].id == other.session_id


async def test_erasing_or_exporting_nobody(world: World) -> None:
    assert await world.rights.erase("nobody", actor="shopper") == dict.fromkeys(PERSONAL_TABLES, 0) | {"turn_logs": 0}
    assert (await world.rights.export("nobody", actor="shopper"))["sessions"] == []
    with pytest.raises(NotFound):
        await world.rights.erase("nobody", actor="admin", missing_ok=False)
    with pytest.raises(NotFound):
        await world.rights.export("nobody", actor="cli", missing_ok=False)
    # Requests that were answered are audited; refused ones are not.
    assert [(r.action, r.actor) for r in await world.rights.audit_log()] == [
        ("export", "shopper"),
        ("erase", "shopper"),
    ]


async def test_a_running_turn_is_cancelled_before_its_conversation_is_erased(world: World) -> None:
    seeded = await seed_conversation(world.engine, "user-erin", "s_erin_a", T0)
    running = "t_running"
    meta = TurnMeta(running, seeded.session_id, seeded.user_id, time.time())
    assert await world.hot.begin_turn(meta, [("session", "{}")], owner="w", lease_seconds=1.0) is None
    stopped: list[float] = []

    async def turn() -> None:  # what a TurnRunner does: renew, notice the cancel, end the log, let go of the lock
        for _ in range(250):  # polls like the runner's lease renewal does
            if await world.hot.renew_lease(running, seeded.session_id, owner="w", lease_seconds=1.0):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the turn was never asked to stop")
        await world.hot.append(running, [("error", '{"code":"cancelled"}')], final=True)
        await world.hot.release_session(seeded.session_id, running)
        stopped.append(time.monotonic())

    task = asyncio.create_task(turn())
    counts = await world.rights.erase("user-erin", actor="shopper")
    erased_at = time.monotonic()
    await task
    assert stopped and stopped[0] <= erased_at and counts["sessions"] == 1
    assert await world.store.session_ids("user-erin") == []


async def test_a_turn_that_will_not_stop_makes_erasure_conflict(world: World) -> None:
    seeded = await seed_conversation(world.engine, "user-erin", "s_erin_a", T0)
    assert await world.hot.acquire_session(seeded.session_id, "t_stuck", lease_seconds=30) is None
    impatient = Rights(
        world.store,
        turns=world.hot,
        leases=world.hot,
        context=world.hot,
        flows=world.flows,
        lease_seconds=1.0,
        cancel_wait=0.2,
    )
    with pytest.raises(Conflict):
        await impatient.erase("user-erin", actor="shopper")
    assert await world.store.session_ids("user-erin") == [seeded.session_id]  # nothing of it went
    assert await world.hot.renew_lease("t_stuck", seeded.session_id, owner="x", lease_seconds=30)  # asked to stop


async def test_export_holds_every_table_and_notes_only_when_asked(world: World) -> None:
    seeded = await seed_conversation(world.engine, "user-erin", "s_erin_a", T0)
    await seed_conversation(world.engine, "user-finn", "s_finn_a", T0)

    document = await world.rights.export("user-erin", actor="shopper")

    assert document["format"] == "kefu.export/1" and document["user_id"] == "user-erin"
    assert document["exported_at"] == NOW.isoformat() and document["desk_notes_included"] is False
    [session] = document["sessions"]
    assert session["session_id"] == seeded.session_id and session["anonymised_at"] is None
    assert [m["role"] for m in session["messages"]] == ["user", "assistant"]
    assert PHONE in session["messages"][0]["content"]
    assert session["flow_state"]["state"]["slots"]["phone"] == PHONE  # JSON columns come as JSON
    [handoff] = session["handoffs"]
    assert handoff["rating"] == 5 and PHONE in handoff["rating_comment"] and handoff["summary"] == {"phone": PHONE}
    assert session["conversation_events"][0]["data"]["turn_id"] == seeded.turn_ids[0]
    [delivery] = session["webhook_deliveries"]
    assert delivery["body"]["data"]["user_id"] == "user-erin" and "url" not in delivery
    assert "desk_notes" not in session and "s_finn_a" not in repr(document)

    with_notes = await world.rights.export("user-erin", actor="admin", include_notes=True)
    assert with_notes["sessions"][0]["desk_notes"][0]["text"].endswith(PHONE)
    audit = await world.rights.audit_log()
    assert [(r.action, r.actor, r.details.get("desk_notes")) for r in audit] == [
        ("export", "admin", 1),
        ("export", "shopper", None),
    ]
    assert audit[0].subject == hashlib.sha256(b"user-erin").hexdigest() and audit[0].details["messages"] == 2


async def test_list_sessions_cursor_and_limits(world: World) -> None:
    for i in range(3):
        await seed_conversation(world.engine, "user-erin", f"s_{i}", T0 + timedelta(hours=i))
    first = await world.rights.list_sessions("user-erin", limit=2)
    assert [s.id for s in first.sessions] == ["s_2", "s_1"] and first.next_cursor is not None
    second = await world.rights.list_sessions("user-erin", limit=2, cursor=first.next_cursor)
    assert [s.id for s in second.sessions] == ["s_0"] and second.next_cursor is None
    assert (await world.rights.list_sessions("user-finn")).sessions == []
    for bad in ("garbage!", encode_cursor(T0, "")[:-2], "bm90LWEtY3Vyc29y"):
        with pytest.raises(InvalidInput):
            await world.rights.list_sessions("user-erin", cursor=bad)
    for limit in (0, 101):
        with pytest.raises(InvalidInput):
            await world.rights.list_sessions("user-erin", limit=limit)
