"""``kefu kb eval``: replay labelled queries through the knowledge base and measure it.

An eval file is JSONL, one ``{"query": str, "expected": <the entry's question text or id, or null>}`` per
line (an optional ``"split"`` names a subset, e.g. ``dev`` / ``holdout``). Metrics:

* hit@1, hit@3, MRR — ranking quality on queries that have an answer;
* direct accuracy — share of those the KB answers directly (``high``) with the right entry;
* wrong-answer rate — share of those it answers directly with the *wrong* entry;
* false-answer rate — share of ``null`` queries it answers directly anyway (it should say it doesn't know).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kefu.kb.confidence import Thresholds, certainty
from kefu.kb.entries import Entry
from kefu.kb.knowledge import Confidence
from kefu.text.index import Match
from kefu.text.normalize import normalize

RANK_DEPTH = 10


class EvalFileError(ValueError):
    """The eval file cannot be used (message names the line)."""


@dataclass(frozen=True, slots=True)
class Case:
    """One labelled query."""

    query: str
    expected: str | None
    line: int
    split: str | None = None


@dataclass(frozen=True, slots=True)
class QueryOutcome:
    """What the knowledge base did with one case."""

    case: Case
    expected_id: str | None
    ranked: tuple[str, ...]  # entry ids, best first
    ranked_questions: tuple[str, ...]
    scores: tuple[float, ...]
    confidence: Confidence
    certainty: float = 0.0  # how likely the top FAQ entry is right (kefu.kb.confidence.certainty)

    @property
    def rank(self) -> int | None:
        """1-based rank of the expected entry, None when it is not in the top results."""
        if self.expected_id is None or self.expected_id not in self.ranked:
            return None
        return self.ranked.index(self.expected_id) + 1

    @property
    def answered(self) -> str | None:
        """The entry id answered directly, if any."""
        return self.ranked[0] if self.confidence == "high" and self.ranked else None


@dataclass(slots=True)
class EvalMetrics:
    """Aggregate numbers over a set of outcomes."""

    queries: int = 0
    answerable: int = 0
    no_answer: int = 0
    hit_at_1: float = 0.0
    hit_at_3: float = 0.0
    mrr: float = 0.0
    direct_accuracy: float = 0.0
    wrong_answer_rate: float = 0.0
    false_answer_rate: float = 0.0
    suggested_rate: float = 0.0


@dataclass(slots=True)
class Report:
    """Metrics overall and per split, and every miss."""

    overall: EvalMetrics
    splits: dict[str, EvalMetrics] = field(default_factory=dict)
    misses: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``kefu kb eval --json``)."""
        return {
            "overall": asdict(self.overall),
            "splits": {k: asdict(v) for k, v in self.splits.items()},
            "misses": self.misses,
        }


def load_cases(path: Path) -> list[Case]:
    """The cases of an eval file; raises :class:`EvalFileError` on a bad line."""
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalFileError(f"{path}:{number}: not valid JSON: {exc.msg}") from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("query"), str) or "expected" not in obj:
            raise EvalFileError(f'{path}:{number}: expected {{"query": str, "expected": str | null}}')
        expected = obj["expected"]
        if expected is not None and not isinstance(expected, str):
            raise EvalFileError(f"{path}:{number}: expected must be a question text or null")
        split = obj.get("split")
        cases.append(Case(obj["query"], expected, number, split if isinstance(split, str) else None))
    return cases


