"""Sales-peak scenario: a provider capped at C concurrent answers, offered about 10x that, with and without
kefu's upstream concurrency limiter (and the answer cache).

Starts ``kefu mock-llm --max-concurrency C`` (429 with ``Retry-After`` above the cap) and, per scenario, a fresh
``kefu serve`` process with that scenario's settings. Clients in this process send turns to ``/v1/chat`` as an
open-loop stream at a fixed arrival rate (each turn a new session of its own user; arrivals do not wait for
answers), so queueing shows up as latency instead of a lower request rate. For every turn it records where the
answer came from — the model (``source`` llm/kb), the answer cache, the degraded answer (``source`` fallback) or an
error (``error`` event, non-200, transport failure) — and the time to the first answer text. Afterwards it reads
the mock's counters (requests, 429s over the cap, peak concurrency) and kefu's ``/metrics``.

    .venv/bin/python -m benchmarks.peak --cap 5 --duration 20

The offered rate defaults to 10 x cap / service time, where service time = ttft + tokens / tps of the mock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.overhead import cpu_seconds
from kefu.config import DEMO_BOT_DIR
from tests.support import JWT_SECRET, KefuServer, MockLLM, free_port, start_mock, token_for

# A pool of ordinary shop questions for the cache scenario (repeats are what a peak looks like).
FAQ = [
    "什么时候发货？",
    "运费多少？",
    "可以开发票吗？",
    "支持七天无理由退货吗？",
    "优惠券怎么用？",
    "预售商品什么时候到？",
    "可以修改收货地址吗？",
    "怎么联系人工客服？",
    "满减活动怎么算？",
    "支持货到付款吗？",
]


@dataclass
class Scenario:
    name: str
    env: dict[str, str]
    repeat_questions: bool = False


@dataclass
class Turn:
    kind: str  # model | faq | cache | degraded | error
    ttft: float | None
    detail: str = ""


@dataclass
class Result:
    scenario: Scenario
    turns: list[Turn] = field(default_factory=list)
    mock: dict[str, object] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    peak_queue: float = 0.0
    late_starts: int = 0
    kefu_cpu: float = 0.0
    mock_cpu: float = 0.0


def empty_bot(workdir: Path) -> Path:
    """A bot with the demo system prompt and no knowledge base, so every turn needs the model."""
    bot = workdir / "bot"
    bot.mkdir()
    (bot / "system_prompt.md").write_text((DEMO_BOT_DIR / "system_prompt.md").read_text(encoding="utf-8"), "utf-8")
    return bot


async def one_turn(client: httpx.AsyncClient, token: str, question: str) -> Turn:
    start = time.perf_counter()
    ttft: float | None = None
    event = ""
    try:
        async with client.stream(
            "POST", "/v1/chat", json={"message": question}, headers={"Authorization": f"Bearer {token}"}
        ) as response:
            if response.status_code != 200:
                return Turn("error", None, f"http {response.status_code}")
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    if event == "delta" and ttft is None:
                        ttft = time.perf_counter() - start
                    elif event == "done":
                        data = json.loads(line[6:])
                        if data.get("cached"):
                            return Turn("cache", ttft)
                        if data["source"] == "fallback":
                            return Turn("degraded", ttft)
                        if data["source"] == "faq":
                            return Turn("faq", ttft)
                        return Turn("model", ttft, f"{data['source']}:{data.get('model')}")
                    elif event == "error":
                        return Turn("error", ttft, line[6:80])
    except httpx.HTTPError as exc:
        return Turn("error", ttft, type(exc).__name__)
    return Turn("error", ttft, "stream ended without done")


def scrape(text: str) -> dict[str, float]:
    """Sum each sample name over its labels (one upstream here)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name
            if sample.labels.get("result"):
                key += f"{{{sample.labels['result']}}}"
            if sample.labels.get("source"):
                key += f"{{{sample.labels['source']}}}"
            out[key] = out.get(key, 0.0) + sample.value
    return out


