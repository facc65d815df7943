"""The seed scenario: 300 concurrent simulated shoppers, each asking 5 questions with think time in between.

The original write-up's load was 300 concurrent users and an 80 QPS target. Each shopper arrives during the
first ``--ramp`` seconds, asks a question, reads the streamed answer to its end, thinks (exponential, mean
``--think`` seconds, capped at 4x), and asks the next one in the same session. Questions are a mix of FAQ
questions the demo shop's knowledge base answers directly (``source`` faq, no model call) and questions only the
model can answer (made specific to the shopper, so the shared-answer cache cannot serve them).

kefu runs with the demo shop bot (its knowledge base), default settings except that rate limits by IP are off
(every simulated shopper comes from 127.0.0.1); the model is ``kefu mock-llm`` (default: 0.5 s to first token,
then 60 characters at 30/s in 2-character chunks, about 2.5 s per answer, as a hosted model streams). The load
generator runs in its own process.

    .venv/bin/python -m benchmarks.seed                        # 300 shoppers x 5 questions
    .venv/bin/python -m benchmarks.seed --quick                # 30 shoppers x 2 questions
    .venv/bin/python -m benchmarks.seed --workers 2 --redis redis://127.0.0.1:6379/0 --postgres postgresql+asyncpg://…
    .venv/bin/python -m benchmarks.seed --tree /tmp/kefu-before --out …   # kefu imported from another source tree
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import (
    RESULTS,
    BenchServer,
    Step,
    User,
    describe_machine,
    machine,
    measure,
    ms,
    peak_overlap,
    raise_fd_limit,
    start_bench_mock,
    summarize,
    write_json,
)
from tests.support import JWT_SECRET, free_port, token_for

# Answered by the demo shop's knowledge base (FAQ) without the model.
FAQ_QUESTIONS = [
    "运费怎么算？",
    "什么时候发货",
    "怎么退货",
    "退款多久到账？",
    "退货运费谁出？",
    "怎么查物流？",
    "发货后几天能收到？",
    "支持七天无理由退货吗？",
    "可以指定顺丰吗",
    "能寄香港吗",
]
# Need the model; {n} makes each one specific to its shopper.
MODEL_QUESTIONS = [
    "我身高{n}厘米，平时穿M码，你们家的卫衣我该选哪个码？",
    "想给{n}岁的妈妈买件外套，有什么推荐吗？",
    "上次买的牛仔裤洗了{n}次有点褪色，正常吗？",
    "我预算{n}元左右，想要一件春天穿的薄外套，怎么选？",
    "白色T恤和米色T恤哪个更百搭？我皮肤偏黄，今年{n}岁",
    "羊毛衫洗了{n}次起球了怎么处理？",
]


def shopper(i: int, rng: random.Random, args: argparse.Namespace, url: str) -> User:
    headers = {"Authorization": f"Bearer {token_for(f'shopper-{i}', ttl=7200)}"}
    steps = []
    for n in range(args.questions):
        if rng.random() < args.faq_share:
            tag, text = "faq", rng.choice(FAQ_QUESTIONS)
        else:
            tag, text = "model", rng.choice(MODEL_QUESTIONS).format(n=150 + (i * 7 + n) % 400)
        think = 0.0 if n == 0 else min(rng.expovariate(1 / args.think), 4 * args.think)
        steps.append(Step("chat", f"{url}/v1/chat", {"message": text}, headers, think, tag, carry_session=True))
    return User(rng.uniform(0, args.ramp), steps)


def peak_rate(records: list[dict[str, Any]], window: float) -> float:
    """Most questions started within any ``window`` seconds, per second."""
    starts = sorted(r["started"] for r in records)
    best, lo = 0, 0
    for hi, t in enumerate(starts):
        while t - starts[lo] > window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best / window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="30 shoppers x 2 questions")
    parser.add_argument("--shoppers", type=int, default=300)
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--think", type=float, default=2.5, help="mean think time between questions (s)")
    parser.add_argument("--ramp", type=float, default=3.0, help="shoppers arrive over this many seconds")
    parser.add_argument("--faq-share", type=float, default=0.5, help="share of questions the FAQ answers")
    parser.add_argument("--ttft", type=float, default=0.5)
    parser.add_argument("--tps", type=float, default=30.0)
    parser.add_argument("--tokens", type=int, default=60)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--redis", default=None)
    parser.add_argument("--postgres", default=None, help="postgresql+asyncpg:// URL (default: SQLite)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "seed.json")
    parser.add_argument("--tree", default=None, help="import the kefu under test from this source tree (e.g. a before)")
    args = parser.parse_args()
    if args.quick:
        args.shoppers, args.questions = 30, 2
        args.out = args.out.with_name("seed-quick.json")
    raise_fd_limit()
    info = machine()
    workdir = Path(tempfile.mkdtemp(prefix="kefu-seed-"))
    mock_args = ["--ttft", str(args.ttft), "--tps", str(args.tps), "--tokens", str(args.tokens)]
    mock = start_bench_mock(workdir, *mock_args, "--chunk-chars", "2")
    env = {
        "KEFU_JWT_SECRET": JWT_SECRET,
        "KEFU_LLM_BASE_URL": mock.url + "/v1",
        "KEFU_LLM_API_KEY": "sk-bench",
        "KEFU_LLM_MODEL": "mock-chat",
        "KEFU_DATABASE_URL": args.postgres or f"sqlite+aiosqlite:///{workdir / 'kefu.db'}",
        "KEFU_LOG_LEVEL": "warning",
        "KEFU_RATE_LIMIT_IP": "off",
    }
    if args.tree:
        env["PYTHONPATH"] = str(Path(args.tree).resolve())
    if args.redis:
        env |= {"KEFU_REDIS_URL": args.redis, "KEFU_REDIS_PREFIX": f"kefu-seed-{free_port()}"}
    server = BenchServer(env=env, workdir=workdir, port=free_port(), workers=args.workers).start()
    assert server.proc is not None
    try:
        rng = random.Random(args.seed)
        users = [shopper(i, rng, args, server.url) for i in range(args.shoppers)]
        res = measure(users, {"server": server.proc.pid, "mock": mock.proc.pid}, workdir, timeout=300)
        records = res["records"]
        span = max(r["started"] + (r["total"] or 0) for r in records) - min(r["started"] for r in records)
        by_tag: dict[str, Any] = {}
        for tag in ("faq", "model"):
            rows = [r for r in records if r["tag"] == tag]
            by_tag[tag] = summarize(rows, span)
            by_tag[tag]["sources"] = {
                s: sum(1 for r in rows if r["source"] == s) for s in sorted({r["source"] for r in rows})
            }
        overall = {k: v for k, v in res.items() if k not in ("records", "series")}
        result = {
            "machine": info,
            "command": " ".join(["python -m benchmarks.seed", *sys.argv[1:]]),
            "settings": {k: v for k, v in vars(args).items() if k != "out"},
            "overall": overall,
            "by_tag": by_tag,
            "qps": len(records) / span,
            "qps_peak_5s": peak_rate(records, 5.0),
            "peak_open": peak_overlap(records),
            "span_s": span,
        }
        write_json(args.out, result)
        print(f"machine: {describe_machine(info)}")
        print(
            f"{args.shoppers} shoppers x {args.questions} questions, think mean {args.think:g}s, "
            f"FAQ share {args.faq_share:g}; mock ttft {args.ttft}s, {args.tokens} chars at {args.tps}/s; "
            f"{args.workers} worker(s), {'redis' if args.redis else 'memory'}, "
            f"{'postgres' if args.postgres else 'sqlite'}"
        )
        print(
            f"{len(records)} questions in {span:.1f}s = {result['qps']:.1f} QPS on average, "
            f"{result['qps_peak_5s']:.1f} in the busiest 5 s (the shoppers' own pace), "
            f"peak {result['peak_open']} streams open, {overall['late']} late starts"
        )
        print("| questions | count | errors | error % | TTFT p50 / p95 ms | total p50 / p95 ms | answered by |")
        print("|---|---|---|---|---|---|---|")
        for tag, s in [("all", overall), *by_tag.items()]:
            sources = s.get("sources", "")
            print(
                f"| {tag} | {s['requests']} | {s['errors']} | {100 * s['error_rate']:.2f} | "
                f"{ms(s['ttft_p50'])} / {ms(s['ttft_p95'])} | {ms(s['total_p50'])} / {ms(s['total_p95'])} | "
                f"{sources} |"
            )
        cpu = overall["cpu"]
        print(
            f"CPU s: kefu {cpu['server']:.1f}, mock {cpu['mock']:.1f}, load generator {cpu['loadgen']:.1f} "
            f"over {span:.0f}s; kefu peak RSS {overall['peak_rss_mb']['server']:.0f} MB"
        )
        if overall["error_kinds"]:
            print(f"errors: {overall['error_kinds']}")
        print(f"results: {args.out}")
    finally:
        server.stop()
        mock.stop()


if __name__ == "__main__":
    main()
