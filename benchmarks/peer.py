"""kefu's OpenAI-compatible facade vs LiteLLM's proxy, the same streaming load against the same mock.

Starts ``kefu mock-llm``, ``kefu serve`` (1 worker, SQLite, model-only bot, no answer cache, no rate limits) and
LiteLLM's proxy (``litellm --config … --num_workers 1`` with a master key, installed into a side environment on
first use: ``~/.cache/kefu-bench/litellm``, or ``KEFU_BENCH_ENV``). The load generator runs in its own process
(aiohttp) and sends ``stream: true`` chat completions to:

- the mock directly (the baseline: what the model costs by itself),
- kefu's ``/v1/chat/completions`` (a full turn: auth, session, transcript writes, turn log, SSE),
- LiteLLM's ``/v1/chat/completions`` (a stateless relay with its own auth, routing and logging).

1. **Curve**: closed loops of N concurrent streams (10, 50, 100, 200, 500), each stream sending requests back to
   back; the three targets run one after another per level, so noise hits them alike. Added TTFT = the target's
   TTFT minus the median direct TTFT of the same level. Reports p50/p99 and the level where p99 crosses 50 ms.
2. **Throughput**: open-loop arrivals at rising rates; the highest rate each one sustains (≥ 95 % of offered
   streams completed cleanly while arrivals were offered, < 1 % errors), CPU seconds per 1,000 streamed tokens
   and peak RSS per process.

    .venv/bin/python -m benchmarks.peer                  # the full run (about 25 minutes on 2 cores)
    .venv/bin/python -m benchmarks.peer --quick          # smoke run (about 1 minute)

Results: ``benchmarks/results/peer.json`` and the plot ``docs/benchmarks-peer-ttft.png``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import (
    REPO,
    RESULTS,
    BenchServer,
    Sampler,
    Step,
    User,
    bench_python,
    describe_machine,
    machine,
    measure,
    ms,
    pct,
    plot,
    raise_fd_limit,
    start_bench_mock,
    write_json,
)
from tests.support import JWT_SECRET, free_port, token_for

MODEL_ONLY_BOT = REPO / "tests" / "bots" / "model-only"
QUESTION = "你好，请问发货要多久？"
MASTER_KEY = "sk-litellm-bench-master"
LITELLM_VERSION = os.environ.get("KEFU_BENCH_LITELLM", "litellm[proxy]")


class LiteLLM:
    """LiteLLM's proxy as a child process."""

    def __init__(self, mock_url: str, workdir: Path) -> None:
        python = bench_python(LITELLM_VERSION)
        self.port = free_port()
        config = workdir / "litellm.yaml"
        config.write_text(
            "model_list:\n"
            "  - model_name: mock-chat\n"
            "    litellm_params:\n"
            "      model: openai/mock-chat\n"
            f"      api_base: {mock_url}/v1\n"
            "      api_key: sk-bench\n"
            "litellm_settings:\n"
            "  telemetry: false\n"
            "general_settings:\n"
            f"  master_key: {MASTER_KEY}\n",
            encoding="utf-8",
        )
        env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": MASTER_KEY}
        env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no fetch of the remote price list at start-up
        env.pop("DATABASE_URL", None)
        self.log = (workdir / "litellm.log").open("wb")
        self.proc = subprocess.Popen(
            [str(python.parent / "litellm"), "--config", str(config), "--port", str(self.port), "--num_workers", "1"],
            cwd=workdir,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"litellm exited with {self.proc.returncode}; see {workdir / 'litellm.log'}")
            try:
                if httpx.get(f"{self.url}/health/liveliness", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        else:
            raise RuntimeError("litellm did not come up in 120 s")
        out = subprocess.run(
            [str(python), "-c", "import litellm, importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
        )
        self.version = out.stdout.strip()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def completion_step(target: str, urls: dict[str, str], user: str, think: float = 0.0) -> Step:
    body: dict[str, Any] = {"model": "mock-chat", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    if target == "kefu":
        headers = {"Authorization": f"Bearer {token_for(user, ttl=7200)}"}
    elif target == "litellm":
        headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    else:
        headers = {}
    return Step("openai", f"{urls[target]}/v1/chat/completions", body, headers, think=think, tag=target)


def curve(
    levels: list[int], rounds: int, urls: dict[str, str], pids: dict[str, dict[str, int]], workdir: Path, tokens: int
) -> list[dict[str, Any]]:
    rows = []
    for level in levels:
        row: dict[str, Any] = {"concurrency": level}
        for target in ("direct", "kefu", "litellm"):
            rng = random.Random(level)
            users = [
                User(rng.uniform(0, 0.5), [completion_step(target, urls, f"peer-{level}-{i}") for _ in range(rounds)])
                for i in range(level)
            ]
            res = measure(users, pids[target], workdir)
            streamed = res["ok"] * tokens
            row[target] = {
                "summary": {k: v for k, v in res.items() if k not in ("records", "series")},
                "ttft": [r["ttft"] for r in res["records"] if r["outcome"] == "ok" and r["ttft"] is not None],
                "total": [r["total"] for r in res["records"] if r["outcome"] == "ok"],
                "cpu_per_1k_tokens": {
                    k: v / streamed * 1000 if streamed else float("nan") for k, v in res["cpu"].items()
                },
            }
            time.sleep(1)
        base_ttft = statistics.median(row["direct"]["ttft"]) if row["direct"]["ttft"] else float("nan")
        base_total = statistics.median(row["direct"]["total"]) if row["direct"]["total"] else float("nan")
        for target in ("kefu", "litellm"):
            added = [t - base_ttft for t in row[target]["ttft"]]
            added_total = [t - base_total for t in row[target]["total"]]
            row[target]["added_ttft"] = {"p50": pct(added, 0.5), "p95": pct(added, 0.95), "p99": pct(added, 0.99)}
            row[target]["added_total"] = {"p50": pct(added_total, 0.5), "p99": pct(added_total, 0.99)}
        row["direct_ttft_p50"] = base_ttft
        for target in ("direct", "kefu", "litellm"):
            del row[target]["ttft"], row[target]["total"]
        rows.append(row)
        k, lt = row["kefu"], row["litellm"]
        print(
            f"| {level} | {ms(base_ttft)} | {ms(k['added_ttft']['p50'])} / {ms(k['added_ttft']['p99'])} | "
            f"{ms(lt['added_ttft']['p50'])} / {ms(lt['added_ttft']['p99'])} | "
            f"{ms(k['added_total']['p50'])} / {ms(k['added_total']['p99'])} | "
            f"{ms(lt['added_total']['p50'])} / {ms(lt['added_total']['p99'])} | "
            f"{k['summary']['errors']} / {lt['summary']['errors']} | "
            f"{k['cpu_per_1k_tokens']['server']:.3f} / {lt['cpu_per_1k_tokens']['server']:.3f} |",
            flush=True,
        )
    return rows


def throughput(
    rates: list[float],
    duration: float,
    urls: dict[str, str],
    pids: dict[str, dict[str, int]],
    workdir: Path,
    tokens: int,
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"kefu": [], "litellm": []}
    saturated: set[str] = set()
    for rate in rates:
        for target in ("kefu", "litellm"):
            if target in saturated:
                continue  # well past saturation at a lower rate: more only takes longer
            n = int(rate * duration)
            users = [User(i / rate, [completion_step(target, urls, f"tp-{rate}-{i}")]) for i in range(n)]
            res = measure(users, pids[target], workdir)
            in_window = sum(
                1 for r in res["records"] if r["outcome"] == "ok" and r["started"] + r["total"] <= duration + 5.0
            )
            streamed = res["ok"] * tokens
            step = {
                "rate": rate,
                "offered": n,
                "ok": res["ok"],
                "errors": res["errors"],
                "error_kinds": res["error_kinds"],
                "late": res["late"],
                "completed_share": in_window / n,
                "throughput": res["throughput"],
                "ttft_p50": res["ttft_p50"],
                "ttft_p99": res["ttft_p99"],
                "cpu": res["cpu"],
                "cpu_per_1k_tokens": {
                    k: v / streamed * 1000 if streamed else float("nan") for k, v in res["cpu"].items()
                },
                "peak_rss_mb": res["peak_rss_mb"],
                "sustained": in_window >= 0.95 * n and res["errors"] < 0.01 * n and res["late"] < 0.05 * n,
            }
            out[target].append(step)
            if step["completed_share"] < 0.5:
                saturated.add(target)
            print(
                f"| {target} | {rate:g} | {n} | {res['throughput']:.1f} | {100 * step['completed_share']:.0f} | "
                f"{res['errors']} | {res['late']} | {ms(res['ttft_p50'])} / {ms(res['ttft_p99'])} | "
                f"{step['cpu_per_1k_tokens']['server']:.3f} | {step['cpu_per_1k_tokens']['mock']:.3f} | "
                f"{step['cpu_per_1k_tokens']['loadgen']:.3f} | {step['peak_rss_mb']['server']:.0f} | "
                f"{'yes' if step['sustained'] else 'no'} |",
                flush=True,
            )
            time.sleep(2)
    return out


def crossing(rows: list[dict[str, Any]], target: str, limit: float = 0.050) -> int | None:
    for row in rows:
        if row[target]["added_ttft"]["p99"] > limit:
            return int(row["concurrency"])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 levels, 2 rates, short")
    parser.add_argument("--levels", type=int, nargs="+", default=[10, 50, 100, 200, 500])
    parser.add_argument("--rounds", type=int, default=2, help="requests per stream in the curve")
    parser.add_argument("--rates", type=float, nargs="+", default=[10, 20, 40, 80])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of arrivals per rate")
    parser.add_argument("--ttft", type=float, default=0.2)
    parser.add_argument("--tps", type=float, default=20.0, help="tokens per second of each stream (1 per chunk)")
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-curve", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "peer.json")
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "benchmarks-peer-ttft.png")
    args = parser.parse_args()
    if args.quick:
        args.levels, args.rounds, args.rates, args.duration = [10, 50], 1, [20, 40], 4.0
        args.out = args.out.with_name("peer-quick.json")
        args.png = RESULTS / "peer-quick.png"
    raise_fd_limit()
    info = machine()
    workdir = Path(tempfile.mkdtemp(prefix="kefu-peer-"))
    mock_args = ["--ttft", str(args.ttft), "--tps", str(args.tps), "--tokens", str(args.tokens)]
    mock = start_bench_mock(workdir, *mock_args, "--chunk-chars", "1")
    env = {
        "KEFU_JWT_SECRET": JWT_SECRET,
        "KEFU_LLM_BASE_URL": mock.url + "/v1",
        "KEFU_LLM_API_KEY": "sk-bench",
        "KEFU_LLM_MODEL": "mock-chat",
        "KEFU_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'kefu.db'}",
        "KEFU_LOG_LEVEL": "warning",
        "KEFU_BOT_DIR": str(MODEL_ONLY_BOT),
        "KEFU_ANSWER_CACHE_TTL": "0",
        "KEFU_RATE_LIMIT_USER": "off",
        "KEFU_RATE_LIMIT_IP": "off",
        "KEFU_RATE_LIMIT_API_KEY": "off",
        "KEFU_LLM_MAX_CONCURRENCY": "100000",
    }
    server = BenchServer(env=env, workdir=workdir, port=free_port()).start()
    litellm = None
    try:
        litellm = LiteLLM(mock.url, workdir)
        assert server.proc is not None
        urls = {"direct": mock.url, "kefu": server.url, "litellm": litellm.url}
        pids = {
            "direct": {"mock": mock.proc.pid},
            "kefu": {"server": server.proc.pid, "mock": mock.proc.pid},
            "litellm": {"server": litellm.proc.pid, "mock": mock.proc.pid},
        }
        idle_rss = {"kefu": Sampler(pids["kefu"]), "litellm": Sampler(pids["litellm"])}
        for s in idle_rss.values():
            s._sample()
        print(f"machine: {describe_machine(info)}; litellm {litellm.version}")
        print(f"mock: ttft {args.ttft}s, {args.tokens} tokens at {args.tps}/s, 1 token per chunk")
        print(
            "\n| streams | direct TTFT p50 ms | kefu added TTFT p50 / p99 | LiteLLM added TTFT p50 / p99 | "
            "kefu added total p50 / p99 | LiteLLM added total p50 / p99 | errors kefu / LiteLLM | "
            "server CPU s per 1k tokens kefu / LiteLLM |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for target in ("kefu", "litellm"):  # warm-up (imports, pools, caches); not measured
            measure([User(i * 0.05, [completion_step(target, urls, f"warm-{i}")] * 2) for i in range(10)], {}, workdir)
        rows = [] if args.skip_curve else curve(args.levels, args.rounds, urls, pids, workdir, args.tokens)
        tp: dict[str, list[dict[str, Any]]] = {}
        if not args.skip_throughput:
            print(
                "\n| target | offered/s | offered | completed/s | completed in window % | errors | late starts | "
                "TTFT p50 / p99 ms | server CPU s/1k tokens | mock CPU s/1k | loadgen CPU s/1k | server peak RSS MB "
                "| sustained |"
            )
            print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            tp = throughput(args.rates, args.duration, urls, pids, workdir, args.tokens)
        result = {
            "machine": info,
            "litellm_version": litellm.version,
            "mock": {"ttft": args.ttft, "tps": args.tps, "tokens": args.tokens},
            "idle_rss_mb": {k: s.peak_rss["server"] / 2**20 for k, s in idle_rss.items()},
            "curve": rows,
            "throughput": tp,
            "crossing_50ms": {t: crossing(rows, t) for t in ("kefu", "litellm")},
            "command": " ".join(["python -m benchmarks.peer", *sys.argv[1:]]),
        }
        write_json(args.out, result)
        print(f"\nadded p99 TTFT crosses 50 ms at: {result['crossing_50ms']} (None = not within the levels run)")
        print(f"idle RSS MB: {result['idle_rss_mb']}")
        spec = {
            "title": f"Added TTFT over the bare mock vs concurrent streams ({info['nproc']} CPUs, shared box)",
            "xlabel": "concurrent streams",
            "ylabel": "added TTFT (ms)",
            "logx": True,
            "logy": True,
            "hline": 50,
            "hline_label": "50 ms",
            "series": [
                {
                    "label": f"{name} {q}",
                    "x": [r["concurrency"] for r in rows],
                    "y": [max(0.5, r[t]["added_ttft"][q] * 1000) for r in rows],
                    "style": style,
                }
                for t, name in (("kefu", "kefu"), ("litellm", "LiteLLM"))
                for q, style in (("p50", "-o"), ("p99", "--s"))
            ],
        }
        if rows and plot(spec, args.png):
            print(f"plot: {args.png}")
        print(f"results: {args.out}")
    finally:
        if litellm is not None:
            litellm.stop()
        server.stop()
        mock.stop()


if __name__ == "__main__":
    main()
