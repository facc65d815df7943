"""What moderation found in a text: the hits and the verdict the engine acts on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Action = Literal["block", "mask", "flag"]
Where = Literal["input", "output"]
# The strongest action wins: a message with a blocked term is blocked whatever else it holds.
RANK: Mapping[str, int] = {"allow": 0, "flag": 1, "mask": 2, "block": 3}
MARK_LENGTH = 64  # the stored mark's column


@dataclass(frozen=True, slots=True)
class Hit:
    """One matched term: ``text[start:end]`` of the original text (separators inside it included)."""

    start: int
    end: int
    term: str  # as written in the lexicon
    category: str
    action: str  # block | mask | flag


@dataclass(frozen=True, slots=True)
class Verdict:
    """What moderation says about a text."""

    action: str  # allow | flag | mask | block
    categories: tuple[str, ...] = ()  # in order of first appearance
    text: str = ""  # the text with every masked term starred (same length: separators stay, letters become *)
    reply: str | None = None  # the polite canned reply, for "block"
    hits: tuple[Hit, ...] = ()

    @property
    def mark(self) -> str | None:
        """``<action>:<category>`` for the stored message (None when nothing was hit)."""
        if self.action == "allow" or not self.categories:
            return None
        first = next((h.category for h in self.hits if h.action == self.action), self.categories[0])
        return f"{self.action}:{first}"[:MARK_LENGTH]
