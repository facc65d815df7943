"""A bot's business vocabulary: its dictionary, synonym table and extra stopwords (``kb/*.txt``).

* ``dictionary.txt`` — one word per line, optionally ``word frequency tag`` (jieba's user-dictionary format).
* ``synonyms.txt`` — ``canonical, synonym, …`` (every term is read as the first) or
  ``synonym, synonym => canonical``; terms may be Chinese, English phrases or pinyin initials.
* ``stopwords.txt`` — one word per line, added to the built-in list.

Lines starting with ``#`` are comments. Problems are reported (file and line), never fatal: to any
:class:`Findings` (callers pass a :class:`kefu.content.problems.LoadReport`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

_SPLIT = re.compile(r"[,，、;；]")


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


def load_lexicon(kb_dir: Path, report: Findings | None = None) -> Lexicon:
    """The lexicon from ``kb_dir`` (missing files are simply empty)."""
    report = report if report is not None else _Discard()
    words = parse_dictionary(kb_dir / "dictionary.txt", report)
    synonyms = parse_synonyms(kb_dir / "synonyms.txt", report)
    stopwords = parse_stopwords(kb_dir / "stopwords.txt")
    return Lexicon.build(tuple(words), tuple(synonyms), tuple(stopwords))
