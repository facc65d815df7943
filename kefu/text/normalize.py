"""Text normalisation shared by indexing and querying, so both sides always agree.

``normalize`` folds full-width characters to half-width (NFKC), case, common traditional characters to
simplified, and turns punctuation and symbols into spaces.
"""

from __future__ import annotations

import re
import unicodedata

from kefu.text.tradsimp import to_simplified

_SPACES = re.compile(r"\s+")
# Characters that belong to a word: "c++", "c#", "100%"; "." and "-" only between digits ("7.5", "1-3").
_KEEP = frozenset("+#%&_")
_DIGIT_JOINERS = frozenset(".-")


def _is_separator(text: str, i: int) -> bool:
    char = text[i]
    if char in _KEEP:
        return False
    if char in _DIGIT_JOINERS:
        return not (0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit())
    return unicodedata.category(char)[0] in "PSZC"


_PLAIN: dict[str, bool] = {}  # character → True when it is never a separator (filled as characters are seen)


def _plain(char: str) -> bool:
    plain = _PLAIN.get(char)
    if plain is None:
        plain = _PLAIN[char] = char not in _DIGIT_JOINERS and not _is_separator(char, 0)
    return plain


def normalize(text: str) -> str:
    """Full-width → half-width, lower case, traditional → simplified, punctuation → single spaces."""
    text = to_simplified(unicodedata.normalize("NFKC", text).casefold())
    out = [c if _plain(c) or not _is_separator(text, i) else " " for i, c in enumerate(text)]
    return _SPACES.sub(" ", "".join(out)).strip()


def is_cjk(char: str) -> bool:
    """True for a CJK unified ideograph (the characters jieba segments)."""
    code = ord(char)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF


def has_cjk(text: str) -> bool:
    """True when ``text`` contains at least one CJK ideograph."""
    return any(is_cjk(c) for c in text)
