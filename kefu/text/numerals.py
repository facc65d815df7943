"""Digits as people type them: full-width, Chinese numerals, digits split by spaces or hyphens."""

from __future__ import annotations

import re
import unicodedata

_DIGIT_CHARS = {"零": 0, "〇": 0, "一": 1, "幺": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_DIGIT_CHARS |= {"六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10_000}
_DIGIT_RUN = re.compile("[" + "".join(_DIGIT_CHARS) + "]{2,}")
_SPLIT_DIGITS = re.compile(r"(?<=\d)[ \t\u3000\-–—_]+(?=\d)")
CHINESE_NUMBER = re.compile("[" + "".join(_DIGIT_CHARS) + "".join(_UNITS) + "]+")


def normalize_digits(text: str) -> str:
    """Full-width → half-width, runs of Chinese digits read digit by digit ("一二三四" → "1234"), and digit
    groups joined ("1 2 3 4", "138-1234-5678"). A lone 一 stays (it is usually "a", not "1")."""
    text = unicodedata.normalize("NFKC", text)
    text = _DIGIT_RUN.sub(lambda m: "".join(str(_DIGIT_CHARS[c]) for c in m.group(0)), text)
    return _SPLIT_DIGITS.sub("", text)


def chinese_number(text: str) -> int | None:
    """The value of a Chinese numeral with units ("二十三" → 23, "一百零五" → 105, "十" → 10); None otherwise."""
    if not text or any(c not in _DIGIT_CHARS and c not in _UNITS for c in text):
        return None
    if all(c in _DIGIT_CHARS for c in text):
        return int("".join(str(_DIGIT_CHARS[c]) for c in text))
    total, section, digit = 0, 0, None
    for char in text:
        if char in _DIGIT_CHARS:
            digit = _DIGIT_CHARS[char]
            continue
        unit = _UNITS[char]
        if unit == 10_000:
            total += (section + (digit or 0)) * unit
            section, digit = 0, None
        else:
            section += (1 if digit is None else digit) * unit
            digit = None
    return total + section + (digit or 0)
