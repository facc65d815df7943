"""Personal data in free text: mainland mobile numbers, resident ID numbers, bank cards and e-mail addresses.

One set of detectors serves every place that must keep personal data out: the log masker, the placeholders the
model sees instead of a shopper's numbers (:class:`Pseudonyms`), and the retention sweep's anonymisation.
Shoppers write numbers in every form a keyboard allows — full-width digits from a Chinese IME, spaces, dashes
and dots between groups, a ``+86`` prefix — so matching runs on a width-folded copy of the text (same length,
so positions map back one to one) and allows a separator between any two digits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

PiiKind: TypeAlias = Literal["phone", "id_card", "bank_card", "email"]
ALL_KINDS: tuple[PiiKind, ...] = ("id_card", "bank_card", "phone", "email")

# What the log masker writes, and what anonymised transcripts keep (the type, not the value).
LOG_LABELS: Mapping[PiiKind, str] = {"phone": "[PHONE]", "id_card": "[ID]", "bank_card": "[CARD]", "email": "[EMAIL]"}
TYPE_LABELS: Mapping[PiiKind, str] = {
    "phone": "[手机号]",
    "id_card": "[身份证号]",
    "bank_card": "[银行卡号]",
    "email": "[邮箱]",
}
# The names inside the model's placeholders: ``[手机号1]``.
PLACEHOLDER_NAMES: Mapping[PiiKind, str] = {
    "phone": "手机号",
    "id_card": "身份证号",
    "bank_card": "银行卡号",
    "email": "邮箱",
}

# Full-width ASCII (U+FF01..U+FF5E) and the ideographic space, folded to ASCII: same length, so offsets hold.
_WIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}

_SEP = r"[ \t\-.·]?"
_PHONE = re.compile(rf"(?<![0-9A-Za-z])(?:\+?86{_SEP})?1{_SEP}[3-9](?:{_SEP}\d){{9}}(?![0-9A-Za-z])")
_ID_CARD = re.compile(rf"(?<![0-9A-Za-z])\d{{6}}{_SEP}(?:19|20)\d{{2}}[01]\d[0-3]\d{_SEP}\d{{3}}[\dXx](?![0-9A-Za-z])")
# The log masker's looser forms: any 18-character ID-like run (any check character), the old 15-digit ID.
_ID_LOOSE = re.compile(rf"(?<![0-9A-Za-z])(?:\d{{6}}{_SEP}\d{{8}}{_SEP}\d{{3}}[\dXx]|\d{{15}})(?![0-9A-Za-z])")
_CARD = re.compile(r"(?<![0-9A-Za-z])\d{4}(?:[ \-]?\d){12,15}(?![0-9A-Za-z])")
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][\w.+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", re.ASCII)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_HINT = re.compile(r"[0-9@\uff10-\uff19\uff20]")


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """One piece of personal data: its kind and where it is in the original text."""

    kind: PiiKind
    start: int
    end: int
    text: str  # as the shopper wrote it

    @property
    def canonical(self) -> str:
        """The value without formatting (digits only; an e-mail in lower case): the same number written two ways is
        the same number."""
        folded = self.text.translate(_WIDTH)
        if self.kind == "email":
            return folded.lower()
        digits = "".join(ch for ch in folded if ch.isdigit() or ch in "Xx").upper()
        if self.kind == "phone" and len(digits) == 13 and digits.startswith("86"):
            return digits[2:]
        return digits


def fold_width(text: str) -> str:
    """``text`` with full-width ASCII folded to ASCII (same length)."""
    return text.translate(_WIDTH)


def valid_id_card(number: str) -> bool:
    """Whether an 18-character resident ID number has the right check character (GB 11643)."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def luhn(number: str) -> bool:
    """Whether a card number passes the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_pii(text: str, kinds: Collection[PiiKind] = ALL_KINDS, *, strict: bool = True) -> list[PiiMatch]:
    """Every piece of personal data in ``text`` of the given kinds, in order, never overlapping.

    ID numbers are taken first, then bank cards, then phones, then e-mail; a span claimed by one kind is not
    matched again by a later one. ``strict`` (placeholders, anonymisation) requires an ID's check character and a
    card's Luhn digit, so order and tracking numbers stay readable; the log masker is not strict: any ID-like or
    card-length digit run is hidden there.
    """
    if not text or not _HINT.search(text):
        return []
    folded = text.translate(_WIDTH)
    taken: list[PiiMatch] = []

    def free(start: int, end: int) -> bool:
        return all(end <= m.start or start >= m.end for m in taken)

    def digits(span: str) -> str:
        return "".join(ch for ch in span if ch.isdigit() or ch in "Xx")

    if "id_card" in kinds:
        for m in (_ID_CARD if strict else _ID_LOOSE).finditer(folded):
            if not strict or valid_id_card(digits(m.group()).upper()):
                taken.append(PiiMatch("id_card", m.start(), m.end(), text[m.start() : m.end()]))
    if "bank_card" in kinds:
        for m in _CARD.finditer(folded):
            number = digits(m.group())
            # Strict: a card network's first digit (UnionPay 62, Visa 4, Mastercard 5, JCB/Amex 3) and Luhn, so
            # a date-prefixed order number that happens to pass Luhn stays an order number.
            if free(m.start(), m.end()) and (not strict or (number[0] in "3456" and luhn(number))):
                taken.append(PiiMatch("bank_card", m.start(), m.end(), text[m.start() : m.end()]))
    if "phone" in kinds:
        for m in _PHONE.finditer(folded):
            if free(m.start(), m.end()):
                taken.append(PiiMatch("phone", m.start(), m.end(), text[m.start() : m.end()]))
    if "email" in kinds and "@" in folded:
        for m in _EMAIL.finditer(folded):
            if free(m.start(), m.end()):
                taken.append(PiiMatch("email", m.start(), m.end(), text[m.start() : m.end()]))
    taken.sort(key=lambda m: m.start)
    return taken


def mask_pii(
    text: str,
    labels: Mapping[PiiKind, str] = LOG_LABELS,
    kinds: Collection[PiiKind] = ALL_KINDS,
    *,
    strict: bool = True,
) -> str:
    """``text`` with every piece of personal data replaced by its kind's label."""
    return _replace(text, find_pii(text, kinds, strict=strict), lambda m: labels[m.kind])


