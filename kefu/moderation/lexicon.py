"""Match a sensitive-word lexicon the way people evade one: ``傻 逼``, ``傻*逼``, full-width, traditional forms.

Chinese terms are matched on a *skeleton* of the text: each character folded (NFKC, case, traditional →
simplified) and everything that is not a letter or digit dropped (spaces, punctuation, symbols, zero-width
characters), with a map back to the original positions. English terms are matched on the folded text with word
boundaries, so "ass" does not hit "class". One Aho-Corasick automaton per form: a 500-character message costs one
pass over it, whatever the lexicon's size.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import ahocorasick  # type: ignore[import-not-found]

from kefu.text.tradsimp import to_simplified

Action = Literal["block", "mask", "flag"]
Where = Literal["input", "output"]
# The strongest action wins: a message with a blocked term is blocked whatever else it holds.
_RANK: Mapping[str, int] = {"allow": 0, "flag": 1, "mask": 2, "block": 3}


@dataclass(frozen=True, slots=True)
class Category:
    """A category of terms: what to do when one is found, where it applies, and the reply when it blocks."""

    name: str
    action: Action
    where: frozenset[Where] = frozenset(("input", "output"))
    reply: str | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """One matched term, with its position in the original text."""

    start: int
    end: int
    term: str
    category: str
    action: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the lexicon says about a text."""

    action: str  # allow | flag | mask | block
    categories: tuple[str, ...] = ()
    text: str = ""  # masked terms starred (same length)
    reply: str | None = None  # the polite canned reply, for "block"
    hits: tuple[Hit, ...] = ()

    @property
    def mark(self) -> str | None:
        """``<action>:<category>`` for the stored message (None when nothing was hit)."""
        if self.action == "allow" or not self.categories:
            return None
        first = next((h.category for h in self.hits if h.action == self.action), self.categories[0])
        return f"{self.action}:{first}"[:64]


@lru_cache(maxsize=65536)
def fold(char: str) -> str:
    """One character as the lexicon compares it (may be empty or longer for a few compatibility characters)."""
    return to_simplified(unicodedata.normalize("NFKC", char).casefold())


@lru_cache(maxsize=65536)
def _kept(char: str) -> bool:
    return unicodedata.category(char)[0] in "LN"


def skeleton(text: str) -> tuple[str, list[int]]:
    """Folded letters and digits of ``text`` and, for each, its index in ``text``."""
    chars: list[str] = []
    where: list[int] = []
    for i, original in enumerate(text):
        for char in fold(original):
            if _kept(char):
                chars.append(char)
                where.append(i)
    return "".join(chars), where


def _is_ascii_term(term: str) -> bool:
    return term.isascii()


