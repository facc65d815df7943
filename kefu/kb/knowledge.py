"""The seam between the turn and the knowledge base: what the engine asks, what it gets back.

The knowledge base (``kefu.kb``) implements :class:`Knowledge`; the engine uses it to answer confident FAQ
matches without a model, to ground model answers in passages, and to answer something useful when no model
can (the degraded path). :class:`NoKnowledge` stands in when a bot has no knowledge base.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias

Confidence: TypeAlias = Literal["high", "medium", "low"]


@dataclass(frozen=True, slots=True)
class KnowledgeHit:
    """One retrieved FAQ entry or document passage."""

    id: str
    title: str  # the FAQ question, or the document section title (in the language asked for, if the entry has it)
    text: str  # the FAQ answer, or the passage (likewise)
    score: float
    kind: Literal["faq", "doc"] = "faq"


@dataclass(frozen=True, slots=True)
class KnowledgeResult:
    """Ranked hits for a query and how sure the knowledge base is that the top FAQ hit answers it.

    ``high``: answer with ``hits[0].text`` directly. ``medium``: the top hits are good suggestions
    ("您是不是想问…"). ``low``: nothing useful.
    """

    hits: tuple[KnowledgeHit, ...] = ()
    confidence: Confidence = "low"
    suggestions: tuple[str, ...] = field(default=())

    @property
    def direct(self) -> KnowledgeHit | None:
        """The FAQ entry to answer with, when confident."""
        if self.confidence == "high" and self.hits and self.hits[0].kind == "faq":
            return self.hits[0]
        return None


class Knowledge(Protocol):
    """What the engine needs from a knowledge base. Implementations never block the event loop."""

    @property
    def available(self) -> bool:
        """True when there is anything to search."""
        ...

    @property
    def version(self) -> str:
        """Changes whenever the content changes (answer caches key on it)."""
        ...

    async def search(self, query: str, *, limit: int = 5, lang: str | None = None) -> KnowledgeResult:
        """Rank entries for ``query``; titles, texts and suggestions in ``lang`` where an entry has that language
        (else in the default language)."""
        ...


class NoKnowledge:
    """The knowledge base of a bot without one."""

    @property
    def available(self) -> bool:
        """Never anything to search."""
        return False

    @property
    def version(self) -> str:
        """A constant version."""
        return "none"

    async def search(self, query: str, *, limit: int = 5, lang: str | None = None) -> KnowledgeResult:
        """Always an empty, low-confidence result."""
        return KnowledgeResult()
