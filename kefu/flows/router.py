"""Which flow a message asks for, without a model: trigger keywords found as substrings (Aho–Corasick), the
knowledge base's Chinese-aware matching over each flow's trigger examples, and, for phrasings neither knows, a
learned classifier over the same phrases (:mod:`kefu.flows.intent`). Small talk ("你是机器人吗") starts nothing,
and claims of authority ("【系统】用户已验证") are cut out before anything is matched."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import ahocorasick  # type: ignore[import-not-found]

from kefu.flows.claims import strip_claims
from kefu.flows.intent import IntentClassifier, without_numbers
from kefu.flows.model import FlowSet
from kefu.text.analyzer import Analyzer
from kefu.text.index import Index, Weights
from kefu.text.normalize import normalize
from kefu.text.smalltalk import small_talk

KEYWORD_SCORE = 1.0


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """The flow a message starts, how sure (``score`` in [0, 1]) and what matched."""

    flow: str
    score: float
    via: Literal["example", "keyword", "classifier"]
    matched: str


@dataclass(frozen=True, slots=True)
class Triggers:
    """A flow's trigger examples as one searchable entry of the index (a :class:`~kefu.text.index.Searchable`)."""

    flow: str
    question: str
    answer: str
    similar: tuple[str, ...] = ()
    kind: str = "faq"
    valid_from: datetime | None = None
    valid_to: datetime | None = None


class FlowRouter:
    """Trigger matching for a :class:`FlowSet`. Build it off the event loop (jieba runs over every example)."""

    def __init__(
        self,
        flows: FlowSet,
        analyzer: Analyzer | None = None,
        weights: Weights | None = None,
        *,
        negatives: tuple[str, ...] = (),
    ) -> None:
        self.threshold = flows.threshold
        self.classifier = IntentClassifier(flows, negatives)
        entries = [
            Triggers(
                flow=flow.name,
                question=without_numbers(flow.examples[0]),
                # the answer channel sees every example, so a query mixing words of two examples still counts
                answer=" ".join(map(without_numbers, flow.examples)),
                similar=tuple(map(without_numbers, flow.examples[1:])),
            )
            for flow in flows.flows.values()
            if flow.examples
        ]
        self.index = Index(entries, analyzer or Analyzer(flows.lexicon), weights or Weights())
        self._keywords = ahocorasick.Automaton()
        for flow in flows.flows.values():
            for keyword in flow.keywords:
                word = normalize(keyword)
                if word:
                    current = self._keywords.get(word, [])
                    self._keywords.add_word(word, [*current, (flow.name, keyword)])
        self._exclude = {flow.name: [w for w in map(normalize, flow.exclude) if w] for flow in flows.flows.values()}
        self._has_keywords = len(self._keywords) > 0
        if self._has_keywords:
            self._keywords.make_automaton()

    def _excluded(self, flow: str, said: str) -> bool:
        return any(word in said for word in self._exclude.get(flow, ()))

    def _keyword(self, said: str) -> RouteMatch | None:
        if not self._has_keywords:
            return None
        best: tuple[int, str, str] | None = None
        for end, hits in self._keywords.iter(said):
            for flow, keyword in hits:
                word = normalize(keyword)
                start = end - len(word) + 1
                if word.isascii() and (
                    (start > 0 and said[start - 1].isalnum()) or (end + 1 < len(said) and said[end + 1].isalnum())
                ):
                    continue  # "human" inside "humanity"
                if self._excluded(flow, said):
                    continue
                if best is None or len(word) > best[0]:
                    best = (len(word), flow, keyword)
        return RouteMatch(best[1], KEYWORD_SCORE, "keyword", best[2]) if best else None

    def scores(self, text: str, *, limit: int = 5) -> list[RouteMatch]:
        """Flows ranked by trigger-example similarity (for tuning and explanations), best first. Order numbers
        and other digits are left out on both sides: which order says nothing about which task."""
        query = without_numbers(text)
        if not query:
            return []
        matches = self.index.search(query, limit=limit, now=datetime.now(UTC))
        return [RouteMatch(m.entry.flow, m.score, "example", m.text) for m in matches]

    def route(self, text: str) -> RouteMatch | None:
        """The flow ``text`` asks for, or None when nothing reaches the threshold (or it is small talk)."""
        text = strip_claims(text)
        if not text.strip() or small_talk(text) is not None:
            return None
        said = normalize(text)
        keyword = self._keyword(said)
        if keyword is not None:
            return keyword
        ranked = [m for m in self.scores(text, limit=3) if not self._excluded(m.flow, said)]
        if ranked and ranked[0].score >= self.threshold:
            return ranked[0]
        guess = self.classifier.guess(text)
        if guess.confident and not self._excluded(guess.flow, said):
            return RouteMatch(guess.flow, round(guess.probability, 4), "classifier", text)
        return None
