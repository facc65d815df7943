"""Bilingual texts, language detection, the built-in repair texts and the safe template renderer.

A text in a flow file is either a string (Chinese) or ``{zh: …, en: …}``; a missing ``en`` falls back to ``zh``.
Templates name values with dotted paths in braces — ``{slots.order_id}``, ``{result.data.status_text}``,
``{steps.verify.data.verified}``, ``{labels.reason}`` — looked up over dicts only (no attribute access, no
indexing expressions, no format specs), so a flow file can never run code. ``{{`` and ``}}`` are literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

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


def detect_lang(text: str, default: Lang = "zh") -> Lang:
    """``en`` when the text is mostly ASCII letters, ``zh`` when it has Chinese; ``default`` when it has neither
    (digits, an order id: the conversation keeps its language)."""
    cjk = sum(1 for c in text if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    letters = sum(1 for c in text if c.isascii() and c.isalpha())
    if cjk == 0 and letters == 0:
        return default
    if cjk == 0:
        # an order id like "DD20261105002" alone says nothing about the language
        words = re.findall(r"[A-Za-z]{2,}", text)
        return "en" if any(not re.fullmatch(r"[A-Z]{1,4}", w) for w in words) else default
    return "en" if letters > 3 * cjk else "zh"


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
    "invalid": Text("抱歉，没有识别到有效的信息。", "Sorry, I couldn't read that."),
    "handoff": Text(
        "已为您登记转人工，客服会尽快与您联系。", "I've asked a human agent to take over; they'll be with you shortly."
    ),
}


def builtin(key: str, lang: Lang, **values: str) -> str:
    """A built-in repair text in ``lang`` with ``{value}``-style fields filled."""
    return render(BUILTIN[key].get(lang), values)
