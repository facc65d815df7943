"""Overhead of a kefu turn over the bare model stream, and server CPU per 1,000 upstream chunks.

Starts ``kefu mock-llm`` (fixed TTFT and tokens/s) and ``kefu serve`` as separate processes, then runs the same
streaming load straight to the mock and through kefu's ``/v1/chat`` (full turn: session, transcript writes,
turn log, SSE), in interleaved rounds so machine noise hits both alike. Reports added time to first token and
total time (p50/p95/p99) per concurrency level, and CPU seconds used by each process (from /proc, so other
load on the machine does not inflate them).

    .venv/bin/python -m benchmarks.overhead --concurrency 1 10 100 --rounds 3

``--baseline DIR`` also starts a second ``kefu serve`` that imports kefu from ``DIR`` (e.g. an older tree made
with ``git archive <rev> | tar -x -C DIR``) and interleaves it round by round, for a before/after table from one
run; ``--tree DIR`` imports the kefu under test (the "after") from a tree the same way. ``--profile FILE``
samples that server with py-spy (in the dev extra) during the whole run and writes collapsed stacks to
``FILE``, then prints the most expensive functions (sampling costs the profiled server CPU: take the CPU
columns from a run without ``--profile``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

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
    ok: bool = True


QUESTION = "你好，请问发货要多久？"


async def direct_stream(client: aiohttp.ClientSession, mock_url: str, message: str = QUESTION) -> Sample:
    start = time.perf_counter()
    ttft = 0.0
    chunks = 0
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": message}]}
    async with client.post(f"{mock_url}/v1/chat/completions", json=body) as response:
        async for line in response.content:
            if line.startswith(b"data: {") and b'"content"' in line and b'"content":""' not in line:
                chunks += 1
                if not ttft:
                    ttft = time.perf_counter() - start
    return Sample(ttft, time.perf_counter() - start, chunks)


async def kefu_stream(
    client: aiohttp.ClientSession, url: str, headers: dict[str, str], message: str = QUESTION
) -> Sample:
    """One turn through ``/v1/chat``; ``ok`` only if it ended in ``done`` with a model answer (not an error, not
    the degraded fallback)."""
    start = time.perf_counter()
    ttft = 0.0
    chunks = 0
    ok = False
    event = b""
    try:
        async with client.post(f"{url}/v1/chat", json={"message": message}, headers=headers) as response:
            async for line in response.content:
                if line.startswith(b"event: "):
                    event = line[7:].rstrip()
                    if event == b"delta":
                        chunks += 1
                        if not ttft:
                            ttft = time.perf_counter() - start
                elif event == b"done" and line.startswith(b"data: "):
                    ok = json.loads(line[6:]).get("source") in ("llm", "kb")
    except aiohttp.ClientError:
        ok = False
    return Sample(ttft, time.perf_counter() - start, chunks, ok)


def client_session(connections: int) -> aiohttp.ClientSession:
    """The load generator's client (aiohttp: at 1,000 streams httpx's pool costs more CPU than the servers)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=300),
        read_bufsize=1 << 16,
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Target:
    """One ``kefu serve`` under test."""

    label: str
    url: str
    pid: int
    samples: list[Sample] = field(default_factory=list)
    cpu: float = 0.0
    mock_cpu: float = 0.0
    turns: int = 0  # turns run (with --arrival staggered, more than the samples measured)


# Turns per user and round with --arrival staggered: only the middle one is measured, when all users are in flight.
STAGGERED_TURNS = 3