async def run_scenario(scenario: Scenario, mock: MockLLM, args: argparse.Namespace, rate: float) -> Result:
    workdir = Path(tempfile.mkdtemp(prefix="kefu-peak-"))
    env = {
        "KEFU_JWT_SECRET": JWT_SECRET,
        "KEFU_LLM_BASE_URL": mock.url + "/v1",
        "KEFU_LLM_API_KEY": "sk-bench",
        "KEFU_LLM_MODEL": "mock-chat",
        "KEFU_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'kefu.db'}",
        "KEFU_LOG_LEVEL": "error",
        "KEFU_RATE_LIMIT_USER": "off",
        "KEFU_RATE_LIMIT_IP": "off",
        "KEFU_RATE_LIMIT_API_KEY": "off",
        "KEFU_BOT_DIR": str(args.bot_dir or empty_bot(workdir)),
        **scenario.env,
    }
    if args.redis:
        env["KEFU_REDIS_URL"] = args.redis
    async with httpx.AsyncClient() as control:
        (await control.post(f"{mock.url}/_mock/reset")).raise_for_status()  # script and counters
    server = KefuServer(env=env, workdir=workdir, port=free_port()).start()
    result = Result(scenario)
    total = int(rate * args.duration)
    tokens = [token_for(f"peak-{i}") for i in range(total)]
    questions = [
        FAQ[i % len(FAQ)] if scenario.repeat_questions else f"第{i}号顾客问：我的快递什么时候到？" for i in range(total)
    ]
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=200)
    assert server.proc is not None
    cpu_before = cpu_seconds(server.proc.pid), cpu_seconds(mock.proc.pid)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as client:
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample_queue(client, result, stop))
            loop = asyncio.get_running_loop()
            start = loop.time()
            tasks = []
            for i in range(total):
                due = start + i / rate
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.05:
                    result.late_starts += 1
                tasks.append(asyncio.create_task(one_turn(client, tokens[i], questions[i])))
            result.turns = list(await asyncio.gather(*tasks))
            stop.set()
            await sampler
            result.metrics = scrape((await client.get("/metrics")).text)
            result.kefu_cpu = cpu_seconds(server.proc.pid) - cpu_before[0]
            result.mock_cpu = cpu_seconds(mock.proc.pid) - cpu_before[1]
            result.mock = (await client.get(f"{mock.url}/_mock/stats")).json()
    finally:
        server.stop()
    return result


