"""Micro-benchmark of the moderation lexicon (kefu.moderation), in-process: what a check costs per message.

- ``check`` on 500-character shopper messages against the demo bot's ``moderation.yaml``: ordinary text, text
  full of characters that occur in terms (the automaton has work to do), and text with several hits (masked,
  flagged, the positions mapped back);
- the same with a lexicon of 20 000 terms (the cost does not depend on the lexicon's size);
- a 600-character answer streamed through ``check(partial=True)`` + ``pending`` one and three characters at a
  time, as kefu.engine.output does.

    .venv/bin/python -m benchmarks.moderation
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

from kefu.config import DEMO_BOT_DIR
from kefu.content.problems import Problems
from kefu.moderation import Category, Moderator, load_moderation

ORDINARY = (
    "你好，我上周买的跑鞋DD20261105002还没到，麻烦帮我看看物流到哪里了，急用，谢谢！"
    "另外想问下这款有没有42码的，颜色想要黑色，Size guide 上写的偏大半码对吗？"
)
# Every character below occurs in some term of the demo lexicon, but the text has no term.
SUSPECT = "加班的时候傻傻等着，信号差，微微一笑，开发新品，发票开好了吗，私人定制，洗衣液套装，滚筒洗衣机，操场跑步鞋。"
HITS = "你们客服是傻 逼吗，什么垃圾东西！加V私聊，fuck，加我微信发你图片，"
ANSWER = "您好，您的订单已经发货，快递正在派送中，预计明天送达。加班加点为您处理，有问题随时联系我们。" * 7


def sized(text: str, size: int = 500) -> str:
    return (text * (size // len(text) + 1))[:size]


def timed(fn: Callable[[], object], *, repeat: int = 7, number: int = 2000) -> tuple[float, float]:
    """Median and min of ``repeat`` runs, in microseconds per call."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(runs), min(runs)


def big_lexicon(count: int = 20_000) -> Moderator:
    rng = random.Random(14)
    terms = {"".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(rng.randint(2, 5))) for _ in range(count)}
    return Moderator.build({"big": Category("big", "mask")}, {"big": sorted(terms)})


def stream(moderator: Moderator, text: str, size: int) -> str:
    """What the shopper sees of ``text`` streamed ``size`` characters at a time (kefu.engine.output's loop)."""
    shown, held = [], ""
    for i in range(0, len(text) + size, size):
        final = i >= len(text)
        held += text[i : i + size]
        if not moderator.may_hit(held):
            shown.append(held)
            held = ""
            continue
        verdict = moderator.check(held, where="output", partial=not final)
        held = verdict.text
        cut = len(held) if final else moderator.pending(held)
        shown.append(held[:cut])
        held = held[cut:]
    return "".join(shown)


def main() -> None:
    demo, _ = load_moderation(DEMO_BOT_DIR, Problems())
    big = big_lexicon()
    ordinary, suspect, hits = sized(ORDINARY), sized(SUSPECT), sized(HITS)
    assert demo.check(ordinary).action == "allow" and demo.check(suspect).action == "allow"
    assert len(demo.scan(hits)) > 30
    rows = [
        ("demo lexicon, 500 chars, ordinary", timed(lambda: demo.check(ordinary))),
        ("demo lexicon, 500 chars, term characters, no hit", timed(lambda: demo.check(suspect))),
        (f"demo lexicon, 500 chars, {len(demo.scan(hits))} hits", timed(lambda: demo.check(hits), number=500)),
        ("demo lexicon, 20 chars", timed(lambda: demo.check("在吗？运费多少，包邮吗亲"), number=20000)),
        (f"{big.term_count} terms, 500 chars, ordinary", timed(lambda: big.check(ordinary))),
        (f"{big.term_count} terms, 500 chars, term characters", timed(lambda: big.check(suspect))),
        ("600-char answer streamed 1 char at a time", timed(lambda: stream(demo, ANSWER, 1), number=50)),
        ("600-char answer streamed 3 chars at a time", timed(lambda: stream(demo, ANSWER, 3), number=100)),
    ]
    print(f"{'check':52} {'median µs':>10} {'min µs':>10}")
    for name, (median, low) in rows:
        print(f"{name:52} {median:10.1f} {low:10.1f}")
    print(f"(demo lexicon: {demo.term_count} terms in {len(demo.categories)} categories)")


if __name__ == "__main__":
    main()
