"""CPU cost of the privacy and safety steps of a turn, in-process (no server): what each adds per turn or chunk.

- ``screen``: the moderation lexicon (the demo bot's ``moderation.yaml``) on a shopper message of N characters;
- ``mask_history``: placeholders for a 50-message history with numbers in it (what each model turn does);
- ``stream``: one 600-character answer streamed in 1-character chunks through the output step (placeholders
  restored + hold-back check) versus straight to the writer's buffer.

    .venv/bin/python -m benchmarks.privacy
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

from kefu.config import DEMO_BOT_DIR
from kefu.content.problems import Problems
from kefu.engine.output import ModelOutput
from kefu.engine.writer import DeltaWriter
from kefu.moderation import load_moderation
from kefu.pii import Pseudonyms

MESSAGE = "你好，我上周买的跑鞋DD20261105002还没到，手机13800138000，麻烦帮我看看物流到哪里了，急用，谢谢！" * 6
HISTORY = [
    ("我的手机号是 138 0013 8000，订单 DD20261105002" if i % 5 == 0 else "好的，我帮您查一下这个订单的物流情况。")
    for i in range(50)
]
ANSWER = "您好，您的订单已经发货，快递正在派送中，预计明天送达。如有问题请随时联系我们。" * 15


def timed(fn: Callable[[], object], *, repeat: int, number: int) -> tuple[float, float]:
    """Median and min of ``repeat`` runs, in microseconds per call."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(runs), min(runs)


async def _noop(events: list[tuple[str, str]]) -> int:
    return 1


def stream(moderated: bool) -> None:
    writer = DeltaWriter(_noop, interval=0)  # not started: write() only buffers, as between two writer ticks
    names = Pseudonyms()
    names.mask("13800138000")
    out = ModelOutput(writer, names, MODERATOR if moderated else None)
    for ch in ANSWER:
        out.write(ch)
    out.close()


def bare() -> None:
    writer = DeltaWriter(_noop, interval=0)
    for ch in ANSWER:
        writer.write(ch)


MODERATOR, _ = load_moderation(DEMO_BOT_DIR, Problems())


def main() -> None:
    asyncio.set_event_loop(asyncio.new_event_loop())
    message = MESSAGE[:500]
    rows = [
        ("screen 500-char message", timed(lambda: MODERATOR.check(message), repeat=7, number=2000)),
        ("screen 20-char message", timed(lambda: MODERATOR.check("在吗？运费多少，包邮吗亲"), repeat=7, number=20000)),
        (
            "mask 50-message history",
            timed(lambda: [Pseudonyms().mask(m) for m in HISTORY], repeat=7, number=500),
        ),
        ("600-char answer, bare writer", timed(bare, repeat=7, number=200)),
        ("600-char answer, placeholders only", timed(lambda: stream(False), repeat=7, number=200)),
        ("600-char answer, placeholders + hold-back", timed(lambda: stream(True), repeat=7, number=200)),
    ]
    print(f"{'step':45} {'median µs':>10} {'min µs':>10}")
    for name, (median, low) in rows:
        print(f"{name:45} {median:10.1f} {low:10.1f}")
    print(f"(the demo lexicon: {sum(1 for _ in MODERATOR.categories)} categories, window {MODERATOR.window})")


if __name__ == "__main__":
    main()