async def launch(
    concurrency: int, arrival: str, answer_seconds: float, one: Callable[[int], Awaitable[Sample]]
) -> tuple[list[Sample], int]:
    """One round: (measured samples, turns run).

    ``burst``: every user starts one turn in the same instant (the worst case for time to first token).
    ``staggered``: user i starts i/N of an answer's duration after user 0 and runs STAGGERED_TURNS turns back to
    back, so N streams are in flight at any time without arriving together; the middle turn is measured.
    """
    if arrival == "burst":
        return list(await asyncio.gather(*(one(i) for i in range(concurrency)))), concurrency

    async def user(i: int) -> Sample:
        await asyncio.sleep(i * answer_seconds / concurrency)
        samples = [await one(i) for _ in range(STAGGERED_TURNS)]
        return samples[STAGGERED_TURNS // 2]

    return list(await asyncio.gather(*(user(i) for i in range(concurrency)))), concurrency * STAGGERED_TURNS


async def run_level(
    concurrency: int,
    rounds: int,
    mock_url: str,
    mock_pid: int,
    targets: list[Target],
    message: str = QUESTION,
    arrival: str = "burst",
    answer_seconds: float = 0.0,
) -> None:
    users = [auth(f"bench-{i}") for i in range(concurrency)]
    direct: list[Sample] = []
    for target in targets:
        target.samples, target.cpu, target.mock_cpu, target.turns = [], 0.0, 0.0, 0
    async with client_session(concurrency + 10) as client:
        for _ in range(rounds):
            samples, _turns = await launch(
                concurrency, arrival, answer_seconds, lambda i: direct_stream(client, mock_url, message)
            )
            direct += samples
            for target in targets:
                before, mock_before = cpu_seconds(target.pid), cpu_seconds(mock_pid)
                samples, turns = await launch(
                    concurrency,
                    arrival,
                    answer_seconds,
                    lambda i, url=target.url: kefu_stream(client, url, users[i], message),
                )
                target.samples += samples
                target.turns += turns
                target.cpu += cpu_seconds(target.pid) - before
                target.mock_cpu += cpu_seconds(mock_pid) - mock_before
    direct_ttft = statistics.median(d.ttft for d in direct)
    direct_total = statistics.median(d.total for d in direct)
    for target in targets:
        failed = sum(not s.ok for s in target.samples)
        through = [s for s in target.samples if s.ok] or target.samples
        upstream_chunks = sum(s.chunks for s in direct) / len(direct) * target.turns
        added_ttft = [t.ttft - direct_ttft for t in through]
        added_total = [t.total - direct_total for t in through]
        label = f"{target.label} | " if len(targets) > 1 else ""
        print(
            f"| {label}{concurrency} | {len(through)} | "
            f"{direct_ttft * 1000:.1f} | "
            f"{pct(added_ttft, 0.5) * 1000:.1f} / {pct(added_ttft, 0.95) * 1000:.1f} / "
            f"{pct(added_ttft, 0.99) * 1000:.1f} | "
            f"{pct(added_total, 0.5) * 1000:.1f} / {pct(added_total, 0.99) * 1000:.1f} | "
            f"{statistics.mean(s.chunks for s in through):.0f} | "
            f"{target.cpu / upstream_chunks * 1000:.3f} | {target.mock_cpu / upstream_chunks * 1000:.3f} | {failed} |",
            flush=True,
        )


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` into collapsed stacks at ``out`` until terminated."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--rate", "500", "--gil", "--nonblocking", "--format", "raw"]
        + ["--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarise_profile(path: Path, top: int = 25) -> None:
    """Print the functions with the most samples on the stack (inclusive) and at its top (self), skipping idle."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        frames = stack.split(";")
        leaf = frames[-1]
        if "select (selectors.py" in leaf or "poll (" in leaf:
            continue  # the loop waiting for I/O
        count = int(count_text)
        total += count
        own[leaf] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"\nprofile: {total} busy samples; top self / inclusive (share of busy samples)")
    for name, count in own.most_common(top):
        print(f"  self {count / total:6.1%}  {name}")
    noise = ("runpy", "typer/", "kefu/__main__", "kefu/cli/", "uvicorn/main.py", "uvicorn/server.py", "runners.py")
    shown = [(n, c) for n, c in inclusive.most_common() if not any(word in n for word in noise)]
    for name, count in shown[:top]:
        print(f"  incl {count / total:6.1%}  {name}")


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
    env = {
        "KEFU_JWT_SECRET": "test-secret-for-kefu-tests-only-0123456789",
        "KEFU_LLM_BASE_URL": mock.url + "/v1",
        "KEFU_LLM_API_KEY": "sk-bench",
        "KEFU_LLM_MODEL": "mock-chat",
        "KEFU_LOG_LEVEL": "warning",
        # Measure the model path of a full turn: no FAQ short-circuit, no shared answers, no rate limits.
        "KEFU_BOT_DIR": args.bot or str(MODEL_ONLY_BOT),
        "KEFU_ANSWER_CACHE_TTL": "0",
        "KEFU_RATE_LIMIT_USER": "off",
        "KEFU_RATE_LIMIT_IP": "off",
        # The provider's concurrency cap (default 256) would queue and degrade turns above it; not measured here.
        "KEFU_LLM_MAX_CONCURRENCY": str(max(256, *args.concurrency)),
    }
    if args.redis:
        env["KEFU_REDIS_URL"] = args.redis
    servers: list[tuple[str, KefuServer]] = []
    trees = [("before", args.baseline)] if args.baseline else []
    trees.append(("after" if args.baseline else "kefu", args.tree or ""))
    profiler: subprocess.Popen[bytes] | None = None
    try:
        for label, tree in trees:
            workdir = Path(tempfile.mkdtemp(prefix="kefu-bench-"))
            server_env = {**env, "KEFU_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'kefu.db'}"}
            if tree:
                server_env["PYTHONPATH"] = tree
            servers.append((label, KefuServer(env=server_env, workdir=workdir, port=free_port()).start()))
        print(
            f"mock: ttft {args.ttft}s, {args.tps} chars/s, {args.tokens} chars in chunks of {args.chunk_chars}; "
            f"hot state: {'redis' if args.redis else 'memory'}; arrival: {args.arrival}; "
            f"python {sys.version.split()[0]}; {os.cpu_count()} cores"
        )
        version = "| version " if args.baseline else ""
        print(
            f"{version}| streams | turns | mock TTFT p50 ms | added TTFT p50/p95/p99 ms | added total p50/p99 ms | "
            "frames/turn | kefu CPU s per 1k chunks | mock CPU s per 1k chunks | failed turns |"
        )
        print("|---" * (10 if args.baseline else 9) + "|")
        targets = []
        for label, server in servers:
            assert server.proc is not None
            targets.append(Target(label, server.url, server.proc.pid))
        async with client_session(10) as client:  # warm-up: first-request costs are not per turn
            for target in targets:
                await kefu_stream(client, target.url, auth("bench-warmup"), args.message)
        if args.profile:
            profiler = start_profiler(targets[-1].pid, Path(args.profile))
        for level in args.concurrency:
            await run_level(
                level,
                args.rounds,
                mock.url,
                mock.proc.pid,
                targets,
                args.message,
                arrival=args.arrival,
                answer_seconds=args.ttft + args.tokens / args.tps,
            )
    finally:
        if profiler is not None:
            profiler.send_signal(2)  # SIGINT: py-spy writes its output and exits
            profiler.wait(30)
        for _, server in servers:
            server.stop()
        mock.stop()
    if args.profile:
        summarise_profile(Path(args.profile))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ttft", type=float, default=0.2)
    parser.add_argument("--tps", type=float, default=100.0)
    parser.add_argument("--tokens", type=int, default=175)
    parser.add_argument("--chunk-chars", type=int, default=1)
    parser.add_argument("--redis", default=None, help="use this Redis URL for hot state")
    parser.add_argument("--baseline", default=None, help="also run a kefu imported from this source tree (before)")
    parser.add_argument("--tree", default=None, help="import the kefu under test from this source tree")
    parser.add_argument(
        "--bot", default=None, help="bot directory (default: a model-only bot; e.g. kefu/demo for KB search + flows)"
    )
    parser.add_argument("--message", default=QUESTION, help="the user message (with --bot: one the model answers)")
    parser.add_argument("--profile", default=None, help="py-spy the (current) kefu server; collapsed stacks here")
    parser.add_argument(
        "--arrival",
        choices=("burst", "staggered"),
        default="burst",
        help="burst: each round's streams start in the same instant; staggered: N streams always in flight, "
        "starts spread over an answer's duration (the middle of 3 back-to-back turns per user is measured)",
    )
    args = parser.parse_args()
    for name in ("baseline", "tree", "bot"):
        if getattr(args, name):
            setattr(args, name, str(Path(getattr(args, name)).resolve()))
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
