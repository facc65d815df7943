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
_FILLERS = re.compile(
    r"[吧啊呀哦嗯啦哈呢了的滴哒嘞]|那就|那|还是|直接|我|先|谢谢|麻烦(?:你|您)?了|辛苦(?:你|您)?了|亲"
    r"|thanks|thank you|please|pls|请|\s+"
)
_YES = (
    *("是的", "是", "确认", "确定", "好的", "好", "对的", "对", "可以", "没问题", "行", "提交", "嗯嗯", "嗯", "恩"),
    *("没错", "同意", "要", "需要", "办吧", "就这样", "就这个", "确认提交", "确定提交", "帮我提交", "改吧", "退吧"),
    *("yes", "yeah", "yep", "yup", "y", "ok", "okay", "sure", "confirm", "go ahead", "do it", "correct", "right"),
)
_NO = (
    *("不是", "不对", "不要", "不用", "不行", "不确认", "不", "否", "别", "不了", "先不"),
    *("no", "nope", "n", "don't", "dont", "nah", "not now"),
)
_CORRECTION = re.compile(
    r"不对|错了|搞错|写错|填错|输错|打错|说错|选错|点错|弄错|应该是|应该选|改成|改为|换成|更正|更改|改一下|不是.{0,12}是"
    r"|\bactually\b|\bi meant\b|\bwrong\b|\bshould be\b|\bchange (?:it )?to\b|\bcorrection\b|\bmistake\b",
    re.IGNORECASE,
)
_VALUE_AFTER = re.compile(
    r"(?:应该是|改成|改为|换成|更正为|更改为|更新为|正确的是|\bshould be\b|\bchange (?:it )?to\b|\bit'?s\b)[:：\s]*",
    re.IGNORECASE,
)


def _plain(text: str) -> str:
    return normalize(text)


_LATER = (
    r"(?:等我)?(?:等会儿?|等一会儿?|等下|等一下|过会儿?|过一会儿?|晚点|晚些|稍后|回头|改天|以后|下次|明天|有空|有时间)"
)
# "不弄了" / "先不改了" / "不想退了" / "不用查了" / "算了不查了": a message made only of such units cancels; "不退款
# 换货" does not (it asks for something else), nor does "不想要了" (a reason for a return).
_STOP_VERBS = "弄 改 查 退 办 问 换 修改 处理 申请 搞 看 操作 提交 退货 退款 改地址 查询 麻烦 折腾 等 买 换货 填 输"
# longest first, so "不退款了" is read as 不 + 退款 + 了 and not 不 + 退 + "款了"
_STOP_VERB = "(?:" + "|".join(sorted(_STOP_VERBS.split(), key=len, reverse=True)) + ")"
_CANCEL_UNIT = re.compile(
    rf"(?:暂时|暂且|现在|这个|这单|就|先)?(?:不用|不想|不需要|不要|没必要|懒得|不|别)(?:再)?(?:帮我|给我)?{_STOP_VERB}{{1,2}}"
    r"(?:了|啦)?"
    # thinking it over: "我再考虑一下" / "考虑考虑" / "再说吧" / "再看看吧" / "先不了"
    r"|(?:我)?(?:再|先)?考虑(?:一下|下|考虑)?|再说|再看看|再想一?想|先不了|先不用"
    # doing it oneself: "我自己去查吧" / "我自己看"
    r"|(?:我)?自己(?:去|来)?(?:看|查|找|弄|改|处理|搞定?)(?:一下|下|看)?"
    r"|取消掉|取消申请|撤销|撤回|nvm|(?:i ?'?m|i am) (?:good|fine|ok|okay)"
    # keeping what there is: "就原来的地址吧" / "保持原地址" / "留着吧" / "i'll keep it"
    r"|(?:就|还是|保持|用|维持)?(?:原来|原先|原|之前|以前)的?(?:那个)?(?:收货)?地址(?:吧)?(?:就行|就好|就可以|不变|不动)?"
    r"|(?:就|还是)?(?:原来|原先|之前)的?(?:就行|就好|就可以)|(?:我)?(?:还是)?留着(?:用|吧)?"
    r"|(?:i ?'?ll |i will |i want to |gonna |i'?m going to )?keep (?:it|them|the item|the address)"
    r"|cancel (?:the|this|my) (?:return|request|application|change|refund)"
    r"|(?:don ?'?t|do not|no need to) (?:change|return|refund|submit|track|check|bother|do)"
    r"(?: it| that| this| anything)?"
    r"|算了|不用了|不用|没事了|没事|没关系|取消|退出|结束|不需要了|不需要|不必了|不必|拉倒|罢了"
    r"|never ?mind|forget (?:about )?it|forget that|no thanks|no thank you|don'?t bother|not anymore|no need"
    r"|(?:i )?don'?t need (?:it|that|this) (?:any ?more)?|cancel(?: it| that| this)?|stop|quit|exit"
    r"|(?:i ?'?ll |i will )?leave it|maybe later|not now|先这样|再想想|稍后再说|以后再说|回头再说|改天再说"
    # putting it off: "等会再弄" / "回头再说" / "晚点再办吧" / "改天再来" / "do it later"
    rf"|{_LATER}(?:再|在)(?:说|来|看|{_STOP_VERB})"
    r"|(?:i ?'?ll |let me |i will )?(?:do|deal with|sort) (?:it|this|that)(?: out)? later|later then|another time"
    r"|不(?:用|必)(?:了|啦)?麻烦(?:你|您)?(?:了|啦)?|别麻烦(?:你|您)?了|不麻烦(?:你|您)?了|不劳烦了"
    r"|not needed|no longer needed"
)

