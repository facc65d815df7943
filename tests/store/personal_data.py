"""A conversation that leaves a row in every table holding shopper data, each quoting personal numbers; and a dump
of every row of every table, to check what erasure and anonymisation left."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from kefu.store.privacy import DELIVERIES, EVENTS, FLOWS, HANDOFFS, MESSAGES, NOTES, SESSIONS

PHONE = "13800138000"
EMAIL = "erin.shopper@example.com"
CARD = "6222021234567890128"


@dataclass(frozen=True, slots=True)
class Seeded:
    """The ids a seeded conversation used."""

    user_id: str
    session_id: str
    turn_ids: tuple[str, ...]
    handoff_turn: str


async def seed_conversation(engine: AsyncEngine, user_id: str, session_id: str, at: datetime) -> Seeded:
    """One conversation of ``user_id`` with rows in sessions, messages, flow_states, handoff_requests,
    conversation_events, desk_notes and webhook_deliveries, all quoting a phone, an e-mail and a card number."""
    turns = (f"t_{session_id}_1", f"t_{session_id}_2")
    handoff_turn = f"h_{session_id}"
    said = f"我的手机 {PHONE}，邮箱 {EMAIL}，卡号 {CARD}，订单 DD20261105002"
    context = {"last_turns": [{"role": "user", "content": said}], "intent": "退货"}
    async with engine.begin() as conn:
        await conn.execute(
            insert(SESSIONS).values(
                id=session_id,
                user_id=user_id,
                created_at=at,
                last_active_at=at,
                context_started_at=at,
                handoff_state="closed",
                handoff_id=f"ho_{session_id}",
            )
        )
        for turn_id, role, content in ((turns[0], "user", said), (turns[1], "assistant", f"已记下您的手机{PHONE}")):
            await conn.execute(
                insert(MESSAGES).values(
                    session_id=session_id,
                    turn_id=turn_id,
                    role=role,
                    content=content,
                    status="complete",
                    created_at=at,
                )
            )
        flow_state = {"flow": "change_address", "slots": {"phone": PHONE, "address": "上海市某路 1 号"}}
        await conn.execute(
            insert(FLOWS).values(
                session_id=session_id,
                user_id=user_id,
                flow="change_address",
                state=json.dumps(flow_state, ensure_ascii=False),
                updated_at=at,
            )
        )
        await conn.execute(
            insert(HANDOFFS).values(
                id=f"ho_{session_id}",
                session_id=session_id,
                user_id=user_id,
                turn_id=handoff_turn,
                flow="human",
                reason=f"shopper asked, phone {PHONE}",
                summary=json.dumps({"phone": PHONE}),
                status="closed",
                created_at=at,
                context=json.dumps(context, ensure_ascii=False),
                rating=5,
                rating_comment=f"很好，有事打 {PHONE}",
            )
        )
        await conn.execute(
            insert(EVENTS).values(
                session_id=session_id,
                seq=1,
                kind="user",
                data=json.dumps({"text": said, "turn_id": turns[0]}, ensure_ascii=False),
                created_at=at,
            )
        )
        await conn.execute(
            insert(NOTES).values(
                id=f"nt_{session_id}",
                session_id=session_id,
                agent_id="agent-1",
                private=False,
                text=f"顾客留了手机 {PHONE}",
                created_at=at,
            )
        )
        body = {
            "event": "handoff.requested",
            "data": {"user_id": user_id, "session_id": session_id, "context": context},
        }
        await conn.execute(
            insert(DELIVERIES).values(
                id=f"wh_{session_id}",
                event="handoff.requested",
                target="crm",
                url="https://crm.example.com/hook",
                session_id=session_id,
                body=json.dumps(body, ensure_ascii=False),
                status="delivered",
                attempts=1,
                next_attempt_at=at,
                created_at=at,
            )
        )
    return Seeded(user_id, session_id, turns, handoff_turn)


async def table_names(engine: AsyncEngine) -> list[str]:
    """Every table the migrations created."""
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: inspect(sync).get_table_names())


async def dump(engine: AsyncEngine) -> dict[str, str]:
    """Every row of every table, as text per table."""
    found: dict[str, str] = {}
    async with engine.connect() as conn:
        for table in await conn.run_sync(lambda sync: inspect(sync).get_table_names()):
            rows = (await conn.execute(select(text("*")).select_from(text(f'"{table}"')))).all()
            found[table] = repr([tuple(r) for r in rows])
    return found
