"""Text → search terms: jieba words with the bot's dictionary and synonyms, plus character and pinyin grams.

Three kinds of terms (channels) come out of a text, each prefixed so they share one vocabulary:

* words (``w:``) — jieba tokens (precise mode, no HMM), synonyms mapped to their canonical word, plural
  ``s`` dropped from English words, stopwords removed;
* characters (``c:``) — bigrams over each run of Chinese words (and whole English words), so a query still
  matches when jieba segments it differently or a word is unknown;
* pinyin (``p:``) — syllable bigrams over the same runs, so homophone typos (运废 for 运费) still match.

The same :class:`Analyzer` runs at indexing and at query time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jieba  # type: ignore[import-untyped]

from kefu.text import pinyin
from kefu.text.lexicon import Lexicon
from kefu.text.normalize import has_cjk, is_cjk, normalize
from kefu.text.stopwords import BUILTIN_STOPWORDS

jieba.setLogLevel(logging.WARNING)

MAX_PHRASE = 4
# Business words must win against the general dictionary's overlapping words (退货运费 → 退货 / 运费,
# not 退 / 货运费), so words without a frequency get at least this one (jieba's common words: 1e3–1e4).
BUSINESS_FREQ = 3000
CHANNELS = ("w", "c", "p")
_JIEBA_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Terms:
    """The analysed form of one text."""

    words: tuple[str, ...]
    chars: tuple[str, ...]
    sounds: tuple[str, ...]

    def all(self) -> list[str]:
        """Every term with its channel prefix (repeats kept: BM25 counts them)."""
        return [f"w:{t}" for t in self.words] + [f"c:{t}" for t in self.chars] + [f"p:{t}" for t in self.sounds]


_NOT = ("不", "没")


def _a_not_a(tokens: list[str]) -> list[str]:
    """Collapse A-not-A questions to the plain word: 包/不/包邮 → 包邮, 发/不/发 → 发, 要/不要 → 要.

    "Do you ship free" must not read as "not ship free": the 不 / 没 of an A-not-A question is no negation."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        after = tokens[i + 1] if i + 1 < len(tokens) else ""
        if len(token) == 1 and after in (f"{n}{token}" for n in _NOT):  # 要 / 不要
            out.append(token)
            i += 2
        elif len(token) == 1 and after in _NOT and i + 2 < len(tokens) and tokens[i + 2].startswith(token):
            i += 2  # 包 / 不 / 包邮, 发 / 不 / 发: keep the third token
        else:
            out.append(token)
            i += 1
    return out


def stem(token: str) -> str:
    """A light English stemmer: plurals, -ed, -ing and a final -e (shipping / shipped / ships → ship,
    receive / received / receiving → receiv). Content and queries go through it alike, so the stems only need
    to agree with each other, not to be words."""
    if len(token) <= 3 or not (token.isascii() and token.isalpha()):
        return token
    if token.endswith("ies"):
        return token[:-3] + "y"
    if token.endswith("sses"):
        token = token[:-2]
    elif token.endswith("s") and not token.endswith(("ss", "us", "is")):
        token = token[:-1]
    for suffix in ("ing", "ed"):
        base = token[: -len(suffix)]
        if token.endswith(suffix) and len(base) >= 3 and any(v in base for v in "aeiouy"):
            token = base
            if token[-1] == token[-2] and token[-1] not in "lsz":  # shipp → ship
                token = token[:-1]
            break
    if token.endswith("e") and len(token) > 3:
        token = token[:-1]
    return token


def _stem(token: str, stop: frozenset[str]) -> str:
    return token if token in stop else stem(token)


@lru_cache(maxsize=4)
def _jieba_for(words: tuple[tuple[str, int | None, str | None], ...]) -> jieba.Tokenizer:
    """A jieba tokenizer with the default dictionary (from the installed package) plus ``words``."""
    tokenizer = jieba.Tokenizer()
    with _JIEBA_LOCK:
        tokenizer.initialize()
    for word, freq, tag in words:
        if freq is None:
            freq = max(BUSINESS_FREQ, tokenizer.suggest_freq(word, False))
        tokenizer.add_word(word, freq, tag)
    return tokenizer


