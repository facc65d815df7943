"""Toneless pinyin of CJK characters, from a compact table shipped with kefu (``data/pinyin.txt``).

Used to match homophone typos (运废 → yun fei, like 运费) and pinyin abbreviations (yf → 运费). One reading
per character (its most common one), so heteronyms sometimes read wrongly; both sides of a match read
them the same way.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

TABLE = Path(__file__).parent / "data" / "pinyin.txt"


@cache
def _table() -> dict[str, str]:
    table: dict[str, str] = {}
    with TABLE.open(encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#") or "\t" not in line:
                continue
            syllable, chars = line.rstrip("\n").split("\t", 1)
            for char in chars:
                table[char] = syllable
    return table


def syllable(char: str) -> str | None:
    """The toneless pinyin of ``char`` (``ü`` written ``v``), or None for anything else."""
    return _table().get(char)


def syllables(word: str) -> list[str] | None:
    """Pinyin of every character of ``word``, or None if any character has none."""
    table = _table()
    out = []
    for char in word:
        value = table.get(char)
        if value is None:
            return None
        out.append(value)
    return out


def warm() -> None:
    """Load the table now (it is loaded lazily otherwise)."""
    _table()
