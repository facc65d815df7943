"""A shop's week in SQL, written row by row as kefu writes it: conversations with FAQ, model, flow and fallback
answers, "您是不是想问" suggestions (taken and not), handoffs for every reason, an agent, a rating.

The unanswered questions use the HELD_OUT phrasings of :mod:`tests.report.phrasings` (the warranty group), so the
grouping they go through was not tuned on them.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from kefu.bot.texts import CannedTexts
from kefu.store.flow_models import HandoffRow
from kefu.store.models import MessageRow, SessionRow

TEXTS = CannedTexts()
DAY1 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
DAY2 = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
BEFORE = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
_turns = itertools.count(1)


def suggestions(*questions: str) -> str:
    """A suggestions answer as the engine writes it."""
    return TEXTS.suggest_intro + "\n".join(f"- {q}" for q in questions)


@dataclass
class Conversation:
    """One session's rows, built turn by turn (each a minute after the last)."""

    id: str
    at: datetime
    user: str = "shopper"
    messages: list[dict[str, Any]] = field(default_factory=list)
    handoffs: list[dict[str, Any]] = field(default_factory=list)

    def _now(self) -> datetime:
        return self.at + timedelta(minutes=len(self.messages))

    def ask(self, text: str, source: str | None, answer: str | None = None) -> str:
        """A shopper message and the bot's answer (``source`` None: no answer row); returns the turn id."""
        turn = f"t{next(_turns)}"
        self.messages.append(self._row(turn, "user", text, None))
        if source is not None:
            self.messages.append(self._row(turn, "assistant", answer or f"({source} answer)", source))
        return turn

    def handoff(
        self, turn: str, reason: str, *, status: str = "queued", outcome: str | None = None, rating: int | None = None
    ) -> None:
        """A handoff request made in ``turn`` (the button's is a turn of its own, with no message)."""
        self.handoffs.append(
            {
                "id": f"h_{uuid.uuid4().hex[:12]}",
                "session_id": self.id,
                "user_id": self.user,
                "turn_id": turn,
                "flow": None,
                "reason": reason,
                "summary": "{}",
                "status": status,
                "created_at": self._now(),
                "reason_code": reason,
                "context": "{}",
                "outcome": outcome,
                "rating": rating,
            }
        )

    def agent(self, text: str) -> None:
        """A person's message."""
        self.messages.append(self._row(f"a{next(_turns)}", "agent", text, None))

    def _row(self, turn: str, role: str, content: str, source: str | None) -> dict[str, Any]:
        return {
            "session_id": self.id,
            "turn_id": turn,
            "role": role,
            "content": content,
            "status": "complete",
            "source": source,
            "created_at": self._now(),
        }


def week() -> list[Conversation]:
    """The seeded conversations (see the expectations in test_report.py)."""
    s1 = Conversation("s1", DAY1)
    s1.ask("运费怎么算", "faq", "全场实付满99元包邮")

    s2 = Conversation("s2", DAY1 + timedelta(hours=1))
    s2.ask("可以分期付款吗", "fallback", TEXTS.apology)
    asked = s2.ask("转人工", "human", "已为您转接人工客服")
    s2.handoff(asked, "shopper_asked", status="closed", outcome="resolved", rating=5)
    s2.agent("您好，支持花呗分期")

    s3 = Conversation("s3", DAY2)  # a suggestion taken
    s3.ask("支持分期吗", "fallback", suggestions("支持哪些支付方式？", "运费怎么算？"))
    s3.ask("支持哪些支付方式？", "faq", "支持微信支付、支付宝")

    s4 = Conversation("s4", DAY2 + timedelta(hours=1))  # a suggestion not taken, then an apology
    s4.ask("保修多久", "fallback", suggestions("退货政策是什么？", "运费怎么算？"))
    s4.ask("保修期是多长时间", "fallback", TEXTS.apology)

    s5 = Conversation("s5", DAY2 + timedelta(hours=2))  # the model handed over on the question itself
    turn = s5.ask("这个保修几年", "human", "已为您转接人工客服")
    s5.handoff(turn, "model")

    s6 = Conversation("s6", DAY2 + timedelta(hours=3))
    s6.ask("你们几点下班", "llm", "我们的在线客服 9:00-22:00 在线")

    s7 = Conversation("s7", DAY2 + timedelta(hours=4))  # the button after a KB answer
    s7.ask("可以寄到美国吗", "kb", "目前只配送中国大陆地区")
    s7.handoff(f"h{next(_turns)}", "button")

    s8 = Conversation("s8", DAY2 + timedelta(hours=5))  # a flow hands over by design: no unanswered question
    s8.ask("我要退货", "flow", "请提供订单号")
    turn = s8.ask("订单号 20261201", "flow", "已为您转人工处理退货")
    s8.handoff(turn, "flow")

    before = Conversation("s0", BEFORE)  # outside the range
    before.ask("保修多久", "fallback", TEXTS.apology)
    empty = Conversation("s-empty", DAY1)  # a session without a shopper message is no conversation
    return [s1, s2, s3, s4, s5, s6, s7, s8, before, empty]


async def seed(engine: AsyncEngine, conversations: list[Conversation]) -> None:
    """Write ``conversations`` (sessions, then messages, then handoffs)."""
    async with engine.begin() as conn:
        for c in conversations:
            last = c.messages[-1]["created_at"] if c.messages else c.at
            await conn.execute(
                insert(SessionRow),
                [
                    {
                        "id": c.id,
                        "user_id": c.user,
                        "created_at": c.at,
                        "last_active_at": last,
                        "context_started_at": c.at,
                    }
                ],
            )
        messages = [m for c in conversations for m in c.messages]
        if messages:
            await conn.execute(insert(MessageRow), messages)
        handoffs = [h for c in conversations for h in c.handoffs]
        if handoffs:
            await conn.execute(insert(HandoffRow), handoffs)