_CANCEL_FILLERS = re.compile(
    r"\b(?:nah|nope|no|um+|uh+|oh|well|ok|okay|actually|just|then|ah|eh|hmm+|sorry)\b|[哦噢喔嗯唉哎诶额呃嘛了]"
    r"|暂时|暂且|现在|目前|这边|您|你|想了想|想了一下|考虑了一下|等等|\bwait\b"
    r"|\b(?:pls|plz|please|thanks|thx|ty)\b|好吧|好的|行吧|那好|好"
    # the why that often comes with a cancel: "太麻烦了 算了" / "不查了 已经收到了" / "不用了 我找到了"
    r"|(?:太|好|真)?麻烦(?:死)?|(?:我)?(?:已经)?(?:收到|找到|拿到|到|搞定|解决)(?:货)?|i found it|found it|got it"
)


def is_cancel(text: str) -> bool:
    """True for "算了" / "不用了" / "取消" / "不弄了" / "先不改了" / "never mind" and the like (the whole message is
    made of cancel words; "算了，…" cancels whatever follows)."""
    said = _plain(text)
    if said in _CANCEL or _FILLERS.sub("", said) in {c.replace(" ", "") for c in _CANCEL}:
        return True
    opener = next((o for o in _CANCEL_OPENERS if said.startswith(o)), None)
    if opener is not None:
        # "算了还是退吧" takes the cancel back ("let's do it after all"); "算了还是别改了" does not
        rest = said[len(opener) :].strip(" ,.!")
        after_all = next((a for a in _AFTER_ALL if rest.startswith(a)), None)
        return after_all is None or _only_cancel_units(rest[len(after_all) :].strip(" ,.!"))
    if _only_cancel_units(said):
        return True
    # a closing cancel after something else: "忘了后四位 算了" / "还是原地址吧 不改了" (Chinese clauses only: an
    # English "no thanks" is one clause)
    clauses = [c for c in _CLAUSE.split(said) if c.strip()]
    # the clause must close ("不改了", "算了吧"): "换货 不退款" states a wish, not a change of mind
    return len(clauses) > 1 and clauses[-1].endswith(("了", "吧", "啦")) and _only_cancel_units(clauses[-1])


_CLAUSE = re.compile(r"[,.!;]|(?<=[\u4e00-\u9fff])\s+|\s+(?=[\u4e00-\u9fff])")
_AFTER_ALL = ("我还是", "还是", "那就", "直接", "继续", "帮我", "我要", "let's", "lets", "just")


def _only_cancel_units(said: str) -> bool:
    rest = _CANCEL_UNIT.sub(" ", said)
    return rest != said and not _FILLERS.sub("", _CANCEL_FILLERS.sub(" ", rest)).strip(" ,.!")


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


_CORRECTION_LEAD = (
    r"^\s*(?:{names})?\s*(?:也|又)?(?:(?:写错了|填错了|输错了|打错了|搞错了|弄错了|说错了|选错了|点错了|错了|不对)[了啦]?"
    r"[，,。.!！\s]*)*(?:应该是|正确的是|应该选|应该选择|要选|选|是|为|改成|改为|换成)?[:：\s]*"
)


