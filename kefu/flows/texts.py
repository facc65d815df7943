"""Bilingual texts, language detection, the built-in repair texts and the safe template renderer.

A text in a flow file is either a string (Chinese) or ``{zh: …, en: …}``; a missing ``en`` falls back to ``zh``.
Templates name values with dotted paths in braces — ``{slots.order_id}``, ``{result.data.status_text}``,
``{steps.verify.data.verified}``, ``{labels.reason}`` — looked up over dicts only (no attribute access, no
indexing expressions, no format specs), so a flow file can never run code. ``{{`` and ``}}`` are literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from kefu.text.normalize import has_cjk

Lang: TypeAlias = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Text:
    """A user-facing text in Chinese and (optionally) English."""

    zh: str
    en: str | None = None

    def get(self, lang: Lang) -> str:
        """The text in ``lang`` (Chinese when there is no English)."""
        return self.en if lang == "en" and self.en else self.zh

    def parts(self) -> tuple[str, ...]:
        """Every language version present (for checks over all of them)."""
        return (self.zh,) if self.en is None else (self.zh, self.en)


# Short English words Chinese shoppers type too ("ok", "hi", "thx"): alone they never switch a conversation.
FILLERS = frozenset(
    "ok okay okk k hi hii hello hey yo thx thanks thank ty you yes yeah yep yup no nope sure fine good great nice "
    "cool wow lol haha hh hmm emm em en um uh oh ah pls plz please sorry bye byebye gg".split()
)
# Words an English sentence almost always has; keyboard mashing ("qwzx plmok") and pinyin have none.
COMMON = frozenset(
    "i me my mine you your we us our it its is are was were be been am do does did don't doesn't didn't can can't "
    "could would will won't should shall may might must have has had the a an to of for in on at by from with about "
    "how what where when why which who whom whose this that these those not there here any some and or but if so "
    "want need like please help get".split()
)
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
_CODE = re.compile(r"[A-Z]{1,4}")  # SKU, DD, VIP: a code or an abbreviation, not a word
_VOWEL = re.compile(r"[aeiouyAEIOUY]")


def _words(text: str) -> list[str]:
    """The English words of a text: letters only (``12ab``, ``DD2026`` are ids), not all-caps codes (``SKU``)."""
    out = []
    for token in _TOKEN.findall(text):
        word = token.lower()
        if any(c.isdigit() for c in token) or (len(token) < 2 and word not in ("i", "a")):
            continue
        if _CODE.fullmatch(token) and word not in FILLERS and word not in COMMON:
            continue
        out.append(word)
    return out


def _real(word: str) -> bool:
    """A word that may carry meaning (not a filler, not pinyin initials like ``yf`` or ``zmth``)."""
    return word not in FILLERS and len(word) >= 3 and bool(_VOWEL.search(word))


def decided_lang(text: str, *, settled: bool = True) -> Lang | None:
    """The language ``text`` clearly is in, or None when it does not say (digits, ids, a stray "ok").

    A message with Chinese is Chinese. English takes a sentence: two words or more, one of them more than a filler
    and one of them a common English word ("where is my order"). Before the conversation has a language
    (``settled`` False), a greeting alone ("hello") or two real words ("return policy") will do too.
    """
    if has_cjk(text):
        return "zh"
    words = _words(text)
    if not words:
        return None
    meaningful = [w for w in words if w not in FILLERS]
    if len(words) >= 2 and meaningful and any(w in COMMON for w in words):
        return "en"
    if settled:
        return None
    if not meaningful or sum(1 for w in meaningful if _real(w)) >= 2:
        return "en"
    return None


def detect_lang(text: str, default: Lang = "zh", *, settled: bool = True) -> Lang:
    """The language of ``text``; ``default`` (the conversation's language) when the text does not say.

    Digits, order ids, codes and a stray "ok" or "12ab" never switch a conversation; a real English sentence does;
    a message with Chinese is Chinese.
    """
    return decided_lang(text, settled=settled) or default


def conversation_lang(text: str, earlier: Iterable[str] = (), default: Lang = "zh") -> Lang:
    """The language to answer ``text`` in, given the conversation's earlier user messages (oldest first).

    The conversation starts in the first language a message clearly uses (``default`` until then) and keeps it
    until a message clearly uses the other one.
    """
    lang, settled = default, False
    for message in (*earlier, text):
        found = decided_lang(message, settled=settled)
        if found is not None:
            lang, settled = found, True
    return lang


def lookup(scope: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` through nested dicts (list items by number); ``None`` when absent."""
    value: Any = scope
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
        if value is _MISSING:
            return None
    return value


def placeholders(template: str) -> list[str]:
    """The paths a template names (in order, with repeats); malformed ones are returned as written."""
    return [m.group(1).strip() for m in PLACEHOLDER.finditer(template) if m.group(1) is not None]


def single_placeholder(template: str) -> str | None:
    """The path when the whole template is one placeholder (so a typed value can be passed through)."""
    match = PLACEHOLDER.fullmatch(template.strip())
    return match.group(1).strip() if match and match.group(1) is not None else None


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return ""
    return str(value)


def render(template: str, scope: Mapping[str, Any]) -> str:
    """Fill a template's placeholders from ``scope``; unknown or non-scalar values render as an empty string."""

    def fill(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "{{":
            return "{"
        if whole == "}}":
            return "}"
        path = match.group(1).strip()
        return _show(lookup(scope, path)) if PATH.match(path) else ""

    return PLACEHOLDER.sub(fill, template)


BUILTIN: dict[str, Text] = {
    "cancelled": Text(
        "好的，已为您取消。还有其他可以帮您的吗？", "OK, I've cancelled that. Anything else I can help with?"
    ),
    "confirm_reask": Text("请回复“确认”继续，或回复“取消”放弃。", 'Please reply "yes" to go ahead or "no" to cancel.'),
    "too_many_attempts": Text(
        "抱歉，这一步多次没有成功。我可以为您转接人工客服，需要的话请回复“转人工”。",
        'Sorry, that didn\'t work after several tries. I can put you through to a human agent — just say "human".',
    ),
    "system_busy": Text(
        "抱歉，系统有点忙，暂时没查到。请稍后回复“再试试”，我会接着为您处理。",
        'Sorry, the system is busy right now. Reply "try again" in a moment and I\'ll pick up where we left off.',
    ),
    "retry_failed": Text(
        "抱歉，系统暂时无法处理。我可以为您转接人工客服，需要的话请回复“转人工”。",
        'Sorry, the system can\'t handle this right now. I can put you through to a human agent — just say "human".',
    ),
    "updated": Text("好的，已更新为 {value}。", "OK, updated to {value}."),
    "restarted": Text(
        "这项服务刚刚更新了，我们从头继续，您已提供的信息会保留。",
        "This service was just updated, so let's continue from the start — I've kept what you told me.",
    ),
    "unavailable": Text(
        "抱歉，这项服务暂时不可用。还有其他可以帮您的吗？",
        "Sorry, this service isn't available right now. Anything else I can help with?",
    ),
    "done": Text("好的，已办理完成。", "All done."),
    "what_to_fix": Text(
        "好的，请问哪里需要修改？直接发给我正确的内容就行。", "OK — what should I change? Just send me the right value."
    ),
    "hold_on": Text("好的，不着急，我在这儿等您。", "Sure, take your time — I'll wait."),
    "invalid": Text("抱歉，没有识别到有效的信息。", "Sorry, I couldn't read that."),
    "handoff": Text(
        "已为您登记转人工，客服会尽快与您联系。", "I've asked a human agent to take over; they'll be with you shortly."
    ),
    # A bare order number: what can be done with it (kefu.flows.offer).
    "order_offer": Text(
        "订单 {order_id}：请问您想办理哪一项？可以回复：{choices}",
        "Order {order_id}: what would you like to do? You can reply: {choices}",
    ),
}


def builtin(key: str, lang: Lang, **values: str) -> str:
    """A built-in repair text in ``lang`` with ``{value}``-style fields filled."""
    return render(BUILTIN[key].get(lang), values)
