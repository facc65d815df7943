"""An Aho-Corasick automaton (pyahocorasick) that stays fast for lexicons of tens of thousands of Chinese terms.

pyahocorasick finds a node's next node by a linear search of its children, and every mismatch falls back to the
root, whose children are all the distinct first characters of the terms: thousands for a real Chinese lexicon,
which makes a 500-character message cost about a millisecond. So when the terms begin with more than
:data:`_DIRECT` distinct characters, each character of the terms is spelled as a fixed number of digits in
base 64 (private-use characters, a separate range for each digit place, so a match can only begin where a
character does) and the text is translated the same way in one ``str.translate``: no node has more than 64
children.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Mapping
from itertools import accumulate
from typing import Any

import ahocorasick  # type: ignore[import-not-found]

_BASE = 64
_PLANE = 0xE000  # private use: never in a skeleton (only letters and digits are kept)
_DIRECT = 128  # up to this many distinct first characters the root is small enough as it is (measured)


class Automaton:
    """Every occurrence of any key in a text, as ``(index of the match's last character, value)``."""

    __slots__ = ("_automaton", "_table", "_width")

    def __init__(self, keys: Mapping[str, Any]) -> None:
        chars = sorted(set("".join(keys)))
        self._width = 1
        self._table: dict[int, str] | None = None
        if len({key[:1] for key in keys}) > _DIRECT:
            while _BASE**self._width < len(chars):
                self._width += 1
            self._table = {ord(char): self._code(i) for i, char in enumerate(chars)}
        self._automaton = ahocorasick.Automaton()
        for key, value in keys.items():
            self._automaton.add_word(self._encode(key), value)
        self._automaton.make_automaton()

    def iter(self, text: str) -> Iterator[tuple[int, Any]]:
        """The matches in ``text``, in order of where they end."""
        if self._table is None:
            yield from self._automaton.iter(text)
            return
        ends: list[int] | None = None
        for end, value in self._automaton.iter(self._encode(text)):
            if ends is None:  # only texts with a match pay for the map back
                table, width = self._table, self._width
                ends = list(accumulate(width if ord(c) in table else 1 for c in text))
            yield bisect_right(ends, end), value

    def _code(self, i: int) -> str:
        places = range(self._width - 1, -1, -1)
        return "".join(chr(_PLANE + place * _BASE + (i // _BASE**digit) % _BASE) for place, digit in enumerate(places))

    def _encode(self, text: str) -> str:
        return text if self._table is None else text.translate(self._table)
