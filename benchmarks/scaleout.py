"""Scale-out: ``kefu serve --workers 1`` vs ``--workers 2`` (Redis + PostgreSQL), on the cache-hit and model paths.

For each path and worker count, a fresh server (Redis hot state, a fresh PostgreSQL database, model-only bot) is
offered open-loop arrivals at rising rates (each arrival a new shopper's first question, so a new session); the
load generator runs in its own process. Per rate it records completions, errors, late starts and TTFT; the
*sustained* throughput is the highest offered rate at which ≥ 95 % of arrivals completed cleanly during the run,
with < 1 % errors and < 5 % late starts (a late start means the load generator itself could not keep up).

- **cache-hit path**: 10 shop questions, each asked once first (warm-up) so every measured turn is answered from
  the shared answer cache (Redis): session + transcript writes + turn log + SSE, no model call.
- **model path**: every question distinct, no answer cache; the mock answers quickly (default 50 ms to first
  token, 20 characters at 400/s) so kefu's own work per turn dominates.

CPU seconds are counted per process (kefu including its workers, mock, load generator, Redis, PostgreSQL) so a
shared 2-core box shows where the time went.

    .venv/bin/python -m benchmarks.scaleout                   # about 6 minutes
    .venv/bin/python -m benchmarks.scaleout --quick

Needs Redis (``--redis``, default redis://127.0.0.1:6379/0) and PostgreSQL (``--postgres``, default
postgresql+asyncpg://postgres@127.0.0.1:5432/test; a throw-away database is created next to it and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import (
    REPO,
    RESULTS,
    BenchServer,
    Step,
    User,
    describe_machine,
    machine,
    measure,
    ms,
    raise_fd_limit,
    start_bench_mock,
    write_json,
)
from benchmarks.peak import FAQ
from tests.support import JWT_SECRET, MockLLM, free_port, token_for

MODEL_ONLY_BOT = REPO / "tests" / "bots" / "model-only"


def pid_of(name: str) -> int | None:
    out = subprocess.run(["pgrep", "-o", "-x", name], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class Database:
    """A throw-away PostgreSQL database."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.name = f"kefu_bench_{uuid.uuid4().hex[:10]}"
        asyncio.run(_admin(server_url, f'CREATE DATABASE "{self.name}"'))
        self.url = f"{server_url.rsplit('/', 1)[0]}/{self.name}"

    def drop(self) -> None:
        asyncio.run(_admin(self.server_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))


def start_server(path: str, workers: int, mock: MockLLM, args: argparse.Namespace, workdir: Path) -> BenchServer:
    env = {
        "KEFU_JWT_SECRET": JWT_SECRET,
        "KEFU_LLM_BASE_URL": mock.url + "/v1",
        "KEFU_LLM_API_KEY": "sk-bench",
        "KEFU_LLM_MODEL": "mock-chat",
        "KEFU_DATABASE_URL": args.db.url,
        "KEFU_REDIS_URL": args.redis,
        "KEFU_REDIS_PREFIX": f"kefu-scale-{uuid.uuid4().hex[:8]}",
        "KEFU_LOG_LEVEL": "warning",
        "KEFU_BOT_DIR": str(MODEL_ONLY_BOT),
        "KEFU_RATE_LIMIT_USER": "off",
        "KEFU_RATE_LIMIT_IP": "off",
        "KEFU_RATE_LIMIT_API_KEY": "off",
        "KEFU_LLM_MAX_CONCURRENCY": "100000",
        "KEFU_LLM_ADAPTIVE_CONCURRENCY": "false",
        "KEFU_ANSWER_CACHE_TTL": "3600" if path == "cache" else "0",
    }
    server = BenchServer(env=env, workdir=workdir, port=free_port(), workers=workers).start()
    time.sleep(2.0 if workers > 1 else 0.5)  # /healthz answers when the first worker is up
    return server


def step(url: str, user: str, question: str, tag: str) -> Step:
    return Step(
        "chat", f"{url}/v1/chat", {"message": question}, {"Authorization": f"Bearer {token_for(user)}"}, tag=tag
    )


def arrivals(path: str, url: str, rate: float, duration: float, salt: str) -> list[User]:
    n = int(rate * duration)
    users = []
    for i in range(n):
        question = FAQ[i % len(FAQ)] if path == "cache" else f"第{salt}-{i}号顾客问：这件衣服有几种颜色？"
        users.append(User(i / rate, [step(url, f"scale-{salt}-{i}", question, path)]))
    return users