def _replace(text: str, found: list[PiiMatch], by: Callable[[PiiMatch], str]) -> str:
    if not found:
        return text
    parts: list[str] = []
    at = 0
    for m in found:
        parts.append(text[at : m.start])
        parts.append(by(m))
        at = m.end
    parts.append(text[at:])
    return "".join(parts)


_PLACEHOLDER = re.compile(r"[\[【]\s*(手机号|身份证号|银行卡号|邮箱)\s*(\d{1,3})\s*[\]】]")
_NAME_KIND: Mapping[str, PiiKind] = {name: kind for kind, name in PLACEHOLDER_NAMES.items()}
# The longest placeholder the model could be part-way through writing: "【银行卡号 999】" and a little slack.
MAX_PLACEHOLDER = 14


class Pseudonyms:
    """Reversible placeholders for one conversation: the model sees ``[手机号1]``, the shopper their own number.

    The same value (however it is formatted) gets the same placeholder everywhere in the request, so the model can
    still tell "the number you gave earlier" from a new one; placeholders are numbered in order of appearance,
    which is stable from turn to turn for the same history.
    """

    def __init__(self, kinds: Collection[PiiKind] = ALL_KINDS) -> None:
        self._kinds = tuple(kinds)
        self._tokens: dict[tuple[PiiKind, str], str] = {}
        self._values: dict[tuple[PiiKind, int], str] = {}
        self._counts: dict[PiiKind, int] = {}

    @property
    def active(self) -> bool:
        """Whether any placeholder was handed out (nothing to restore otherwise)."""
        return bool(self._values)

    def mask(self, text: str) -> str:
        """``text`` with each piece of personal data replaced by its placeholder."""
        if not self._kinds:
            return text
        return _replace(text, find_pii(text, self._kinds), self._token)

    def _token(self, m: PiiMatch) -> str:
        key = (m.kind, m.canonical)
        token = self._tokens.get(key)
        if token is None:
            n = self._counts.get(m.kind, 0) + 1
            self._counts[m.kind] = n
            token = f"[{PLACEHOLDER_NAMES[m.kind]}{n}]"
            self._tokens[key] = token
            self._values[(m.kind, n)] = m.text
        return token

    def restore(self, text: str) -> str:
        """``text`` with every placeholder this conversation handed out replaced by the shopper's own value (a
        placeholder the model invented is left as it is)."""
        if not self._values or ("[" not in text and "【" not in text):
            return text
        return _PLACEHOLDER.sub(self._restore_one, text)

    def _restore_one(self, m: re.Match[str]) -> str:
        value = self._values.get((_NAME_KIND[m.group(1)], int(m.group(2))))
        return value if value is not None else m.group()


class StreamRestorer:
    """Restores placeholders in streamed text, holding back only a possibly unfinished ``[手机号…`` at the end."""

    def __init__(self, pseudonyms: Pseudonyms) -> None:
        self._pseudonyms = pseudonyms
        self._pending = ""

    def feed(self, piece: str) -> str:
        """The text that can be shown now (restored); a trailing fragment that may be a placeholder is kept."""
        text = self._pending + piece
        cut = max(text.rfind("["), text.rfind("【"))
        if cut >= 0 and len(text) - cut < MAX_PLACEHOLDER and "]" not in text[cut:] and "】" not in text[cut:]:
            self._pending = text[cut:]
            text = text[:cut]
        else:
            self._pending = ""
        return self._pseudonyms.restore(text)

    def flush(self) -> str:
        """Whatever was held back (the stream ended)."""
        text, self._pending = self._pending, ""
        return self._pseudonyms.restore(text)
