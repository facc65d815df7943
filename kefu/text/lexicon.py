"""A bot's business vocabulary: its dictionary, synonym table and extra stopwords (``kb/*.txt``).

* ``dictionary.txt`` — one word per line, optionally ``word frequency tag`` (jieba's user-dictionary format).
* ``synonyms.txt`` — ``canonical, synonym, …`` (every term is read as the first) or
  ``synonym, synonym => canonical``; terms may be Chinese, English phrases or pinyin initials.
* ``stopwords.txt`` — one word per line, added to the built-in list.

Lines starting with ``#`` are comments. Problems are reported (file and line), never fatal: to any
:class:`Findings` (callers pass a :class:`kefu.content.problems.LoadReport`).

Under every bot's files lies kefu's generic e-commerce layer (``kefu/text/data/commerce_*.txt``: the words,
synonyms and filler every Chinese shop shares), so an empty bot directory still reads 邮费 as 运费 and ``fapiao``
as 发票. The bot's files extend or override it (:func:`layered`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from kefu.text.normalize import has_cjk

_SPLIT = re.compile(r"[,，、;；]")
COMMERCE_DIR = Path(__file__).parent / "data"
COMMERCE_FILES = {
    "dictionary": "commerce_dictionary.txt",
    "synonyms": "commerce_synonyms.txt",
    "stopwords": "commerce_stopwords.txt",
}


class Findings(Protocol):
    """Where lexicon problems go (with file and line): a line that was left out, or a doubt about a kept one."""

    def skip(self, path: Path | str, line: int, reason: str) -> None:
        """Record a line that was left out."""

    def warn(self, path: Path | str, line: int, reason: str) -> None:
        """Record a doubt about a line that was kept."""


class _Discard:
    """Findings nobody reads."""

    def skip(self, path: Path | str, line: int, reason: str) -> None:
        pass

    def warn(self, path: Path | str, line: int, reason: str) -> None:
        pass


@dataclass(frozen=True, slots=True)
class DictWord:
    """One business-dictionary word (jieba's ``word [freq] [tag]``)."""

    word: str
    freq: int | None = None
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Dictionary words, synonym groups (term → canonical) and extra stopwords of one bot."""

    words: tuple[DictWord, ...] = ()
    synonyms: tuple[tuple[str, str], ...] = ()
    stopwords: tuple[str, ...] = ()
    fingerprint: str = field(default="", compare=False)

    @classmethod
    def build(
        cls,
        words: tuple[DictWord, ...] = (),
        synonyms: tuple[tuple[str, str], ...] = (),
        stopwords: tuple[str, ...] = (),
    ) -> Lexicon:
        """A lexicon with its fingerprint computed from the content."""
        digest = hashlib.sha256(repr((words, synonyms, stopwords)).encode()).hexdigest()[:12]
        return cls(words, synonyms, stopwords, digest)


def _lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        return []
    out = []
    for number, raw in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            out.append((number, line))
    return out


def parse_dictionary(path: Path, report: Findings) -> list[DictWord]:
    """Words of a jieba-format user dictionary."""
    words = []
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) >= 2 and not parts[1].isdigit() and len(parts) > 3:
            report.warn(path, number, "expected 'word [frequency] [tag]'; read the whole line as one word")
        freq: int | None = None
        tag: str | None = None
        if len(parts) >= 2 and parts[1].isdigit():
            freq = int(parts[1])
            tag = parts[2] if len(parts) >= 3 else None
        elif len(parts) >= 2:
            # "air max" style entries: the whole line is the word.
            parts = [line]
        words.append(DictWord(parts[0], freq, tag))
    return words


def parse_synonyms(path: Path, report: Findings) -> list[tuple[str, str]]:
    """(term, canonical) pairs of a synonym table.

    A term listed in two groups keeps its first; a group whose canonical word is already a synonym joins
    that word's group (both with a warning)."""
    root: dict[str, tuple[str, int]] = {}  # casefolded term → (canonical, line)
    pairs: list[tuple[str, str]] = []
    for number, line in _lines(path):
        explicit = "=>" in line
        left, _, right = line.partition("=>") if explicit else (line, "", "")
        terms = [t.strip() for t in _SPLIT.split(left) if t.strip()]
        canonical = right.strip() if explicit else (terms[0] if terms else "")
        if not canonical or not terms or (len(terms) < 2 and not explicit):
            report.skip(path, number, "a synonym line needs at least two terms (a, b) or 'a => b'")
            continue
        if canonical.casefold() in root and root[canonical.casefold()][0] != canonical:
            joined, first = root[canonical.casefold()]
            report.warn(path, number, f"{canonical!r} is already a synonym of {joined!r} (line {first}); joining it")
            canonical = joined
        for term in terms:
            key = term.casefold()
            if key in root and root[key][0] != canonical:
                report.warn(path, number, f"{term!r} is already a synonym on line {root[key][1]}; keeping the first")
                continue
            root.setdefault(key, (canonical, number))
            if term != canonical:
                pairs.append((term, canonical))
    return pairs


def parse_stopwords(path: Path) -> list[str]:
    """One stopword per line."""
    return [line for _, line in _lines(path)]


def read_lexicon(kb_dir: Path, report: Findings | None = None, *, names: dict[str, str] | None = None) -> Lexicon:
    """The lexicon of the files in ``kb_dir`` alone (missing files are simply empty)."""
    report = report if report is not None else _Discard()
    files = names or {"dictionary": "dictionary.txt", "synonyms": "synonyms.txt", "stopwords": "stopwords.txt"}
    words = parse_dictionary(kb_dir / files["dictionary"], report)
    synonyms = parse_synonyms(kb_dir / files["synonyms"], report)
    stopwords = parse_stopwords(kb_dir / files["stopwords"])
    return Lexicon.build(tuple(words), tuple(synonyms), tuple(stopwords))


@lru_cache(maxsize=1)
def commerce_lexicon() -> Lexicon:
    """kefu's generic e-commerce layer (shipped with the package)."""
    return read_lexicon(COMMERCE_DIR, names=COMMERCE_FILES)


def layered(base: Lexicon, own: Lexicon) -> Lexicon:
    """``own`` over ``base``: the bot's words, synonyms and stopwords win where they meet the base layer's.

    A base synonym group whose canonical word the bot maps (as a term or as its own canonical word) joins the
    bot's group; any term the bot maps itself keeps the bot's meaning; a base stopword the bot uses as a word or
    synonym is a word again."""
    mapped: dict[str, str] = {}
    for term, canonical in own.synonyms:
        mapped.setdefault(term.casefold(), canonical)
        mapped.setdefault(canonical.casefold(), canonical)
    groups: dict[str, list[str]] = {}
    for term, canonical in base.synonyms:
        groups.setdefault(canonical, []).append(term)
    joined: list[tuple[str, str]] = []
    for canonical, terms in groups.items():
        target = mapped.get(canonical.casefold(), canonical)
        expansion = " " in canonical and has_cjk(canonical)  # "花呗 => 花呗 分期" adds a word, it is no term
        for term in terms if expansion else [canonical, *terms]:
            if term.casefold() not in mapped and term != target:
                joined.append((term, target))
    used = {w.word for w in own.words} | {t for pair in own.synonyms for t in pair}
    stopwords = tuple(w for w in base.stopwords if w not in used) + own.stopwords
    return Lexicon.build(base.words + own.words, own.synonyms + tuple(joined), stopwords)


def load_lexicon(kb_dir: Path, report: Findings | None = None, *, base: bool = True) -> Lexicon:
    """The bot's lexicon from ``kb_dir`` (missing files are simply empty) over the generic e-commerce layer
    (``base=False``: the bot's files alone)."""
    own = read_lexicon(kb_dir, report)
    return layered(commerce_lexicon(), own) if base else own
