""":class:`Reports`: the report for a date range, as one JSON-ready dict (the CLI and the admin API show it).

What each number means is in docs/report.md; in short, everything is about the conversations that *started* in
the range (a conversation = a session with at least one shopper message).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from kefu.bot.texts import CannedTexts
from kefu.config import Settings
from kefu.kb.knowledge import Knowledge
from kefu.kb.service import KnowledgeBase
from kefu.report.grouping import Group, group, phrasing_key
from kefu.report.period import Period
from kefu.report.query import Facts, HandoffFact, read_facts
from kefu.report.unanswered import Classifier, Unanswered, fallback_kinds, find_unanswered
from kefu.store.sql import create_engine_for
from kefu.text.analyzer import Analyzer
from kefu.text.lexicon import Lexicon

SOURCES = ("faq", "kb", "llm", "flow", "fallback", "agent")  # always listed, even at 0
MAX_TOP = 100


class Reports:
    """Builds reports from the database, the current knowledge base and the bot's canned texts."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        knowledge: Callable[[], Knowledge],
        texts: Callable[[], CannedTexts],
        owns_engine: bool = False,
    ) -> None:
        self._engine = engine
        self._knowledge = knowledge
        self._texts = texts
        self._owns_engine = owns_engine
        self._analyzers: dict[str, Analyzer] = {}

    async def aclose(self) -> None:
        """Dispose of the engine if this object made it."""
        if self._owns_engine:
            await self._engine.dispose()

    async def report(self, period: Period, *, top: int = 10) -> dict[str, Any]:
        """The report for ``period`` with the ``top`` most-asked groups of unanswered questions."""
        top = max(0, min(top, MAX_TOP))
        facts = await read_facts(self._engine, period.start, period.end)
        classifier = Classifier(self._texts())
        handoffs: dict[str, list[HandoffFact]] = {}
        for h in facts.handoffs:
            handoffs.setdefault(h.session_id, []).append(h)
        found = [
            u
            for sid, transcript in facts.transcripts.items()
            for u in find_unanswered(transcript, handoffs.get(sid, []), classifier)
        ]
        knowledge = self._knowledge()
        analyzer = self._analyzer(knowledge.lexicon if isinstance(knowledge, KnowledgeBase) else Lexicon.build())
        groups = await asyncio.to_thread(group, [u.text for u in found], analyzer)
        return {
            "period": {
                "since": period.since.isoformat(),
                "until": period.until.isoformat(),
                "tz": period.zone,
                "start": period.start.isoformat(),
                "end": period.end.isoformat(),
            },
            "conversations": _conversations(facts, period, classifier),
            "handoffs": _handoffs(facts.handoffs),
            "answers": _answers(facts, classifier),
            "csat": _csat(facts.handoffs),
            "cost": _cost(facts),
            "unanswered": await _unanswered(found, groups, top, knowledge, facts.transcripts_capped),
        }

    def _analyzer(self, lexicon: Lexicon) -> Analyzer:
        key = lexicon.fingerprint
        analyzer = self._analyzers.get(key)
        if analyzer is None:
            analyzer = self._analyzers[key] = Analyzer(lexicon)
        return analyzer


def open_reports(
    settings: Settings, *, knowledge: Callable[[], Knowledge], texts: Callable[[], CannedTexts]
) -> Reports:
    """Reports on the configured database, on a small pool of their own (reports are rare and read a lot)."""
    options: dict[str, Any] = {} if settings.is_sqlite else {"pool_size": 1, "max_overflow": 2}
    engine = create_engine_for(settings.database_url, **options)
    return Reports(engine, knowledge=knowledge, texts=texts, owns_engine=True)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _conversations(facts: Facts, period: Period, classifier: Classifier) -> dict[str, Any]:
    handed = {h.session_id for h in facts.handoffs}
    fell_back = {
        sid
        for sid, transcript in facts.transcripts.items()
        if any(m.role == "assistant" and classifier.kind(m) in ("apology", "suggestions") for m in transcript)
    }
    per_day = {day: [0, 0, 0] for day in period.days()}  # conversations, deflected, handed off
    for sid, created in facts.sessions:
        counts = per_day.setdefault(period.day_of(created), [0, 0, 0])
        counts[0] += 1
        counts[2 if sid in handed else 1] += 1
    total = len(facts.sessions)
    deflected = sum(1 for sid, _ in facts.sessions if sid not in handed)
    clean = sum(1 for sid, _ in facts.sessions if sid not in handed and sid not in fell_back)
    return {
        "total": total,
        "deflected": deflected,
        "handed_off": total - deflected,
        "deflection_rate": _rate(deflected, total),
        "deflected_without_fallback": clean,
        "per_day": [
            {"date": day.isoformat(), "conversations": c, "deflected": d, "handed_off": h}
            for day, (c, d, h) in sorted(per_day.items())
        ],
    }


