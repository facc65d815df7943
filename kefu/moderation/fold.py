"""The *skeleton* the lexicon is matched on: every character folded (NFKC, case, traditional → simplified) and
everything that is not a letter or digit dropped (spaces, punctuation, symbols, emoji, zero-width characters),
with a way back from each skeleton character to the character of the original text it came from.

Folding is per character and cached, so a message costs one dictionary lookup per character; the map back to
the original is built only when something matched.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from itertools import accumulate
from typing import cast

from kefu.text.tradsimp import to_simplified

# A few thousand distinct characters cover real traffic; the cap keeps a flood of odd code points from growing it.
_CACHE_LIMIT = 100_000
_FOLDED: dict[str, str] = {}
_INVISIBLE = frozenset(("Cf", "Mn", "Me"))  # zero-width spaces and joiners, combining marks, variation selectors


def fold_char(char: str) -> str:
    """The letters and digits ``char`` stands for ("" for a separator; more than one for a few ligatures)."""
    folded = _FOLDED.get(char)
    if folded is None:
        normal = to_simplified(unicodedata.normalize("NFKC", char).casefold())
        folded = "".join(c for c in normal if unicodedata.category(c)[0] in "LN")
        if len(_FOLDED) < _CACHE_LIMIT:
            _FOLDED[char] = folded
    return folded


def fold(text: str) -> str:
    """The skeleton of ``text`` (terms of the lexicon are stored in this form)."""
    return "".join(map(fold_char, text))


def invisible(char: str) -> bool:
    """Whether ``char`` takes no room on screen (so it separates nothing)."""
    return unicodedata.category(char) in _INVISIBLE


def word_class(char: str) -> str | None:
    """``"a"`` for an ASCII letter, ``"d"`` for an ASCII digit, None for anything else (CJK has no word breaks)."""
    if "a" <= char <= "z":
        return "a"
    if "0" <= char <= "9":
        return "d"
    return None


class Skeleton:
    """The skeleton of one text and the way back to it."""

    __slots__ = ("_ends", "_pieces", "folded", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        found = list(map(_FOLDED.get, text))
        try:
            pieces = cast(list[str], found)
            self.folded = "".join(pieces)  # raises TypeError at a None
        except TypeError:  # a character not seen before: fold it once
            pieces = [fold_char(c) if p is None else p for c, p in zip(text, found, strict=True)]
            self.folded = "".join(pieces)
        self._pieces = pieces
        self._ends: list[int] | None = None

    def origin(self, k: int) -> int:
        """The index in the original text of the character that skeleton character ``k`` came from."""
        if self._ends is None:
            self._ends = list(accumulate(map(len, self._pieces)))
        return bisect_right(self._ends, k)
