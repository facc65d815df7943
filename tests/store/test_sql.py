"""The TranscriptStore suite, run against SQLite (a temp file) and PostgreSQL (marked ``postgres``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from kefu.errors import Conflict, NotFound
from kefu.store.base import MessageRecord, MessageStatus
from kefu.store.models import MessageRow
from kefu.store.sql import SqlTranscriptStore

T0 = datetime(2025, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)
BEIJING = timezone(timedelta(hours=8))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def answer(
    store: SqlTranscriptStore,
    turn_id: str,
    content: str,
    now: datetime,
    *,
    status: MessageStatus = "complete",
    source: str | None = "llm",
    model: str | None = "m1",
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
) -> bool:
    return await store.add_assistant_message(
        "s1",
        turn_id,
        content,
        status,
        now,
        source=source,
        model=model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


async def message_rows(store: SqlTranscriptStore) -> int:
    async with store.engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(MessageRow))).scalar_one()
    return int(count)


async def test_create_session_is_idempotent(transcript: SqlTranscriptStore) -> None:
    first = await transcript.create_session("s1", "u1", T0)
    assert (first.id, first.user_id) == ("s1", "u1")
    assert first.created_at == first.last_active_at == first.context_started_at == T0
    again = await transcript.create_session("s1", "someone-else", at(60))
    assert again == first
    assert await transcript.get_session("s1") == first
    assert await transcript.get_session("unknown") is None


async def test_start_session_stores_the_session_with_its_first_message(transcript: SqlTranscriptStore) -> None:
    message = await transcript.start_session("s1", "u1", "t1", "在吗", T0)
    assert (message.session_id, message.turn_id, message.role, message.content) == ("s1", "t1", "user", "在吗")
    session = await transcript.get_session("s1")
    assert session is not None and session.user_id == "u1" and session.last_active_at == T0
    assert [(m.role, m.content) for m in await transcript.list_messages("s1")] == [("user", "在吗")]


async def test_start_session_never_writes_into_an_existing_session(transcript: SqlTranscriptStore) -> None:
    await transcript.create_session("s1", "owner", T0)
    with pytest.raises(Conflict):
        await transcript.start_session("s1", "intruder", "t1", "hi", at(1))
    assert await transcript.list_messages("s1") == []
    session = await transcript.get_session("s1")
    assert session is not None and session.user_id == "owner"


async def test_concurrent_creates_agree(transcript: SqlTranscriptStore) -> None:
    records = await asyncio.gather(*(transcript.create_session("s1", f"u{i}", at(i)) for i in range(5)))
    assert len(set(records)) == 1


async def test_datetimes_come_back_aware_utc(transcript: SqlTranscriptStore) -> None:
    local = datetime(2025, 3, 1, 16, 0, 0, tzinfo=BEIJING)  # 08:00 UTC
    await transcript.create_session("s1", "u1", local)
    record = await transcript.get_session("s1")
    assert record is not None
    for value in (record.created_at, record.last_active_at, record.context_started_at):
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
        assert value == local
    message = await transcript.add_user_message("s1", "t1", "q", local, reset_context=False)
    assert message.created_at == local and message.created_at.utcoffset() == timedelta(0)
    (stored,) = await transcript.list_messages("s1")
    assert stored.created_at == local and stored.created_at.utcoffset() == timedelta(0)


async def test_naive_datetimes_are_refused(transcript: SqlTranscriptStore) -> None:
    with pytest.raises(ValueError):
        await transcript.create_session("s1", "u1", datetime(2025, 3, 1, 8, 0))
    assert await transcript.get_session("s1") is None


async def test_user_message_touches_the_session(transcript: SqlTranscriptStore) -> None:
    await transcript.create_session("s1", "u1", T0)
    message = await transcript.add_user_message("s1", "t1", "你好", at(10), reset_context=False)
    assert (message.session_id, message.turn_id, message.role, message.content) == ("s1", "t1", "user", "你好")
    assert message.status == "complete" and message.created_at == at(10) and message.id > 0
    session = await transcript.get_session("s1")
    assert session is not None
    assert session.last_active_at == at(10)
    assert session.context_started_at == T0

    await transcript.add_user_message("s1", "t2", "again", at(5000), reset_context=True)
    session = await transcript.get_session("s1")
    assert session is not None
    assert session.last_active_at == session.context_started_at == at(5000)
    assert session.created_at == T0
    assert [m.content for m in await transcript.list_messages("s1")] == ["你好", "again"]


async def test_user_message_for_unknown_session(transcript: SqlTranscriptStore) -> None:
    with pytest.raises(NotFound):
        await transcript.add_user_message("nope", "t1", "q", T0, reset_context=False)
    assert await message_rows(transcript) == 0


async def test_assistant_message_is_stored_exactly_once(transcript: SqlTranscriptStore) -> None:
    await transcript.create_session("s1", "u1", T0)
    await transcript.add_user_message("s1", "t1", "q", at(1), reset_context=False)
    assert await answer(transcript, "t1", "first answer", at(2), prompt_tokens=12, completion_tokens=3)
    assert not await answer(transcript, "t1", "second answer", at(3), status="interrupted", source="faq")
    messages = await transcript.list_messages("s1")
    assert [(m.role, m.content) for m in messages] == [("user", "q"), ("assistant", "first answer")]
    stored = messages[1]
    assert (stored.status, stored.source, stored.model) == ("complete", "llm", "m1")
    assert (stored.prompt_tokens, stored.completion_tokens) == (12, 3)
    assert stored.created_at == at(2)


async def test_racing_answers_store_one(transcript: SqlTranscriptStore) -> None:
    await transcript.create_session("s1", "u1", T0)
    results = await asyncio.gather(*(answer(transcript, "t1", f"answer {i}", at(1)) for i in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert await message_rows(transcript) == 1


async def test_partial_answers_keep_their_status(transcript: SqlTranscriptStore) -> None:
    await transcript.create_session("s1", "u1", T0)
    assert await answer(transcript, "t1", "half an", at(1), status="interrupted")
    assert await answer(transcript, "t2", "", at(2), status="failed", source=None, model=None)
    messages = await transcript.list_messages("s1")
    assert [(m.status, m.content, m.source, m.model) for m in messages] == [
        ("interrupted", "half an", "llm", "m1"),
        ("failed", "", None, None),
    ]


async def test_answer_for_a_deleted_session_stores_nothing(transcript: SqlTranscriptStore) -> None:
    assert not await answer(transcript, "t1", "late", T0)
    assert await message_rows(transcript) == 0


async def test_list_messages_since_and_last(transcript: SqlTranscriptStore) -> None:
    await transcript.create_session("s1", "u1", T0)
    for i in range(3):
        await transcript.add_user_message("s1", f"t{i}", f"q{i}", at(10 * i), reset_context=False)
        await answer(transcript, f"t{i}", f"a{i}", at(10 * i + 5))
    await transcript.create_session("s2", "u1", T0)
    await transcript.add_user_message("s2", "other", "elsewhere", at(1), reset_context=False)

    def contents(messages: list[MessageRecord]) -> list[str]:
        return [m.content for m in messages]

    assert contents(await transcript.list_messages("s1")) == ["q0", "a0", "q1", "a1", "q2", "a2"]
    assert contents(await transcript.list_messages("s1", since=at(10))) == ["q1", "a1", "q2", "a2"]
    assert contents(await transcript.list_messages("s1", since=at(10).astimezone(BEIJING))) == ["q1", "a1", "q2", "a2"]
    assert contents(await transcript.list_messages("s1", last=3)) == ["a1", "q2", "a2"]
    assert contents(await transcript.list_messages("s1", since=at(20), last=5)) == ["q2", "a2"]
    assert await transcript.list_messages("s1", last=0) == []
    assert await transcript.list_messages("unknown") == []


async def test_messages_with_equal_timestamps_keep_insertion_order(transcript: SqlTranscriptStore) -> None:
    await transcript.create_session("s1", "u1", T0)
    await transcript.add_user_message("s1", "t1", "question", at(1), reset_context=False)
    await answer(transcript, "t1", "answer", at(1))
    assert [m.role for m in await transcript.list_messages("s1")] == ["user", "assistant"]
    assert [m.role for m in await transcript.list_messages("s1", last=1)] == ["assistant"]


async def test_delete_session_removes_its_messages(transcript: SqlTranscriptStore) -> None:
    await transcript.create_session("s1", "u1", T0)
    await transcript.add_user_message("s1", "t1", "q", at(1), reset_context=False)
    await answer(transcript, "t1", "a", at(2))
    await transcript.create_session("s2", "u1", T0)
    await transcript.add_user_message("s2", "t9", "keep me", at(1), reset_context=False)

    assert await transcript.delete_session("s1") is True
    assert await transcript.get_session("s1") is None
    assert await transcript.list_messages("s1") == []
    assert await message_rows(transcript) == 1
    assert await transcript.delete_session("s1") is False
    # A session created again under the same id starts empty; the old turn's answer can be stored anew.
    await transcript.create_session("s1", "u1", at(100))
    assert await transcript.list_messages("s1") == []


async def test_ping(transcript: SqlTranscriptStore) -> None:
    await transcript.ping()