def _handoffs(handoffs: list[HandoffFact]) -> dict[str, Any]:
    return {
        "total": len(handoffs),
        "conversations": len({h.session_id for h in handoffs}),
        "by_reason": dict(Counter(h.reason_code for h in handoffs).most_common()),
        "by_outcome": dict(Counter(h.outcome or h.status for h in handoffs).most_common()),
    }


def _answers(facts: Facts, classifier: Classifier) -> dict[str, Any]:
    by_source: Counter[str] = Counter(dict.fromkeys(SOURCES, 0))
    by_status: Counter[str] = Counter()
    for role, source, status, n in facts.answers:
        by_source["agent" if role == "agent" else (source or "unknown")] += n
        by_status[status] += n
    kinds = fallback_kinds(facts.transcripts.values(), classifier)
    return {
        "total": sum(by_source.values()),
        "by_source": dict(by_source),
        "fallback_kinds": {"apology": kinds.apology, "suggestions": kinds.suggestions, "kb": kinds.kb},
        "by_status": dict(by_status),
    }


def _csat(handoffs: list[HandoffFact]) -> dict[str, Any]:
    rated = [h.rating for h in handoffs if h.rating is not None]
    closed = sum(1 for h in handoffs if h.status == "closed")
    return {
        "scope": "conversations a person closed (the shopper rates 1–5 after a handoff; bot-only chats are not rated)",
        "rated": len(rated),
        "closed": closed,
        "response_rate": _rate(len(rated), closed),
        "average": round(sum(rated) / len(rated), 2) if rated else None,
        "distribution": {str(score): rated.count(score) for score in range(1, 6)},
    }


def _cost(facts: Facts) -> dict[str, Any] | None:
    if facts.cost is None:
        return None
    conversations = len(facts.sessions)
    return {
        "by_currency": [
            {
                "currency": line.currency,
                "total": round(line.total, 6),
                "per_conversation": round(line.total / conversations, 6) if conversations else None,
                "priced_conversations": line.conversations,
                "turns": line.turns,
            }
            for line in facts.cost
        ]
    }


async def _unanswered(
    found: list[Unanswered], groups: list[Group], top: int, knowledge: Knowledge, capped: bool
) -> dict[str, Any]:
    reasons_of: dict[str, Counter[str]] = {}
    for u in found:
        reasons_of.setdefault(phrasing_key(u.text), Counter()).update(u.reasons)
    shown = []
    for g in groups[:top]:
        reasons: Counter[str] = Counter()
        for p in g.phrasings:
            reasons.update(reasons_of.get(phrasing_key(p.text), Counter()))
        shown.append(
            {
                "question": g.leader,
                "count": g.count,
                "phrasings": len(g.phrasings),
                "examples": g.examples,
                "reasons": dict(reasons.most_common()),
                **await _nearest(g.leader, knowledge),
            }
        )
    by_reason: Counter[str] = Counter(r for u in found for r in u.reasons)
    return {
        "total": len(found),
        "groups_total": len(groups),
        "by_reason": dict(by_reason.most_common()),
        "groups": shown,
        "capped": capped,
    }


async def _nearest(question: str, knowledge: Knowledge) -> dict[str, Any]:
    """The closest FAQ entry now, and whether the knowledge base would now answer the question itself."""
    if not knowledge.available:
        return {"nearest_faq": None, "answered_now": False}
    result = await knowledge.search(question, limit=3)
    faq = next((h for h in result.hits if h.kind == "faq"), None)
    nearest = None if faq is None else {"id": faq.id, "question": faq.title, "score": round(faq.score, 3)}
    return {"nearest_faq": nearest, "answered_now": result.direct is not None}
