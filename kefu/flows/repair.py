"""Recognising the built-in repair moves in a message: cancel, yes / no, and corrections."""

from __future__ import annotations

import re

from kefu.text.normalize import normalize

# Whole-message cancels ("取消订单" is a request, not a cancel) …
_CANCEL = frozenset(
    {"取消", "不用", "不用了", "算了", "不办了", "不弄了", "退出", "结束", "不需要了", "cancel", "stop", "quit", "exit"}
    | {"never mind", "nevermind", "forget it", "no thanks", "cancel it"}
)
# … and openers that cancel whatever follows ("算了，不退了").
_CANCEL_OPENERS = ("算了", "不用了", "never mind", "nevermind", "forget it")
_FILLERS = re.compile(r"[吧啊呀哦嗯啦哈呢]|那就|那|还是|我|先|谢谢|thanks|thank you|please|请|\s+")
_YES = (
    *("是的", "是", "确认", "确定", "好的", "好", "对的", "对", "可以", "没问题", "行", "提交", "嗯嗯"),
    *("yes", "yeah", "yep", "y", "ok", "okay", "sure", "confirm", "go ahead"),
)
_NO = (*("不是", "不对", "不要", "不用", "不行", "不确认", "不", "否", "别"), *("no", "nope", "n", "don't", "dont"))
_CORRECTION = re.compile(
    r"不对|错了|搞错|写错|填错|输错|打错|说错|应该是|改成|改为|换成|更正|更改|改一下|不是.{0,12}是"
    r"|\bactually\b|\bi meant\b|\bwrong\b|\bshould be\b|\bchange (?:it )?to\b|\bcorrection\b|\bmistake\b",
    re.IGNORECASE,
)
_VALUE_AFTER = re.compile(
    r"(?:应该是|改成|改为|换成|更正为|更改为|更新为|正确的是|\bshould be\b|\bchange (?:it )?to\b|\bit'?s\b)[:：\s]*",
    re.IGNORECASE,
)


def _plain(text: str) -> str:
    return normalize(text)


def is_cancel(text: str) -> bool:
    """True for "算了" / "不用了" / "取消" / "cancel" / "never mind" and the like (as the whole message)."""
    said = _plain(text)
    if said in _CANCEL or _FILLERS.sub("", said) in {c.replace(" ", "") for c in _CANCEL}:
        return True
    return any(said.startswith(opener) for opener in _CANCEL_OPENERS)


def _only(said: str, words: tuple[str, ...]) -> bool:
    rest = f" {said} "
    found = False
    for word in sorted(words, key=len, reverse=True):
        pattern = rf"(?<![a-z]){re.escape(word)}(?![a-z])" if word.isascii() else re.escape(word)
        rest, count = re.subn(pattern, " ", rest)
        found = found or count > 0
    return found and not _FILLERS.sub("", rest).strip()


def yes_no(text: str) -> bool | None:
    """True for a plain yes ("是/确认/好的/对/yes/ok"), False for a plain no, None for anything else."""
    said = _plain(text)
    if not said:
        return None
    yes, no = _only(said, _YES), _only(said, _NO)
    if yes == no:
        return None
    return yes


def is_correction(text: str) -> bool:
    """True when the message says an earlier answer was wrong ("不对,是5678", "改成 DD2026…", "actually …")."""
    return bool(_CORRECTION.search(text))


def value_after_marker(text: str) -> str | None:
    """What follows "应该是 / 改成 / should be …" (a corrected free-text value), or None."""
    matches = list(_VALUE_AFTER.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end() :].strip(" ,，。.!！")
    return rest or None


_QUESTION = re.compile(
    r"[?？]|吗|呢|么|多少|多久|多长|怎么|怎样|咋|如何|几|什么|啥|哪|为什么|为啥|是否|能否|能不能|可不可以|可以|会不会"
    r"|是不是|要不要|支持|有没有|请问"
    r"|\b(how|what|when|where|why|which|who|can|could|do|does|is|are|will|should)\b",
    re.IGNORECASE,
)


def is_question(text: str) -> bool:
    """True when ``text`` reads as a question (so a bare answer like "杭州" is not taken for one)."""
    return bool(_QUESTION.search(text))