def run_config(path: str, workers: int, mock: MockLLM, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    server = start_server(path, workers, mock, args, workdir)
    assert server.proc is not None
    pids = {"server": server.proc.pid, "mock": mock.proc.pid}
    for name, proc_name in (("redis", "redis-server"), ("postgres", "postgres")):
        pid = pid_of(proc_name)
        if pid:
            pids[name] = pid
    rows = []
    try:
        # Warm up: every worker's pools, and (cache path) the cached answers.
        warm = [User(i * 0.05, [step(server.url, f"warm-{i}", FAQ[i % len(FAQ)], "warm")]) for i in range(40)]
        measure(warm, {}, workdir)
        for rate in args.rates[path]:
            res = measure(arrivals(path, server.url, rate, args.duration, f"{workers}-{rate}"), pids, workdir)
            n = len(res["records"])
            in_window = sum(
                1 for r in res["records"] if r["outcome"] == "ok" and r["started"] + r["total"] <= args.duration + 2.0
            )
            cached = sum(1 for r in res["records"] if r["cached"])
            row = {
                "path": path,
                "workers": workers,
                "rate": rate,
                "offered": n,
                "ok": res["ok"],
                "errors": res["errors"],
                "error_kinds": res["error_kinds"],
                "late": res["late"],
                "cached": cached,
                "completed_share": in_window / n,
                "throughput": res["throughput"],
                "ttft_p50": res["ttft_p50"],
                "ttft_p99": res["ttft_p99"],
                "total_p99": res["total_p99"],
                "cpu": res["cpu"],
                "sustained": in_window >= 0.95 * n and res["errors"] < 0.01 * n and res["late"] < 0.05 * n,
            }
            rows.append(row)
            cpu = " / ".join(f"{res['cpu'].get(k, float('nan')):.1f}" for k in ("server", "mock", "loadgen", "redis"))
            print(
                f"| {path} | {workers} | {rate:g} | {res['throughput']:.1f} | {100 * row['completed_share']:.0f} | "
                f"{res['errors']} | {res['late']} | {cached} | {ms(res['ttft_p50'])} / {ms(res['ttft_p99'])} | "
                f"{cpu} | {'yes' if row['sustained'] else 'no'} |",
                flush=True,
            )
            time.sleep(1.5)
            if not row["sustained"] and row["completed_share"] < 0.8:
                break  # well past saturation
    finally:
        server.stop()
    return rows


def sustained(rows: list[dict[str, Any]]) -> float:
    ok = [r["rate"] for r in rows if r["sustained"]]
    return max(ok) if ok else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of arrivals per rate")
    parser.add_argument("--cache-rates", type=float, nargs="+", default=[40, 55, 70, 85, 100, 120, 140])
    parser.add_argument("--model-rates", type=float, nargs="+", default=[15, 20, 25, 30, 40, 50, 60])
    parser.add_argument("--paths", nargs="+", default=["cache", "model"], choices=["cache", "model"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    parser.add_argument("--ttft", type=float, default=0.05)
    parser.add_argument("--tps", type=float, default=400.0)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS / "scaleout.json")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.cache_rates, args.model_rates = 4.0, [50, 100], [25, 50]
        args.out = args.out.with_name("scaleout-quick.json")
    args.rates = {"cache": args.cache_rates, "model": args.model_rates}
    raise_fd_limit()
    info = machine()
    workdir = Path(tempfile.mkdtemp(prefix="kefu-scaleout-"))
    mock_args = ["--ttft", str(args.ttft), "--tps", str(args.tps), "--tokens", str(args.tokens)]
    mock = start_bench_mock(workdir, *mock_args, "--chunk-chars", "4")
    print(f"machine: {describe_machine(info)}")
    print(
        "| path | workers | offered/s | completed/s | completed in window % | errors | late starts | cached | "
        "TTFT p50 / p99 ms | CPU s kefu / mock / load gen / redis | sustained |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows: list[dict[str, Any]] = []
    try:
        for path in args.paths:
            for workers in args.workers:
                args.db = Database(args.postgres)
                try:
                    rows += run_config(path, workers, mock, args, workdir)
                finally:
                    args.db.drop()
    finally:
        mock.stop()
    summary = {}
    for path in args.paths:
        one = sustained([r for r in rows if r["path"] == path and r["workers"] == 1])
        two = sustained([r for r in rows if r["path"] == path and r["workers"] == 2])
        peak1 = max((r["throughput"] for r in rows if r["path"] == path and r["workers"] == 1), default=0.0)
        peak2 = max((r["throughput"] for r in rows if r["path"] == path and r["workers"] == 2), default=0.0)
        summary[path] = {
            "sustained_1": one,
            "sustained_2": two,
            "sustained_ratio": two / one if one else float("nan"),
            "peak_completed_1": peak1,
            "peak_completed_2": peak2,
            "peak_ratio": peak2 / peak1 if peak1 else float("nan"),
        }
        print(
            f"{path}: sustained {one:g}/s with 1 worker, {two:g}/s with 2 (x{summary[path]['sustained_ratio']:.2f}); "
            f"peak completed {peak1:.1f}/s vs {peak2:.1f}/s (x{summary[path]['peak_ratio']:.2f})"
        )
    write_json(
        args.out,
        {
            "machine": info,
            "command": " ".join(["python -m benchmarks.scaleout", *sys.argv[1:]]),
            "mock": {"ttft": args.ttft, "tps": args.tps, "tokens": args.tokens},
            "rows": rows,
            "summary": summary,
        },
    )
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
