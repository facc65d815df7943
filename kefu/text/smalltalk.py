"""Small talk: a message that is only a greeting, thanks, goodbye, an acknowledgement, "are you a robot?" or a
complaint about the bot — never a question for the FAQ or a task.

:func:`small_talk` looks at the whole message: "在吗" and "亲 在不在" are greetings, "你好，我想退货" is not small
talk (the greeting opens a request). What a bot says back lives in its texts (``smalltalk_*`` keys).
"""

from __future__ import annotations

import re
from typing import Literal

from kefu.text.normalize import normalize

SmallTalk = Literal["greeting", "thanks", "bye", "ack", "robot", "frustration"]

# Phrases that make up a small-talk message, by kind. English phrases match as whole words.
_PHRASES: dict[SmallTalk, tuple[str, ...]] = {
    "greeting": (
        *("在吗", "在嘛", "在么", "在不在", "在没", "在否", "在的吗", "在线吗", "在", "有人吗", "有人在吗", "有没有人"),
        *("客服", "客服在吗", "你好", "您好", "你们好", "哈喽", "哈罗", "嗨", "嘿", "喂", "亲", "亲亲", "亲们", "老板"),
        *("掌柜", "店家", "早", "早上好", "上午好", "中午好", "下午好", "晚上好", "hi", "hello", "hey", "hallo", "yo"),
        *(
            "hi there",
            "hello there",
            "good morning",
            "good afternoon",
            "good evening",
            "anyone there",
            "anybody there",
            "is anyone there",
        ),
        *("are you there", "u there", "you there"),
    ),
    "thanks": (
        *("谢谢", "谢啦", "谢了", "多谢", "感谢", "非常感谢", "谢谢你", "谢谢您", "谢谢亲", "辛苦了", "辛苦", "麻烦了"),
        *("麻烦你了", "3q", "thx", "thanks", "thank you", "thank u", "ty", "many thanks", "cheers"),
    ),
    "bye": (
        *("拜拜", "拜", "再见", "88", "886", "下次见", "回见", "没事了", "没有了", "没别的了", "没其他问题了"),
        *("bye", "bye bye", "goodbye", "see you", "see ya", "that's all", "thats all"),
    ),
    "ack": (
        *("好的", "好滴", "好哒", "好", "嗯", "嗯嗯", "恩", "恩恩", "哦", "噢", "喔", "哦哦", "ok", "okay", "okk"),
        *("知道了", "明白了", "明白", "了解", "了解了", "收到", "懂了", "行", "行吧", "可以", "好吧"),
        *("got it", "i see", "alright", "all right", "fine", "cool", "noted", "sure"),
    ),
    "robot": (),  # a question, recognised by _ROBOT below
    "frustration": (
        *("听不懂", "你听不懂", "答非所问", "没用", "真没用", "太笨了", "你好笨", "好笨", "笨", "智障", "废物", "垃圾"),
        *("useless", "stupid bot", "you're useless", "not helpful"),
    ),
}
# The kind a message of several phrases counts as ("好的 谢谢" thanks, "谢谢 拜拜" goodbye).
_PRIORITY: tuple[SmallTalk, ...] = ("robot", "frustration", "bye", "thanks", "greeting", "ack")
_BOTS = r"(?:机器人|真人|人工|ai|人|自动回复|智能客服|机器)"
_ROBOT = re.compile(
    rf"^(?:请问)?(?:你|您|这|对面)?(?:是不是|到底是|真的是|是)(?:个|一个)?{_BOTS}(?:客服)?"
    rf"(?:吗|嘛|么|吧|啊|呀|还是{_BOTS})?$"
    r"|^(?:请问)?(?:你|您|这)(?:个|一个)?(?:机器人|真人|ai|自动回复|智能客服)(?:客服)?(?:吗|嘛|么)$"
    r"|^(?:机器人|真人|ai|自动回复)(?:吗|嘛|么)$"
    r"|^(?:are|r) (?:you|u) (?:a )?(?:bot|robot|human|real|real person|an? ai|ai|a person|a machine)$"
    r"|^is this (?:a )?(?:bot|robot|human|real person|ai|a real person)$"
)
# Particles, interjections and emoticons that carry no meaning of their own here.
_FILLER = re.compile(r"[啊呀呢哦吧啦嘛哈嘿呐哇~～]|\s+|[\U0001F300-\U0001FAFF\u2600-\u27BF]")


def _phrase_pattern() -> re.Pattern[str]:
    phrases = sorted({normalize(p) for ps in _PHRASES.values() for p in ps if normalize(p)}, key=len, reverse=True)
    alternatives = [rf"(?<![a-z0-9]){re.escape(p)}(?![a-z0-9])" if p.isascii() else re.escape(p) for p in phrases]
    return re.compile("|".join(alternatives))


_PATTERN = _phrase_pattern()
_KIND = {normalize(p): kind for kind in reversed(_PRIORITY) for p in _PHRASES[kind]}
_MAX_CHARS = 40  # longer messages carry more than small talk


def small_talk(text: str) -> SmallTalk | None:
    """The kind of small talk ``text`` is, or None when it says anything more (a question, a request, data)."""
    said = normalize(text)
    if not said or len(said) > _MAX_CHARS:
        return None
    compact = _FILLER.sub("", said) if not said.isascii() else said
    if _ROBOT.match(compact) or _ROBOT.match(said):
        return "robot"
    kinds: set[SmallTalk] = set()

    def take(match: re.Match[str]) -> str:
        kinds.add(_KIND[match.group(0)])
        return " "

    rest = _PATTERN.sub(take, said)
    if _FILLER.sub("", rest).strip():
        return None
    return next((kind for kind in _PRIORITY if kind in kinds), None)