@dataclass(slots=True)
class Moderator:
    """A compiled lexicon."""

    categories: Mapping[str, Category] = field(default_factory=dict)
    window: int = 0  # characters the engine holds back when streaming output (>= the longest term)
    default_reply: str = "抱歉，这条消息包含不适宜的内容，我无法处理。请换个说法，或回复“转人工”联系客服。"
    _cjk: Any = None
    _ascii: Any = None
    _chars: frozenset[str] = frozenset()  # every folded character of every term: text without one hits nothing
    _prefixes: frozenset[str] = frozenset()  # every prefix of every term (skeleton form), the whole term included

    @classmethod
    def build(
        cls,
        categories: Mapping[str, Category],
        terms: Mapping[str, Iterable[str]],
        *,
        window: int | None = None,
        default_reply: str | None = None,
    ) -> Moderator:
        """Compile ``terms`` (per category name) into automatons."""
        cjk = ahocorasick.Automaton()
        ascii_ = ahocorasick.Automaton()
        longest = 0
        chars: set[str] = set()
        prefixes: set[str] = set()
        for name, words in terms.items():
            for word in words:
                folded, _ = skeleton(word)
                if not folded:
                    continue
                chars.update(folded)
                prefixes.update(folded[:i] for i in range(1, len(folded) + 1))
                automaton = ascii_ if _is_ascii_term(folded) else cjk
                entries = automaton.get(folded, ()) if folded in automaton else ()
                automaton.add_word(folded, (*entries, (folded, name)))
                longest = max(longest, len(folded))
        moderator = cls(
            categories=dict(categories),
            window=max(window or 0, longest),
            _chars=frozenset(chars),
            _prefixes=frozenset(prefixes),
        )
        if default_reply:
            moderator.default_reply = default_reply
        if len(cjk):
            cjk.make_automaton()
            moderator._cjk = cjk
        if len(ascii_):
            ascii_.make_automaton()
            moderator._ascii = ascii_
        return moderator

    @classmethod
    def empty_moderator(cls) -> Moderator:
        """A moderator with no terms (the engine skips all work)."""
        return cls()

    @property
    def empty(self) -> bool:
        """No terms at all."""
        return self._cjk is None and self._ascii is None

    def may_hit(self, text: str) -> bool:
        """False when no character of ``text`` occurs in any term (then nothing in it can hit): a lookup each."""
        terms = self._chars
        return any(c in terms for ch in text for c in fold(ch))

    def pending(self, text: str) -> int:
        """Where the end of ``text`` may be the beginning of a term (a stream must hold that part back until more
        text shows whether it is): the index of the longest such suffix, ``len(text)`` when there is none."""
        if not text or not self._prefixes:
            return len(text)
        tail = text[-2 * self.window :]  # separators between a term's characters at most double its length
        skel, where = skeleton(tail)
        for size in range(min(len(skel), self.window), 0, -1):
            if skel[-size:] in self._prefixes:
                return len(text) - len(tail) + where[-size]
        return len(text)

    def scan(self, text: str, *, partial: bool = False) -> list[Hit]:
        """Every hit in ``text``, in order of position in the original text. ``partial``: more text follows (a
        streamed answer), so an English term at the very end is not a whole word yet."""
        if self.empty or not text:
            return []
        if not self.may_hit(text):
            return []  # the common case
        hits: list[Hit] = []
        if self._cjk is not None:
            skel, where = skeleton(text)
            for end, entries in self._cjk.iter(skel):
                for term, name in entries:
                    start = where[end - len(term) + 1]
                    hits.append(self._hit(start, where[end] + 1, term, name))
        if self._ascii is not None:
            folded = "".join(fold(ch) if len(fold(ch)) == 1 else ch for ch in text)
            for end, entries in self._ascii.iter(folded):
                for term, name in entries:
                    start = end - len(term) + 1
                    if partial and end + 1 >= len(folded):
                        continue  # "ass" may yet become "assemble": decided when the next character comes
                    if _boundary(folded, start - 1) and _boundary(folded, end + 1):
                        hits.append(self._hit(start, end + 1, term, name))
        hits.sort(key=lambda h: (h.start, -h.end))
        return hits

    def _hit(self, start: int, end: int, term: str, name: str) -> Hit:
        category = self.categories.get(name)
        return Hit(start, end, term, name, category.action if category else "flag")

    def check(self, text: str, *, where: Where = "input", partial: bool = False) -> Verdict:
        """The verdict on ``text`` for the categories that apply ``where`` (``partial``: see :meth:`scan`)."""
        hits = [h for h in self.scan(text, partial=partial) if self._applies(h.category, where)]
        if not hits:
            return Verdict("allow", text=text)
        action = max((h.action for h in hits), key=lambda a: _RANK[a])
        categories = tuple(dict.fromkeys(h.category for h in hits))
        chars = list(text)
        for hit in hits:
            if hit.action == "mask":
                chars[hit.start : hit.end] = _stars(text[hit.start : hit.end])
        reply = None
        if action == "block":
            blocking = next(self.categories[h.category] for h in hits if h.action == "block")
            reply = blocking.reply or self.default_reply
        return Verdict(action, categories, "".join(chars), reply, tuple(hits))

    def _applies(self, name: str, where: Where) -> bool:
        category = self.categories.get(name)
        return category is None or where in category.where


def _stars(span: str) -> list[str]:
    # Separators inside a masked span stay as they were; the letters become stars.
    return ["*" if _kept(ch) else ch for ch in span]


def _boundary(text: str, i: int) -> bool:
    return i < 0 or i >= len(text) or not (text[i].isascii() and text[i].isalnum())
