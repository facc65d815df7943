"""Match a sensitive-word lexicon the way people evade one, without tripping over ordinary shop talk.

Terms are matched on the text's skeleton (:mod:`kefu.moderation.fold`): case, full-width and traditional forms
folded, and up to :data:`MAX_GAP` separators (spaces, punctuation, symbols, emoji) between two characters of a
term ignored — ``傻 逼``, ``傻*逼``, ``傻\\u200b逼`` all hit ``傻逼``; zero-width characters never count. Then
what the skeleton cannot see is checked on the original text:

* a term's ASCII letters (or digits) at its edges must not touch more letters (digits): ``ass`` does not hit
  ``class``, nor ``加V`` ``加VIP``;
* two ASCII letters or digits of a term are never split by a space (``f.u.c.k`` hits ``fuck``; ``S B`` is two
  sizes, not ``sb``).

One Aho-Corasick automaton over the skeleton (:mod:`kefu.moderation.automaton`): one pass per text, whatever
the lexicon's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kefu.moderation.automaton import Automaton
from kefu.moderation.fold import Skeleton, fold, fold_char, invisible, word_class
from kefu.moderation.verdict import RANK, Action, Hit, Verdict, Where

DEFAULT_REPLY = "抱歉，这条消息包含不适宜的内容，我无法处理。请换个说法，或回复“转人工”联系客服。"
# Visible characters allowed between two characters of a term: "傻 * 逼" still hits, two words a sentence
# apart do not ("真傻。。。。。逼我买" is not an insult).
MAX_GAP = 3


@dataclass(frozen=True, slots=True)
class Category:
    """A category of terms: what to do when one is found, where it applies, and the reply when it blocks."""

    name: str
    action: Action
    where: frozenset[Where] = frozenset(("input", "output"))
    reply: str | None = None


def _gap_ok(gap: str, *, inside_word: bool) -> bool:
    seen = 0
    for char in gap:
        if invisible(char):
            continue
        if inside_word and char.isspace():
            return False
        seen += 1
    return seen <= MAX_GAP


def _visible(text: str) -> int:
    return sum(1 for char in text if not invisible(char))


def _joined(text: str, a: int, b: int) -> bool:
    """Nothing visible between original characters ``a`` and ``b``."""
    return all(invisible(char) for char in text[a + 1 : b])


def _in_word(text: str, i: int) -> bool:
    return bool(word_class(fold_char(text[i])[-1:])) or invisible(text[i])


def _stars(span: str) -> str:
    return "".join("*" if fold_char(ch) else ch for ch in span)


class Moderator:
    """A compiled lexicon. Build one with :meth:`build`; :meth:`empty_moderator` has no terms."""

    __slots__ = (
        "_automaton",
        "_chars",
        "_extendable",
        "_longest",
        "_open_terms",
        "_prefixes",
        "_words",
        "categories",
        "default_reply",
        "term_count",
        "window",
    )

    def __init__(self) -> None:
        self.categories: dict[str, Category] = {}
        self.window = 0  # characters the engine holds back when streaming output (>= the longest term)
        self.default_reply = DEFAULT_REPLY
        self.term_count = 0
        self._automaton: Automaton | None = None
        self._chars: frozenset[str] = frozenset()  # skeleton characters of every term
        self._prefixes: frozenset[str] = frozenset()  # every proper beginning of a term
        self._open_terms: frozenset[str] = frozenset()  # terms ending in an English letter or digit
        self._extendable: frozenset[str] = frozenset()  # terms that begin a longer term
        self._words = False  # some term begins with an ASCII letter or digit
        self._longest = 0

    @classmethod
    def build(
        cls,
        categories: Mapping[str, Category],
        terms: Mapping[str, Iterable[str]],
        *,
        window: int | None = None,
        default_reply: str | None = None,
    ) -> Moderator:
        """Compile ``terms`` (per category name; a term that folds to nothing is left out)."""
        keys: dict[str, dict[str, str]] = {}  # skeleton → category → the term as written (its first spelling)
        for name, words in terms.items():
            for word in words:
                folded = fold(word)
                if folded:
                    keys.setdefault(folded, {}).setdefault(name, word)
        moderator = cls()
        moderator.categories = dict(categories)
        if default_reply:
            moderator.default_reply = default_reply
        if not keys:
            return moderator
        automaton = Automaton(
            {
                folded: (
                    len(folded),
                    word_class(folded[0]),
                    word_class(folded[-1]),
                    tuple((w, n) for n, w in e.items()),
                )
                for folded, e in keys.items()
            }
        )
        proper = {k[:i] for k in keys for i in range(1, len(k))}
        moderator._automaton = automaton
        moderator._chars = frozenset("".join(keys))
        moderator._prefixes = frozenset(proper)
        moderator._open_terms = frozenset(k for k in keys if word_class(k[-1]))
        moderator._extendable = frozenset(proper & keys.keys())
        moderator._words = any(word_class(k[0]) for k in keys)
        moderator._longest = max(map(len, keys))
        moderator.term_count = sum(map(len, keys.values()))
        moderator.window = max(window or 0, moderator._longest)
        return moderator

    @classmethod
    def empty_moderator(cls) -> Moderator:
        """A moderator with no terms (the engine skips all work)."""
        return cls()

    @property
    def empty(self) -> bool:
        """No terms at all."""
        return self._automaton is None

    def may_hit(self, text: str) -> bool:
        """False when nothing in ``text`` can hit nor begin a hit (the engine then releases it at once)."""
        if self._automaton is None or not text:
            return False
        return not self._chars.isdisjoint(fold(text)) or self._open_word(text) is not None

    def scan(self, text: str, *, partial: bool = False) -> list[Hit]:
        """Every hit in ``text``, in order of position in the original text.

        ``partial``: more text follows (a streamed answer), so a hit the next characters may still undo or
        lengthen is left for the next call: an English term at the very end ("ass" may become "assemble"), a
        term at the end that begins a longer one."""
        if self._automaton is None or not text:
            return []
        skeleton = Skeleton(text)
        hits: list[Hit] = []
        for end, (length, head, tail, entries) in self._automaton.iter(skeleton.folded):
            span = self._span(skeleton, end - length + 1, end, head, tail, partial=partial)
            if span is not None:
                hits.extend(Hit(span[0], span[1], word, name, self._action(name)) for word, name in entries)
        hits.sort(key=lambda h: (h.start, -h.end))
        return hits

    def check(self, text: str, *, where: Where = "input", partial: bool = False) -> Verdict:
        """The verdict on ``text`` for the categories that apply ``where`` (``partial``: see :meth:`scan`)."""
        hits = [h for h in self.scan(text, partial=partial) if self._applies(h.category, where)]
        if partial and hits:
            # What a stream holds back is decided by the next piece: "傻逼" masked now could not become "傻逼玩意".
            cut = self.pending(text)
            hits = [h for h in hits if h.end <= cut]
        if not hits:
            return Verdict("allow", text=text)
        action = max((h.action for h in hits), key=RANK.__getitem__)
        categories = tuple(dict.fromkeys(h.category for h in hits))
        masked = text
        for hit in hits:
            if hit.action == "mask":
                masked = masked[: hit.start] + _stars(text[hit.start : hit.end]) + masked[hit.end :]
        reply = None
        if action == "block":
            name = next(h.category for h in hits if h.action == "block")
            category = self.categories.get(name)
            reply = (category.reply if category is not None else None) or self.default_reply
        return Verdict(action, categories, masked, reply, tuple(hits))

    def pending(self, text: str) -> int:
        """Where the end of ``text`` may still become (part of) a hit, so a stream must hold it back until the
        text after it decides: the index of that ending, ``len(text)`` when there is none.

        That is the longest ending that is the beginning of a term (with the separators a term may contain, and
        nothing but separators after it), and a word still open at the end, whose next letters decide whether an
        English term ends or begins there; moved back to the start of a hit or English word it would split."""
        if self._automaton is None or not text:
            return len(text)
        skeleton = Skeleton(text)
        folded = skeleton.folded
        cut = len(text)
        if folded:
            last = skeleton.origin(len(folded) - 1)
            if _visible(text[last + 1 :]) <= MAX_GAP:
                open_word = _joined(text, last, len(text))  # "ass" may still become "assemble"
                for k in range(max(0, len(folded) - self._longest), len(folded)):
                    ending = folded[k:]
                    live = ending in self._prefixes or (open_word and ending in self._open_terms)
                    if live and self._may_start(skeleton, k):
                        cut = skeleton.origin(k)
                        break
        word = self._open_word(text)
        if word is not None:
            cut = min(cut, word)
        if cut == len(text):
            return cut
        hits = self.scan(text, partial=True)
        while True:
            before = cut
            # Never cut through a hit (the next check would see only its end), nor through an English word (the
            # next check must see where it starts to know whether a term may start there).
            cut = min([cut, *(h.start for h in hits if h.start < cut < h.end)])
            while 0 < cut < len(text) and _in_word(text, cut) and _in_word(text, cut - 1):
                cut -= 1
            if cut == before:
                return cut

    def _open_word(self, text: str) -> int | None:
        """The index of the last character when it is an ASCII letter or digit nothing visible has closed yet
        (the next piece of a stream may go on with the same word), if the lexicon has English terms."""
        if not self._words:
            return None
        i = len(text) - 1
        while i >= 0 and invisible(text[i]):
            i -= 1
        return i if i >= 0 and word_class(fold_char(text[i])[-1:]) is not None else None

    def _may_start(self, skeleton: Skeleton, k: int) -> bool:
        head = word_class(skeleton.folded[k])
        if head is None or k == 0:
            return True
        before = skeleton.folded[k - 1]
        return word_class(before) != head or not _joined(skeleton.text, skeleton.origin(k - 1), skeleton.origin(k))

    def _span(
        self, skeleton: Skeleton, start: int, end: int, head: str | None, tail: str | None, *, partial: bool
    ) -> tuple[int, int] | None:
        """The original span of skeleton characters ``start..end`` if it is a hit there, else None."""
        text, folded, origin = skeleton.text, skeleton.folded, skeleton.origin
        first = previous = origin(start)
        for k in range(start + 1, end + 1):
            here = origin(k)
            if here - previous > 1:
                inside_word = word_class(folded[k - 1]) is not None and word_class(folded[k]) is not None
                if not _gap_ok(text[previous + 1 : here], inside_word=inside_word):
                    return None
            previous = here
        last = previous
        if head is not None and not self._may_start(skeleton, start):
            return None
        if end + 1 < len(folded):
            after = end + 1
            if tail is not None and word_class(folded[after]) == tail and _joined(text, last, origin(after)):
                return None
        elif partial:
            rest = text[last + 1 :]
            if tail is not None and _joined(text, last, len(text)):
                return None  # the word may go on in the next piece
            if folded[start:] in self._extendable and _visible(rest) <= MAX_GAP:
                return None  # a longer term may follow
        return first, last + 1

    def _action(self, name: str) -> str:
        category = self.categories.get(name)
        return category.action if category is not None else "flag"

    def _applies(self, name: str, where: Where) -> bool:
        category = self.categories.get(name)
        return category is None or where in category.where