async def sample_queue(client: httpx.AsyncClient, result: Result, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            metrics = scrape((await client.get("/metrics")).text)
            result.peak_queue = max(result.peak_queue, metrics.get("kefu_upstream_queue_length", 0.0))
        except httpx.HTTPError:
            pass
        try:
            await asyncio.wait_for(stop.wait(), 0.25)
        except TimeoutError:
            pass


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def share(turns: list[Turn], kind: str) -> str:
    return f"{100 * sum(t.kind == kind for t in turns) / len(turns):.1f}"


def ms(values: list[float], q: float) -> str:
    value = pct(values, q)
    return "–" if value != value else f"{value * 1000:.0f}"


def report(result: Result) -> None:
    turns = result.turns
    ttft = [t.ttft for t in turns if t.ttft is not None]
    by = {kind: [t.ttft for t in turns if t.kind == kind and t.ttft is not None] for kind in ("model", "degraded")}
    m = result.metrics
    print(
        f"| {result.scenario.name} | {len(turns)} | {share(turns, 'model')} | {share(turns, 'faq')} | "
        f"{share(turns, 'cache')} | "
        f"{share(turns, 'degraded')} | {share(turns, 'error')} | {ms(ttft, 0.5)} / {ms(ttft, 0.95)} | "
        f"{ms(by['model'], 0.5)} / {ms(by['model'], 0.95)} | {ms(by['degraded'], 0.5)} / {ms(by['degraded'], 0.95)} | "
        f"{result.mock['requests']} | "
        f"{result.mock['over_capacity']} | {result.mock['max_active']} | "
        f"{m.get('kefu_upstream_retries_total', 0):.0f} | {m.get('kefu_upstream_short_circuits_total', 0):.0f} | "
        f"{result.peak_queue:.0f} | {m.get('kefu_upstream_concurrency_limit', float('nan')):.1f} | "
        f"{result.kefu_cpu:.1f} / {result.mock_cpu:.1f} |"
    )
    errors = [t.detail for t in turns if t.kind == "error"]
    if errors:
        print(f"<!-- {result.scenario.name}: errors {statistics.multimode(errors)[:3]} -->")
    if result.late_starts:
        print(f"<!-- {result.scenario.name}: {result.late_starts} arrivals started >50 ms late (client saturated) -->")


def scenarios(cap: int, queue_timeout: float) -> dict[str, Scenario]:
    no_cache = {"KEFU_ANSWER_CACHE_TTL": "0"}
    at_cap = {"KEFU_LLM_MAX_CONCURRENCY": str(cap)}
    unlimited = {"KEFU_LLM_MAX_CONCURRENCY": "100000", "KEFU_LLM_ADAPTIVE_CONCURRENCY": "false"}
    return {
        "no-limiter": Scenario("no limiter (limit 100000, fixed)", {**no_cache, **unlimited}),
        "defaults": Scenario("defaults (limit 256, AIMD, floor 1)", {**no_cache, "KEFU_LLM_MIN_CONCURRENCY": "1"}),
        "limiter": Scenario(
            f"limiter = cap ({cap}), queue {queue_timeout:g}s",
            {**no_cache, **at_cap, "KEFU_LLM_QUEUE_TIMEOUT": str(queue_timeout)},
        ),
        "limiter-short-queue": Scenario(
            f"limiter = cap ({cap}), queue 0.5s", {**no_cache, **at_cap, "KEFU_LLM_QUEUE_TIMEOUT": "0.5"}
        ),
        "no-limiter-cache": Scenario(f"no limiter + answer cache, {len(FAQ)} questions", unlimited, True),
        "limiter-cache": Scenario(
            f"limiter = cap ({cap}) + answer cache, {len(FAQ)} questions",
            {**at_cap, "KEFU_LLM_QUEUE_TIMEOUT": str(queue_timeout)},
            True,
        ),
    }


async def main_async(args: argparse.Namespace) -> None:
    service = args.ttft + args.tokens / args.tps
    rate = args.rate or 10 * args.cap / service
    mock_args = ["--ttft", str(args.ttft), "--tps", str(args.tps), "--tokens", str(args.tokens)]
    mock_args += ["--chunk-chars", "2", "--max-concurrency", str(args.cap)]
    if not args.no_retry_after:
        mock_args += ["--max-concurrency-retry-after", str(args.retry_after)]
    mock = start_mock(*mock_args)
    chosen = scenarios(args.cap, args.queue_timeout)
    try:
        print(
            f"mock: cap {args.cap} concurrent, 429 above it "
            f"({'no Retry-After' if args.no_retry_after else f'Retry-After {args.retry_after:g}s'}), "
            f"ttft {args.ttft}s, "
            f"{args.tokens} chars at {args.tps}/s (service ~{service:.2f}s, capacity ~{args.cap / service:.1f} "
            f"turns/s); offered {rate:.1f} turns/s for {args.duration:g}s; python {sys.version.split()[0]}; "
            f"{os.cpu_count()} cores; {platform.processor() or platform.machine()}"
        )
        print(
            "| scenario | turns | model % | faq % | cache % | degraded % | error % | TTFT p50 / p95 ms | "
            "model TTFT p50 / p95 | degraded TTFT p50 / p95 | mock requests | mock 429s | mock max active | "
            "retries | short-circuits | peak queue | final limit | CPU s kefu / mock |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for key in args.scenarios:
            report(await run_scenario(chosen[key], mock, args, rate))
            await asyncio.sleep(args.pause)
    finally:
        mock.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cap", type=int, default=5, help="the mock's concurrency cap C")
    parser.add_argument("--rate", type=float, default=None, help="offered turns/s (default 10 x C / service time)")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--ttft", type=float, default=0.3)
    parser.add_argument("--tps", type=float, default=100.0)
    parser.add_argument("--tokens", type=int, default=60)
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After on the cap's 429s")
    parser.add_argument("--no-retry-after", action="store_true", help="the cap's 429s carry no Retry-After")
    parser.add_argument("--queue-timeout", type=float, default=2.0)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between scenarios")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=["no-limiter", "defaults", "limiter", "limiter-short-queue", "no-limiter-cache", "limiter-cache"],
        choices=list(scenarios(1, 1.0)),
    )
    parser.add_argument("--bot-dir", default=None, help="bot directory (default: no knowledge base, model only)")
    parser.add_argument("--redis", default=None, help="use this Redis URL (hot state, breaker, cache)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
