"""How sure the knowledge base is that its top FAQ entry answers the query.

* ``high`` — answer with the top entry directly: it scores at least ``high`` (a floor, 0.15: the certainty
  decides), leads the next FAQ entry by ``margin``, and its *certainty* is at least ``direct``;
* ``medium`` — the top FAQ entry scores at least ``medium``: offer the best FAQ questions as suggestions;
* ``low`` — nothing useful.

The certainty is a logistic model over features that mean the same thing in every shop (they do not depend on
how many similar questions a shop wrote or which words it uses): the top score, its lead over the runner-up,
how much of the query's words and character pairs the entry mentions anywhere (questions or answer), how
many content words the query has (a long question in a shopper's own words scores lower even when it is
right), and the top entry's character n-gram cosine and its lead in it over the second entry. Fitted with
scikit-learn's ``LogisticRegression`` (C = 10) on queries whose top entry scored at least 0.15 with a 0.03
lead: the demo shop's tune split (dev + holdout), the same split over the demo's FAQ with no similar questions
and no dictionary or synonyms, and the grocery tuning shop (``evals/faq/grocery``); the label is "the top entry
is the expected one" (an unanswerable query is never right). ``direct`` (0.84) is the least value that keeps
every tuning set's false answers ≤ 2 % of all its queries and ≤ 4 % of its unanswerable ones; fitted on two of
the sets and thresholded the same way, the third stayed ≤ 2.2 % false (docs/benchmarks.md, section 13).
``benchmarks/kb_transfer.py`` measures it on shops it was not fitted on. ``direct`` = 0 turns the model off
(score and margin alone, as before 2026-12).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from kefu.kb.entries import Entry
from kefu.kb.knowledge import Confidence
from kefu.text.index import Match

MAX_SUGGESTIONS = 3
MAX_WORDS = 8  # longer queries count as this long
# Intercept, then: top score, lead over the runner-up, word cover, character-pair cover, words / MAX_WORDS,
# n-gram cosine, its lead over the second entry.
COEFFICIENTS = (-5.347, 1.945, 4.944, 2.666, 1.923, 5.442, 2.054, 3.466)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Confidence bands (``KEFU_KB_CONFIDENCE_HIGH`` / ``_MEDIUM`` / ``_MARGIN`` / ``_DIRECT``)."""

    high: float = 0.15  # least top score for a direct answer
    medium: float = 0.25  # least top score for suggestions
    margin: float = 0.03  # least lead over the runner-up for a direct answer
    direct: float = 0.84  # least certainty for a direct answer (0: score and margin alone)
    suggestion: float = 0.25  # a runner-up is suggested only when it scores at least this much

    def __post_init__(self) -> None:
        if not (0 <= self.medium and 0 <= self.high and 0 <= self.direct <= 1):
            raise ValueError("confidence thresholds need 0 <= medium, 0 <= high and 0 <= direct <= 1")


def _runner_up(faqs: Sequence[Match[Entry]]) -> float:
    """The best score after the top one (entries within a rounding of each other are ordered by BM25, so the
    second in line need not score second best)."""
    return max((m.score for m in faqs[1:]), default=0.0)


def certainty(matches: Sequence[Match[Entry]]) -> float:
    """How likely the top FAQ match is the entry the query means (0–1; 0 without FAQ matches)."""
    faqs = [m for m in matches if m.entry.kind == "faq"]
    if not faqs:
        return 0.0
    top = faqs[0]
    runner_up = _runner_up(faqs)
    second_ngram = faqs[1].ngram if len(faqs) > 1 else 0.0
    features = (
        top.score,
        top.score - runner_up,
        top.cover[0],
        top.cover[1],
        min(top.words, MAX_WORDS) / MAX_WORDS,
        top.ngram,
        top.ngram - second_ngram,
    )
    z = COEFFICIENTS[0] + sum(c * f for c, f in zip(COEFFICIENTS[1:], features, strict=True))
    return 1.0 / (1.0 + math.exp(-z))


def decide(matches: Sequence[Match[Entry]], thresholds: Thresholds) -> tuple[Confidence, list[Match[Entry]]]:
    """The confidence band and the FAQ matches worth suggesting (best first, at most three)."""
    faqs = [m for m in matches if m.entry.kind == "faq"]
    if not faqs:
        return "low", []
    top = faqs[0].score
    runner_up = _runner_up(faqs)
    floor = max(thresholds.suggestion, top * 0.5)
    suggestions = [m for m in faqs[:MAX_SUGGESTIONS] if m.score >= floor]
    # The lead must hold in word coverage too: "优惠券" covers four coupon questions alike, and the n-gram share
    # (shorter questions score higher) must not pick one of them to answer.
    lexical = [m.score if m.lexical is None else m.lexical for m in faqs]
    lexical_lead = lexical[0] - max(lexical[1:], default=0.0)
    if top >= thresholds.high and top - runner_up >= thresholds.margin and lexical_lead >= thresholds.margin:
        if thresholds.direct <= 0 or certainty(faqs) >= thresholds.direct:
            return "high", suggestions
    if top >= thresholds.medium:
        return "medium", suggestions
    return "low", []