class Analyzer:
    """Turns text into :class:`Terms` for one bot's :class:`Lexicon`."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        self._stop = frozenset(BUILTIN_STOPWORDS | {normalize(w) for w in lexicon.stopwords})
        self._setup_lock = threading.Lock()
        self._jieba: Any = None  # loaded on first use (about half a second): a bot without content never pays
        self._synonyms: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._synonym_terms: dict[str, str] = {}
        self._phrase_starts: frozenset[str] = frozenset()

    def _setup(self) -> None:
        with self._setup_lock:
            if self._jieba is not None:
                return
            tokenizer = _jieba_for(Analyzer._plain_words(self.lexicon))
            synonyms: dict[tuple[str, ...], tuple[str, ...]] = {}
            for term, canonical in self.lexicon.synonyms:
                key = tuple(self._tokens(tokenizer, term))
                value = tuple(self._tokens(tokenizer, canonical))
                if key and value and key != value:
                    synonyms.setdefault(key, value)
                    if len(key) == 1 and len(value) == 1:
                        self._synonym_terms.setdefault(key[0], value[0])
            self._synonyms = synonyms
            self._phrase_starts = frozenset(key[0] for key in synonyms)
            self._jieba = tokenizer

    @property
    def synonym_terms(self) -> dict[str, str]:
        """Single-word synonyms → their canonical word."""
        if self._jieba is None:
            self._setup()
        return self._synonym_terms

    @staticmethod
    def _plain_words(lexicon: Lexicon) -> tuple[tuple[str, int | None, str | None], ...]:
        words: dict[str, tuple[str, int | None, str | None]] = {}
        for entry in lexicon.words:
            word = normalize(entry.word).replace(" ", "")
            if word:
                words[word] = (word, entry.freq, entry.tag)
        # Chinese synonym terms and stopwords are words too, so jieba keeps them whole.
        texts = [t for pair in lexicon.synonyms for t in pair] + list(lexicon.stopwords)
        for text in texts:
            word = normalize(text)
            if " " not in word and len(word) > 1 and has_cjk(word):
                words.setdefault(word, (word, None, None))
        return tuple(sorted(words.values(), key=lambda w: w[0]))

    def _tokens(self, tokenizer: Any, text: str) -> list[str]:
        tokens = _a_not_a([t for t in tokenizer.cut(normalize(text), HMM=False) if t.strip()])
        return [_stem(t, self._stop) for t in tokens]

    def _cut(self, text: str) -> list[str]:
        if self._jieba is None:
            self._setup()
        return self._tokens(self._jieba, text)

    def words(self, text: str) -> list[str]:
        """Canonical, stopword-free words of ``text``."""
        tokens = self._cut(text)
        mapped: list[str] = []
        i = 0
        while i < len(tokens):
            if tokens[i] in self._phrase_starts:
                for size in range(min(MAX_PHRASE, len(tokens) - i), 0, -1):
                    canonical = self._synonyms.get(tuple(tokens[i : i + size]))
                    if canonical is not None:
                        mapped.extend(canonical)
                        i += size
                        break
                else:
                    mapped.append(tokens[i])
                    i += 1
            else:
                mapped.append(tokens[i])
                i += 1
        return [t for t in mapped if t not in self._stop]

    def canonical(self, word: str) -> str:
        """The canonical form of a single word (itself when it has no synonym)."""
        return " ".join(self._synonyms.get((word,), (word,)))

    def is_stopword(self, word: str) -> bool:
        """True for words that carry no meaning for search."""
        return word in self._stop

    @staticmethod
    def grams(words: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Character and pinyin grams of already-analysed ``words``."""
        chars: list[str] = []
        sounds: list[str] = []
        run: list[str] = []

        def flush() -> None:
            if not run:
                return
            text = "".join(run)
            if len(text) == 1:
                chars.append(text)
            chars.extend(text[i : i + 2] for i in range(len(text) - 1))
            reading = [pinyin.syllable(c) or c for c in text]
            if len(reading) == 1:
                sounds.append(reading[0])
            sounds.extend(f"{reading[i]}_{reading[i + 1]}" for i in range(len(reading) - 1))
            run.clear()

        for word in words:
            cjk = [c for c in word if is_cjk(c)]
            if cjk:
                run.extend(cjk)
            else:  # English words and numbers count in every channel, so none ignores them
                flush()
                chars.append(word)
                sounds.append(word)
        flush()
        return tuple(chars), tuple(sounds)

    def terms(self, text: str) -> Terms:
        """Every term of ``text``."""
        words = self.words(text)
        chars, sounds = self.grams(words)
        return Terms(tuple(words), chars, sounds)

    def terms_of_words(self, words: list[str]) -> Terms:
        """Terms of a word list (after the caller rewrote some words)."""
        chars, sounds = self.grams(words)
        return Terms(tuple(words), chars, sounds)


def pinyin_keys(word: str) -> tuple[str, str] | None:
    """(initials, full pinyin) of a 2–4 character Chinese word, e.g. ("yf", "yunfei") for 运费."""
    if not 2 <= len(word) <= 4 or not all(is_cjk(c) for c in word):
        return None
    reading = pinyin.syllables(word)
    if reading is None:
        return None
    return "".join(s[0] for s in reading), "".join(reading)


def warm(lexicon: Lexicon) -> Analyzer:
    """Build the analyzer now (loads jieba's dictionary and the pinyin table): call off the event loop."""
    analyzer = Analyzer(lexicon)
    analyzer.terms("运费")
    pinyin.warm()
    return analyzer
