"""Group unanswered questions that ask the same thing (pure; run it off the event loop: it runs jieba).

1. Exact repeats (the same text after :func:`~kefu.text.normalize.normalize`, spaces dropped) are one *phrasing*.
2. A phrasing's *terms* are what the knowledge base searches with (:class:`~kefu.text.analyzer.Analyzer`, with
   the bot's dictionary and synonyms): its jieba words without stopwords, and the character bigrams of those
   words. Two phrasings' *similarity* is the Dice coefficient of their term sets: ``2·|A∩B| / (|A|+|B|)``
   (1.0: the same terms; 0: nothing in common).
3. Leader clustering: phrasings in order of how often they were asked; each joins the group of the most similar
   group *leader* (the group's first, most-asked phrasing) when the similarity is at least :data:`THRESHOLD`,
   else it leads a new group. Comparing with leaders only keeps groups from drifting by chaining.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kefu.text.analyzer import Analyzer
from kefu.text.normalize import normalize

# Chosen on tests/report/phrasings.py TUNING (of 0.30, 0.35 … 0.45, the lowest keeping every tuning group pure); its
# HELD_OUT groups measure it (docs/report.md, "How good is the grouping").
THRESHOLD = 0.35
MAX_PHRASINGS = 5000  # the most-asked distinct phrasings are grouped; the rest are counted in one "other" group
EXAMPLES = 3
OTHER = "…"


@dataclass(frozen=True, slots=True)
class Phrasing:
    """A distinct wording and how often it was asked."""

    text: str
    count: int


@dataclass(slots=True)
class Group:
    """Questions asking the same thing: how often, in which words (most asked first)."""

    leader: str
    count: int = 0
    phrasings: list[Phrasing] = field(default_factory=list)

    @property
    def examples(self) -> list[str]:
        """Up to three phrasings, most asked first."""
        return [p.text for p in self.phrasings[:EXAMPLES]]


def phrasing_key(text: str) -> str:
    """What makes two texts the same phrasing."""
    return normalize(text).replace(" ", "")


def distinct(texts: Sequence[str]) -> list[Phrasing]:
    """Texts merged by :func:`phrasing_key`, most asked first (the first wording seen stands for the others)."""
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for text in texts:
        key = phrasing_key(text)
        if not key:
            continue
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, text.strip())
    ordered = sorted(counts, key=lambda k: (-counts[k], k))
    return [Phrasing(first[k], counts[k]) for k in ordered]


def terms(text: str, analyzer: Analyzer) -> frozenset[str]:
    """The words and character bigrams two phrasings are compared on."""
    found = analyzer.terms(text)
    return frozenset([f"w:{w}" for w in found.words] + [f"c:{c}" for c in found.chars]) or frozenset(
        [f"t:{phrasing_key(text)}"]
    )


def dice(a: frozenset[str], b: frozenset[str]) -> float:
    """``2·|A∩B| / (|A|+|B|)``."""
    return 2 * len(a & b) / (len(a) + len(b)) if a or b else 0.0


def group(texts: Sequence[str], analyzer: Analyzer, *, threshold: float = THRESHOLD) -> list[Group]:
    """Groups of ``texts``, most asked first."""
    phrasings = distinct(texts)
    rest = phrasings[MAX_PHRASINGS:]
    groups: list[Group] = []
    leader_terms: list[frozenset[str]] = []
    by_term: dict[str, list[int]] = {}  # term → the leaders holding it (only those can reach the threshold)
    for phrasing in phrasings[:MAX_PHRASINGS]:
        mine = terms(phrasing.text, analyzer)
        candidates = {g for t in mine for g in by_term.get(t, ())}
        best, best_score = -1, 0.0
        for g in sorted(candidates):
            score = dice(mine, leader_terms[g])
            if score > best_score:
                best, best_score = g, score
        if best >= 0 and best_score >= threshold:
            target = groups[best]
        else:
            target = Group(phrasing.text)
            for t in mine:
                by_term.setdefault(t, []).append(len(groups))
            groups.append(target)
            leader_terms.append(mine)
        target.phrasings.append(phrasing)
        target.count += phrasing.count
    found = sorted(groups, key=lambda g: -g.count)  # stable: equal counts keep the most-asked-leader order
    if rest:
        found.append(Group(OTHER, count=sum(p.count for p in rest), phrasings=rest[:EXAMPLES]))
    return found