def value_after_correction(text: str, names: tuple[str, ...]) -> str | None:
    """A corrected whole-message value: what follows "应该是 / 改成 …", else the message without its leading
    "地址写错了 是" (``names`` are the words naming the slot), or None when nothing is left."""
    after = value_after_marker(text)
    if after:
        return after
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True) if n)
    lead = re.compile(_CORRECTION_LEAD.format(names=alternatives or "(?!)"), re.IGNORECASE)
    rest = lead.sub("", text, count=1).strip(" ,，。.!！")
    return rest if rest and rest != text.strip() else None


_QUESTION = re.compile(
    r"[?？]|吗|呢|么|多少|多久|多长|怎么|怎样|咋|如何|几|什么|啥|哪|为什么|为啥|是否|能否|能不能|可不可以|可以|会不会"
    r"|是不是|要不要|支持|有没有|请问"
    r"|\b(how|what|when|where|why|which|who|can|could|do|does|is|are|will|should)\b",
    re.IGNORECASE,
)


def is_question(text: str) -> bool:
    """True when ``text`` reads as a question (so a bare answer like "杭州" is not taken for one)."""
    return bool(_QUESTION.search(text))


# "稍等" / "我找一下单号" / "等我看下手机" / "hold on, let me find it": the shopper is fetching the answer, so the
# step waits for it (asked again, no attempt counted). Only short messages count: a long one says more.
_HOLD_ON = re.compile(
    r"稍等|稍候|等一?下|等等|等我|等会儿?|马上|一会儿?就|"
    r"(?:我|让我|容我)(?:去|先)?(?:找|查|翻|看|想|问|拿|瞧|对)(?:一下|一找|一查|一翻|一看|一想|一问|下|找|查|翻|看|想|问|哈)"
    r"|(?:找|翻)(?:一下|一找|一翻|找|翻|下)"
    # about to send it: "好的 我发你" / "马上发" / "i'll send it"
    r"|(?:我|这就|马上|现在)(?:就|马上)?发(?:你|给你|过来|过去)?|\bi ?'?ll send\b"
    # thinking noises on their own: "emmm" / "额" / "hmm"
    r"|^(?:e?m{2,}|hm+|umm*|uh+|额+|呃+)$"
    r"|\b(?:hold on|hang on|wait|one (?:sec|second|moment|min|minute)|just a (?:sec|second|moment|minute)"
    r"|give me a (?:sec|second|moment|minute)|a sec|brb|let me (?:find|check|look|see|think|get))\b",
    re.IGNORECASE,
)
HOLD_ON_MAX_LENGTH = 32


def is_holding_on(text: str) -> bool:
    """True for "稍等我找下单号" / "等一下哈" / "我看下手机号" / "hold on a sec" (asks the bot to wait)."""
    said = _plain(text)
    return len(said) <= HOLD_ON_MAX_LENGTH and _HOLD_ON.search(said) is not None and not is_question(said)


# Laughter, acknowledgements and hurry-ups with nothing else ("哈哈", "ok的", "知道啦", "麻烦快点", "👌", "..."):
# chatter, not an answer (small talk proper is kefu.text.smalltalk's; this catches its looser forms).
_CHATTER = re.compile(
    r"[哈呵嘿嘻嗯恩哦噢喔啦了的呢呀啊吧亲滴哒]+|(?<![a-z])(?:ok|okay|okk|k|lol|haha+|hehe)(?![a-z])|好|知道|明白|收到|懂"
    r"|快点|快|麻烦|急|赶紧|尽快|抓紧|\s+"
)


def is_chatter(text: str) -> bool:
    """True for a message of only laughter, acknowledgements, hurry-ups, emoji or punctuation."""
    return not _CHATTER.sub("", _plain(text))


_WRONG_ONLY = re.compile(r"不是(?:的|这样|这个|这些)?|不太对|有问题|有误|\bwrong\b|\bnot right\b|\bthat'?s not it\b")


def says_wrong(text: str) -> bool:
    """True for "不对" / "错了" / "不是的" / "地址写错了" / "that's wrong": something is wrong, but no new value yet
    (at a confirmation: ask what to change rather than cancel)."""
    said = _plain(text)
    return bool(_CORRECTION.search(said) or _WRONG_ONLY.search(said))
