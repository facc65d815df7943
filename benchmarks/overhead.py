"""Overhead of a kefu turn over the bare model stream, and server CPU per 1,000 upstream chunks.

Starts ``kefu mock-llm`` (fixed TTFT and tokens/s) and ``kefu serve`` as separate processes, then runs the same
streaming load straight to the mock and through kefu's ``/v1/chat`` (full turn: session, transcript writes,
turn log, SSE), in interleaved rounds so machine noise hits both alike. Reports added time to first token and
total time (p50/p95/p99) per concurrency level, and CPU seconds used by each process.

    .venv/bin/python -m benchmarks.overhead --concurrency 1 10 100 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import KefuServer, auth, free_port, start_mock

CLK_TCK = os.sysconf("SC_CLK_TCK")
MODEL_ONLY_BOT = Path(__file__).resolve().parent.parent / "tests" / "bots" / "model-only"


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process (and its reaped children) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime + cutime + cstime) / CLK_TCK


@dataclass
class Sample:
    ttft: float
    total: float
    chunks: int


async def direct_stream(client: httpx.AsyncClient, mock_url: str) -> Sample:
    start = time.perf_counter()
    ttft = 0.0
    chunks = 0
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "你好，请问发货要多久？"}]}
    async with client.stream("POST", f"{mock_url}/v1/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {") and '"content"' in line and '"content":""' not in line:
                chunks += 1
                if not ttft:
                    ttft = time.perf_counter() - start
    return Sample(ttft, time.perf_counter() - start, chunks)


async def kefu_stream(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> Sample:
    start = time.perf_counter()
    ttft = 0.0
    chunks = 0
    async with client.stream(
        "POST", f"{url}/v1/chat", json={"message": "你好，请问发货要多久？"}, headers=headers
    ) as response:
        async for line in response.aiter_lines():
            if line == "event: delta":
                chunks += 1
                if not ttft:
                    ttft = time.perf_counter() - start
            elif line.startswith("event: error"):
                raise RuntimeError("turn failed during benchmark")
    return Sample(ttft, time.perf_counter() - start, chunks)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_level(concurrency: int, rounds: int, mock_url: str, kefu_url: str, pids: dict[str, int]) -> None:
    users = [auth(f"bench-{i}") for i in range(concurrency)]
    limits = httpx.Limits(max_connections=concurrency + 10, max_keepalive_connections=concurrency + 10)
    direct: list[Sample] = []
    through: list[Sample] = []
    cpu: dict[str, float] = dict.fromkeys(pids, 0.0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        for _ in range(rounds):
            direct += await asyncio.gather(*(direct_stream(client, mock_url) for _ in range(concurrency)))
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            through += await asyncio.gather(*(kefu_stream(client, kefu_url, users[i]) for i in range(concurrency)))
            for name, pid in pids.items():
                cpu[name] += cpu_seconds(pid) - before[name]
    upstream_chunks = sum(s.chunks for s in direct) / len(direct) * len(through)
    added_ttft = [t.ttft - statistics.median(d.ttft for d in direct) for t in through]
    added_total = [t.total - statistics.median(d.total for d in direct) for t in through]
    print(
        f"| {concurrency} | {len(through)} | "
        f"{statistics.median(d.ttft for d in direct) * 1000:.1f} | "
        f"{pct(added_ttft, 0.5) * 1000:.1f} / {pct(added_ttft, 0.95) * 1000:.1f} / "
        f"{pct(added_ttft, 0.99) * 1000:.1f} | "
        f"{pct(added_total, 0.5) * 1000:.1f} / {pct(added_total, 0.99) * 1000:.1f} | "
        f"{statistics.mean(s.chunks for s in through):.0f} | "
        f"{cpu['kefu'] / upstream_chunks * 1000:.3f} | {cpu['mock'] / upstream_chunks * 1000:.3f} |"
    )


async def main_async(args: argparse.Namespace) -> None:
    mock = start_mock(
        "--ttft",
        str(args.ttft),
        "--tps",
        str(args.tps),
        "--tokens",
        str(args.tokens),
        "--chunk-chars",
        str(args.chunk_chars),
    )
    workdir = Path(tempfile.mkdtemp(prefix="kefu-bench-"))
    env = {
        "KEFU_JWT_SECRET": "test-secret-for-kefu-tests-only-0123456789",
        "KEFU_LLM_BASE_URL": mock.url + "/v1",
        "KEFU_LLM_API_KEY": "sk-bench",
        "KEFU_LLM_MODEL": "mock-chat",
        "KEFU_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'kefu.db'}",
        "KEFU_LOG_LEVEL": "warning",
        # Measure the model path of a full turn: no FAQ short-circuit, no shared answers, no rate limits.
        "KEFU_BOT_DIR": str(MODEL_ONLY_BOT),
        "KEFU_ANSWER_CACHE_TTL": "0",
        "KEFU_RATE_LIMIT_USER": "off",
        "KEFU_RATE_LIMIT_IP": "off",
    }
    if args.redis:
        env["KEFU_REDIS_URL"] = args.redis
    server = KefuServer(env=env, workdir=workdir, port=free_port()).start()
    assert server.proc is not None
    try:
        print(
            f"mock: ttft {args.ttft}s, {args.tps} chars/s, {args.tokens} chars in chunks of {args.chunk_chars}; "
            f"hot state: {'redis' if args.redis else 'memory'}; python {sys.version.split()[0]}; {os.cpu_count()} cores"
        )
        print(
            "| streams | turns | mock TTFT p50 ms | added TTFT p50/p95/p99 ms | added total p50/p99 ms | "
            "frames/turn | kefu CPU s per 1k chunks | mock CPU s per 1k chunks |"
        )
        print("|---|---|---|---|---|---|---|---|")
        pids = {"kefu": server.proc.pid, "mock": mock.proc.pid}
        for level in args.concurrency:
            await run_level(level, args.rounds, mock.url, server.url, pids)
    finally:
        server.stop()
        mock.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ttft", type=float, default=0.2)
    parser.add_argument("--tps", type=float, default=100.0)
    parser.add_argument("--tokens", type=int, default=175)
    parser.add_argument("--chunk-chars", type=int, default=1)
    parser.add_argument("--redis", default=None, help="use this Redis URL for hot state")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