def resolve_expected(cases: Sequence[Case], entries: Sequence[Entry]) -> dict[int, str | None]:
    """Map each case's ``expected`` (question text or id) to an entry id; raises for unknown labels."""
    by_question = {normalize(e.question): e.id for e in entries if e.kind == "faq"}
    ids = {e.id for e in entries}
    out: dict[int, str | None] = {}
    unknown = []
    for case in cases:
        if case.expected is None:
            out[case.line] = None
        elif case.expected in ids:
            out[case.line] = case.expected
        elif normalize(case.expected) in by_question:
            out[case.line] = by_question[normalize(case.expected)]
        else:
            unknown.append(f"line {case.line}: {case.expected!r}")
    if unknown:
        shown = "; ".join(unknown[:10]) + (f" … and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise EvalFileError(f"expected entries not in the knowledge base: {shown}")
    return out


Searcher = Callable[[str], Awaitable[tuple[Sequence[Match[Entry]], Confidence]]]


async def run(cases: Sequence[Case], entries: Sequence[Entry], search: Searcher) -> list[QueryOutcome]:
    """Search every case (sequentially, through the same code path as production)."""
    expected = resolve_expected(cases, entries)
    outcomes = []
    for case in cases:
        matches, confidence = await search(case.query)
        faqs = [m for m in matches if m.entry.kind == "faq"][:RANK_DEPTH]
        outcomes.append(
            QueryOutcome(
                case=case,
                expected_id=expected[case.line],
                ranked=tuple(m.entry.id for m in faqs),
                ranked_questions=tuple(m.entry.question for m in faqs),
                scores=tuple(m.score for m in faqs),
                confidence=confidence,
                certainty=round(certainty(faqs), 4),
            )
        )
    return outcomes


def metrics(outcomes: Sequence[QueryOutcome]) -> EvalMetrics:
    """Aggregate ``outcomes``."""
    answerable = [o for o in outcomes if o.expected_id is not None]
    none = [o for o in outcomes if o.expected_id is None]
    m = EvalMetrics(queries=len(outcomes), answerable=len(answerable), no_answer=len(none))
    if answerable:
        n = len(answerable)
        m.hit_at_1 = sum(o.rank == 1 for o in answerable) / n
        m.hit_at_3 = sum(o.rank is not None and o.rank <= 3 for o in answerable) / n
        m.mrr = sum(1 / o.rank for o in answerable if o.rank) / n
        m.direct_accuracy = sum(o.answered == o.expected_id for o in answerable) / n
        m.wrong_answer_rate = sum(o.answered not in (None, o.expected_id) for o in answerable) / n
        m.suggested_rate = sum(o.confidence == "medium" for o in answerable) / n
    if none:
        m.false_answer_rate = sum(o.answered is not None for o in none) / len(none)
    for name in ("hit_at_1", "hit_at_3", "mrr", "direct_accuracy", "wrong_answer_rate", "false_answer_rate"):
        setattr(m, name, round(getattr(m, name), 4))
    m.suggested_rate = round(m.suggested_rate, 4)
    return m


def report(outcomes: Sequence[QueryOutcome]) -> Report:
    """Metrics overall and per split, plus the misses (wrong top hit, or a false / wrong direct answer)."""
    splits: dict[str, list[QueryOutcome]] = {}
    for o in outcomes:
        if o.case.split:
            splits.setdefault(o.case.split, []).append(o)
    misses = []
    for o in outcomes:
        wrong_top = o.expected_id is not None and o.rank != 1
        false_answer = o.expected_id is None and o.answered is not None
        if wrong_top or false_answer or (o.answered is not None and o.answered != o.expected_id):
            misses.append(
                {
                    "line": o.case.line,
                    "query": o.case.query,
                    "expected": o.case.expected,
                    "got": o.ranked_questions[0] if o.ranked_questions else None,
                    "score": o.scores[0] if o.scores else None,
                    "rank": o.rank,
                    "confidence": o.confidence,
                    "split": o.case.split,
                }
            )
    return Report(metrics(outcomes), {k: metrics(v) for k, v in sorted(splits.items())}, misses)


@dataclass(frozen=True, slots=True)
class Calibration:
    """One candidate (high, margin, direct) and what it would do on the eval set."""

    high: float
    margin: float
    direct_accuracy: float
    wrong_answer_rate: float
    false_answer_rate: float
    direct: float = 0.0  # least certainty (0: score and margin alone)


def calibrate(
    outcomes: Sequence[QueryOutcome],
    *,
    max_false: float = 0.05,
    max_wrong: float = 0.03,
    thresholds: Thresholds = Thresholds(),
) -> tuple[list[Calibration], Calibration | None]:
    """Sweep the certainty a direct answer needs (``KEFU_KB_CONFIDENCE_DIRECT``) at the given score floor and
    margin, and the score floor and margin alone (``direct`` = 0); the best is the most direct answers within
    the limits (ties: the stricter setting)."""
    answerable = [o for o in outcomes if o.expected_id is not None]
    none = [o for o in outcomes if o.expected_id is None]
    candidates = [(thresholds.high, thresholds.margin, d / 100) for d in range(50, 100, 1)]
    candidates += [
        (high / 100, margin, 0.0) for high in range(20, 96, 2) for margin in (0.0, 0.02, 0.03, 0.05, 0.08, 0.12)
    ]
    grid = []
    best: Calibration | None = None
    for high, margin, direct in candidates:

        def answers(o: QueryOutcome, high: float = high, margin: float = margin, direct: float = direct) -> bool:
            if not o.scores:
                return False
            runner_up = o.scores[1] if len(o.scores) > 1 else 0.0
            return o.scores[0] >= high and o.scores[0] - runner_up >= margin and o.certainty >= direct

        n = max(1, len(answerable))
        row = Calibration(
            high=high,
            margin=margin,
            direct_accuracy=round(sum(answers(o) and o.ranked[0] == o.expected_id for o in answerable) / n, 4),
            wrong_answer_rate=round(sum(answers(o) and o.ranked[0] != o.expected_id for o in answerable) / n, 4),
            false_answer_rate=round(sum(answers(o) for o in none) / max(1, len(none)), 4),
            direct=direct,
        )
        grid.append(row)
        within = row.false_answer_rate <= max_false and row.wrong_answer_rate <= max_wrong
        if within and (best is None or row.direct_accuracy > best.direct_accuracy):
            best = row
    return grid, best
