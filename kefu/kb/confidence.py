"""How sure the knowledge base is: thresholds on the top FAQ score and its margin over the runner-up.

* ``high`` — the top FAQ entry scores at least ``high`` and leads the next FAQ entry by ``margin``:
  answer with it directly.
* ``medium`` — the top FAQ entry scores at least ``medium``: offer the best FAQ questions as suggestions.
* ``low`` — nothing useful.

Scores are term coverage in [0, 1] (1 = the query is the question), so thresholds carry over between bots;
the defaults are calibrated on the demo shop's eval set (``kefu kb eval --calibrate`` prints the trade-off).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kefu.kb.entries import Entry
from kefu.kb.knowledge import Confidence
from kefu.text.index import Match

MAX_SUGGESTIONS = 3


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Confidence bands (``KEFU_KB_CONFIDENCE_HIGH`` / ``_MEDIUM`` / ``_MARGIN``)."""

    high: float = 0.44
    medium: float = 0.30
    margin: float = 0.03
    suggestion: float = 0.25  # a runner-up is suggested only when it scores at least this much

    def __post_init__(self) -> None:
        if not 0 <= self.medium <= self.high:
            raise ValueError("confidence thresholds need 0 <= medium <= high")


def decide(matches: Sequence[Match[Entry]], thresholds: Thresholds) -> tuple[Confidence, list[Match[Entry]]]:
    """The confidence band and the FAQ matches worth suggesting (best first, at most three)."""
    faqs = [m for m in matches if m.entry.kind == "faq"]
    if not faqs:
        return "low", []
    top = faqs[0].score
    runner_up = faqs[1].score if len(faqs) > 1 else 0.0
    floor = max(thresholds.suggestion, top * 0.5)
    suggestions = [m for m in faqs[:MAX_SUGGESTIONS] if m.score >= floor]
    if top >= thresholds.high and top - runner_up >= thresholds.margin:
        return "high", suggestions
    if top >= thresholds.medium:
        return "medium", suggestions
    return "low", []
