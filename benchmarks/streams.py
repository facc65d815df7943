"""Many streams from one worker: N concurrent ``/v1/chat`` turns at a realistic token rate.

Starts ``kefu mock-llm`` (default: 0.2 s to first token, then 100 tokens at 10 tokens/s, one token per chunk, so
each answer streams for about 10 s) and one ``kefu serve`` worker (SQLite or ``--redis``/``--postgres``; model-only
bot; no answer cache, rate limits or upstream concurrency limit). The load generator (its own process, aiohttp)
opens N turns spread over ``--ramp`` seconds, so all N are open at once, and reads every stream to its end.

Reports errors, TTFT and total p50/p99, the most streams open at once, CPU seconds per 1,000 streamed tokens of
the server, the mock and the load generator, and memory per open stream = (peak RSS - idle RSS) / peak open.

    .venv/bin/python -m benchmarks.streams                 # 1,000 streams (about 1 minute)
    .venv/bin/python -m benchmarks.streams --quick         # 100 streams
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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
    peak_overlap,
    raise_fd_limit,
    rss_bytes,
    start_bench_mock,
    write_json,
)
from tests.support import JWT_SECRET, free_port, token_for

MODEL_ONLY_BOT = REPO / "tests" / "bots" / "model-only"


def server_env(mock_url: str, workdir: Path, args: argparse.Namespace) -> dict[str, str]:
    env = {
        "KEFU_JWT_SECRET": JWT_SECRET,
        "KEFU_LLM_BASE_URL": mock_url + "/v1",
        "KEFU_LLM_API_KEY": "sk-bench",
        "KEFU_LLM_MODEL": "mock-chat",
        "KEFU_DATABASE_URL": args.postgres or f"sqlite+aiosqlite:///{workdir / 'kefu.db'}",
        "KEFU_LOG_LEVEL": "warning",
        "KEFU_BOT_DIR": str(MODEL_ONLY_BOT),
        "KEFU_ANSWER_CACHE_TTL": "0",
        "KEFU_RATE_LIMIT_USER": "off",
        "KEFU_RATE_LIMIT_IP": "off",
        "KEFU_RATE_LIMIT_API_KEY": "off",
        "KEFU_LLM_MAX_CONCURRENCY": "100000",
        "KEFU_LLM_ADAPTIVE_CONCURRENCY": "false",
    }
    if args.redis:
        env["KEFU_REDIS_URL"] = args.redis
        env["KEFU_REDIS_PREFIX"] = f"kefu-bench-{free_port()}"
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 streams")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--ramp", type=float, default=5.0, help="seconds over which the streams are opened")
    parser.add_argument("--ttft", type=float, default=0.2)
    parser.add_argument("--tps", type=float, default=10.0, help="tokens per second of each stream")
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--chunk-chars", type=int, default=1, help="tokens per upstream chunk")
    parser.add_argument("--redis", default=None, help="Redis URL for hot state (default: in memory)")
    parser.add_argument("--postgres", default=None, help="postgresql+asyncpg:// URL (default: SQLite)")
    parser.add_argument("--out", type=Path, default=RESULTS / "streams.json")
    args = parser.parse_args()
    if args.quick:
        args.streams, args.ramp = 100, 2.0
        args.out = args.out.with_name("streams-quick.json")
    raise_fd_limit()
    info = machine()
    workdir = Path(tempfile.mkdtemp(prefix="kefu-streams-"))
    mock_args = ["--ttft", str(args.ttft), "--tps", str(args.tps), "--tokens", str(args.tokens)]
    mock = start_bench_mock(workdir, *mock_args, "--chunk-chars", str(args.chunk_chars))
    server = BenchServer(env=server_env(mock.url, workdir, args), workdir=workdir, port=free_port()).start()
    assert server.proc is not None
    try:
        # One warm-up turn (imports, pools, the database file), then the idle footprint.
        measure([User(0, [chat_step(server.url, "warm")])], {}, workdir)
        idle = {"server": rss_bytes(server.proc.pid), "mock": rss_bytes(mock.proc.pid)}
        users = [User(i * args.ramp / args.streams, [chat_step(server.url, f"s{i}")]) for i in range(args.streams)]
        res = measure(users, {"server": server.proc.pid, "mock": mock.proc.pid}, workdir, timeout=600)
        records = res["records"]
        open_peak = peak_overlap(records)
        tokens = res["ok"] * args.tokens
        per_1k = {k: v / tokens * 1000 if tokens else float("nan") for k, v in res["cpu"].items()}
        grown = res["peak_rss_mb"]["server"] - idle["server"] / 2**20
        ideal = args.ttft + args.tokens / args.tps
        result: dict[str, Any] = {
            "machine": info,
            "command": " ".join(["python -m benchmarks.streams", *sys.argv[1:]]),
            "mock": {"ttft": args.ttft, "tps": args.tps, "tokens": args.tokens, "chunk_chars": args.chunk_chars},
            "hot_state": "redis" if args.redis else "memory",
            "database": "postgres" if args.postgres else "sqlite",
            "streams": args.streams,
            "ramp": args.ramp,
            "summary": {k: v for k, v in res.items() if k not in ("records", "series")},
            "peak_open_streams": open_peak,
            "cpu_per_1k_tokens": per_1k,
            "idle_rss_mb": {k: v / 2**20 for k, v in idle.items()},
            "server_rss_growth_mb": grown,
            "kib_per_open_stream": grown * 1024 / open_peak if open_peak else float("nan"),
            "ideal_total_s": ideal,
            "rss_series_mb": [
                (round(row["t"] - res["series"][0]["t"], 2), round(row["server_rss"] / 2**20, 1))
                for row in res["series"]
            ]
            if res["series"]
            else [],
        }
        write_json(args.out, result)
        s = result["summary"]
        print(f"machine: {describe_machine(info)}")
        print(
            f"mock: ttft {args.ttft}s, {args.tokens} tokens at {args.tps}/s ({args.chunk_chars} per chunk, "
            f"ideal {ideal:.1f}s); "
            f"{args.streams} streams opened over {args.ramp:g}s; hot state {result['hot_state']}, {result['database']}"
        )
        print(
            "| streams | peak open | errors | late starts | TTFT p50 / p99 ms | total p50 / p99 s | "
            "CPU s per 1k tokens: kefu / mock / load gen | kefu RSS idle → peak MB | KiB per open stream |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        print(
            f"| {args.streams} | {open_peak} | {s['errors']} {s['error_kinds'] or ''} | {s['late']} | "
            f"{ms(s['ttft_p50'])} / {ms(s['ttft_p99'])} | {s['total_p50']:.2f} / {s['total_p99']:.2f} | "
            f"{per_1k['server']:.3f} / {per_1k['mock']:.3f} / {per_1k['loadgen']:.3f} | "
            f"{idle['server'] / 2**20:.0f} → {res['peak_rss_mb']['server']:.0f} | "
            f"{result['kib_per_open_stream']:.0f} |"
        )
        print(f"results: {args.out}")
    finally:
        server.stop()
        mock.stop()


def chat_step(url: str, user: str) -> Step:
    return Step(
        "chat",
        f"{url}/v1/chat",
        {"message": "你好，请问我的快递什么时候到？"},
        {"Authorization": f"Bearer {token_for(user, ttl=7200)}"},
    )


if __name__ == "__main__":
    main()
