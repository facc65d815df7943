"""Shared pieces of the load benchmarks: an aiohttp load generator that runs in its own process, per-process
CPU and memory accounting from /proc, the machine description, the LiteLLM/matplotlib side environment, and
percentile helpers.

The load generator takes a *plan*: a list of virtual users, each with a start time and a list of steps
(requests) separated by think time. One user with one step at a fixed time is an open-loop arrival; N users
starting at 0 with R steps and no think time is a closed loop of N streams. Every request is timed on the
client (time to first answer text, total) and checked for a clean end (``done`` / ``[DONE]``). A step that
starts more than 50 ms after it was due is counted as *late* (the load generator could not keep up), so an
open-loop run shows when it stopped being open-loop.

    python -m benchmarks.common loadgen plan.json result.json     # what the benchmarks run as a child
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.support import KefuServer, MockLLM, free_port, wait_http

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
_CONTENT = re.compile(rb'"content": ?"[^"]')  # a chat-completion chunk carrying answer text
LATE = 0.05  # seconds after its due time at which a request counts as started late

# The side environment for tools that must not become kefu dependencies (LiteLLM's proxy, matplotlib).
BENCH_ENV = Path(os.environ.get("KEFU_BENCH_ENV", Path.home() / ".cache" / "kefu-bench" / "litellm"))


# ----------------------------------------------------------------------------------------------- processes


def raise_fd_limit() -> None:
    """Open streams need file descriptors: lift the soft limit to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn ``--workers`` and LiteLLM run worker processes)."""
    tree = [pid]
    for child in _children(pid):
        tree += process_tree(child)
    return tree


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process, its live descendants and its reaped children."""
    total = 0.0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
        total += (utime + stime + cutime + cstime) / CLK_TCK
    return total


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its live descendants."""
    total = 0
    for p in process_tree(pid):
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
        except OSError:
            continue
    return total


class Sampler:
    """Samples CPU seconds and RSS of named processes every ``interval`` seconds in a thread."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        self.pids = pids
        self.interval = interval
        self.peak_rss: dict[str, int] = dict.fromkeys(pids, 0)
        self.series: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.cpu_start: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def add(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        self.peak_rss.setdefault(name, 0)
        self.cpu_start.setdefault(name, cpu_seconds(pid))

    def _sample(self) -> None:
        row: dict[str, float] = {"t": time.monotonic()}
        for name, pid in self.pids.items():
            rss = rss_bytes(pid)
            self.peak_rss[name] = max(self.peak_rss[name], rss)
            row[f"{name}_rss"] = rss
            row[f"{name}_cpu"] = cpu_seconds(pid)
        self.series.append(row)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Sampler:
        self.cpu_start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.cpu = {name: cpu_seconds(pid) - self.cpu_start.get(name, 0.0) for name, pid in self.pids.items()}


def machine() -> dict[str, Any]:
    """What the numbers were measured on, and how busy the box was when the run started."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line))
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "loadavg": os.getloadavg(),
    }


def describe_machine(m: dict[str, Any]) -> str:
    load = " ".join(f"{x:.1f}" for x in m["loadavg"])
    return (
        f"{m['date']}; {m['nproc']} CPUs ({m['cpu']}), {m['ram_gb']} GB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}; load average at start {load}"
    )


class BenchServer(KefuServer):
    """``kefu serve`` with its output in a log file (a pipe nobody reads fills up under load and freezes it)."""

    def start(self) -> BenchServer:
        env = {**os.environ, **self.env}
        self.log_path = self.workdir / f"kefu-{self.port}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kefu", "serve", "--port", str(self.port), "--workers", str(self.workers)],
                env=env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_http(f"{self.url}/healthz", self.proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.log_path.read_text(errors='replace')[-4000:]}") from None
        return self

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def start_bench_mock(workdir: Path, *args: str) -> MockLLM:
    """``kefu mock-llm`` on a free port, its output in a log file."""
    port = free_port()
    with (workdir / f"mock-{port}.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kefu", "mock-llm", "--port", str(port), *args], stdout=log, stderr=subprocess.STDOUT
        )
    mock = MockLLM(port=port, proc=proc)
    wait_http(f"{mock.url}/healthz", proc)
    return mock


# ------------------------------------------------------------------------------------------------- numbers


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float) -> str:
    return "–" if value != value else f"{value * 1000:.0f}"


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------ side environment


def bench_python(*packages: str) -> Path:
    """The Python of the side environment (created on first use) with ``packages`` installed."""
    python = BENCH_ENV / "bin" / "python"
    if not python.exists():
        print(f"creating the benchmark side environment {BENCH_ENV} …", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_ENV)], check=True)
    missing = []
    for package in packages:
        module = package.split("[")[0].split("=")[0].split(">")[0].replace("-", "_")
        if subprocess.run([str(python), "-c", f"import {module}"], capture_output=True).returncode:
            missing.append(package)
    if missing:
        print(f"installing {' '.join(missing)} into {BENCH_ENV} (pip) …", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *missing], check=True, stderr=subprocess.DEVNULL)
    return python


def plot(spec: dict[str, Any], png: Path) -> bool:
    """Draw a line chart (benchmarks/plot.py) with matplotlib from the side environment; False if impossible."""
    try:
        python = bench_python("matplotlib")
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"no plot: could not set up matplotlib ({exc})", file=sys.stderr)
        return False
    spec_file = png.with_suffix(".plot.json")
    write_json(spec_file, spec)
    done = subprocess.run([str(python), str(REPO / "benchmarks" / "plot.py"), str(spec_file), str(png)])
    spec_file.unlink(missing_ok=True)
    return done.returncode == 0


# ----------------------------------------------------------------------------------------------- load plan


@dataclass
class Step:
    """One request. ``kind`` chat = kefu's ``/v1/chat`` (SSE events); openai = a streaming chat completion."""

    kind: str
    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    think: float = 0.0  # seconds to wait before this step (after the previous one ended)
    tag: str = ""  # what the step is (e.g. "faq" / "model"), copied to its record
    carry_session: bool = False  # put the session_id of the user's previous answer into the body


@dataclass
class User:
    start: float  # seconds after the run starts
    steps: list[Step]


@dataclass
class Record:
    user: int
    step: int
    tag: str
    due: float
    started: float
    ttft: float | None = None
    total: float | None = None
    outcome: str = "error"  # ok | error
    detail: str = ""
    source: str = ""
    cached: bool = False
    chunks: int = 0

    @property
    def late(self) -> bool:
        return self.started - self.due > LATE


def plan_to_json(users: list[User]) -> list[dict[str, Any]]:
    return [asdict(u) for u in users]


def plan_from_json(data: list[dict[str, Any]]) -> list[User]:
    return [User(u["start"], [Step(**s) for s in u["steps"]]) for u in data]


# ------------------------------------------------------------------------------------- the load generator


async def _request(session: Any, step: Step, rec: Record, t0: float, state: dict[str, str]) -> None:
    import aiohttp

    body = step.body
    if step.carry_session and state.get("session_id"):
        body = {**body, "session_id": state["session_id"]}
    start = time.perf_counter()
    rec.started = asyncio.get_running_loop().time() - t0
    tail = b""
    try:
        async with session.post(step.url, json=body, headers=step.headers) as response:
            if response.status != 200:
                rec.detail = f"http {response.status}"
                await response.read()
                return
            async for chunk in response.content.iter_any():
                rec.chunks += 1
                if rec.ttft is None and (
                    b"event: delta" in chunk if step.kind == "chat" else _CONTENT.search(chunk) is not None
                ):
                    rec.ttft = time.perf_counter() - start
                tail = (tail + chunk)[-2048:]
                if step.kind == "chat" and b"event: session" in chunk and "session_id" not in state:
                    line = chunk.split(b"event: session", 1)[1].split(b"data: ", 1)[1].split(b"\n", 1)[0]
                    state["session_id"] = json.loads(line)["session_id"]
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        rec.detail = type(exc).__name__
        return
    rec.total = time.perf_counter() - start
    if step.kind == "chat":
        if b"event: done" in tail:
            data = json.loads(tail.split(b"event: done", 1)[1].split(b"data: ", 1)[1].split(b"\n", 1)[0])
            rec.outcome, rec.source, rec.cached = "ok", data.get("source", ""), bool(data.get("cached"))
        elif b"event: error" in tail:
            rec.detail = tail.split(b"event: error", 1)[1].split(b"data: ", 1)[1].split(b"\n", 1)[0][:120].decode()
        else:
            rec.detail = "stream ended without done"
    elif b"data: [DONE]" in tail and b'"error"' not in tail:
        rec.outcome = "ok"
    else:
        rec.detail = "stream ended without [DONE]" if b'"error"' not in tail else tail[-200:].decode(errors="replace")


async def _user(session: Any, index: int, user: User, t0: float, records: list[Record]) -> None:
    loop = asyncio.get_running_loop()
    due = t0 + user.start
    await asyncio.sleep(max(0.0, due - loop.time()))
    state: dict[str, str] = {}
    for n, step in enumerate(user.steps):
        if step.think:
            due = loop.time() + step.think
            await asyncio.sleep(step.think)
        rec = Record(user=index, step=n, tag=step.tag, due=due - t0, started=0.0)
        records.append(rec)
        await _request(session, step, rec, t0, state)


async def run_plan(users: list[User], timeout: float) -> dict[str, Any]:
    import aiohttp

    records: list[Record] = []
    connector = aiohttp.TCPConnector(limit=0, force_close=False, ttl_dns_cache=None)
    client_timeout = aiohttp.ClientTimeout(total=timeout, sock_read=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.2
        cpu0 = time.process_time()
        await asyncio.gather(*(_user(session, i, u, t0, records) for i, u in enumerate(users)))
        wall = loop.time() - t0
        cpu = time.process_time() - cpu0
    return {
        "records": [asdict(r) | {"late": r.late} for r in records],
        "wall": wall,
        "loadgen_cpu": cpu,
    }


def _loadgen_main(plan_file: str, out_file: str, timeout: float) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    users = plan_from_json(json.loads(Path(plan_file).read_text()))
    result = asyncio.run(run_plan(users, timeout))
    Path(out_file).write_text(json.dumps(result))


class LoadGen:
    """Runs a plan in a child process (``python -m benchmarks.common loadgen``) so its CPU is its own."""

    def __init__(self, users: list[User], workdir: Path, timeout: float = 120.0) -> None:
        self.plan = workdir / f"plan-{time.monotonic_ns()}.json"
        self.out = self.plan.with_suffix(".out.json")
        self.plan.write_text(json.dumps(plan_to_json(users), ensure_ascii=False))
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.common", "loadgen", str(self.plan), str(self.out), str(self.timeout)],
            cwd=REPO,
        )
        return self.proc.pid

    def wait(self) -> dict[str, Any]:
        assert self.proc is not None
        code = self.proc.wait()
        if code != 0:
            raise RuntimeError(f"load generator exited with {code}")
        result: dict[str, Any] = json.loads(self.out.read_text())
        self.plan.unlink(missing_ok=True)
        self.out.unlink(missing_ok=True)
        return result


def measure(users: list[User], pids: dict[str, int], workdir: Path, timeout: float = 300) -> dict[str, Any]:
    """Run a plan in a child load generator; its summary, CPU seconds and peak RSS per named process, records."""
    gen = LoadGen(users, workdir, timeout=timeout)
    sampler = Sampler(dict(pids))
    with sampler:
        sampler.add("loadgen", gen.start())
        result = gen.wait()
    summary = summarize(result["records"], result["wall"])
    summary["cpu"] = {**sampler.cpu, "loadgen": result["loadgen_cpu"]}
    summary["peak_rss_mb"] = {k: v / 2**20 for k, v in sampler.peak_rss.items()}
    summary["series"] = sampler.series
    summary["records"] = result["records"]
    return summary


def peak_overlap(records: list[dict[str, Any]]) -> int:
    """The most requests that were open at the same time (from their start and total times)."""
    edges: list[tuple[float, int]] = []
    for r in records:
        if r["total"] is not None:
            edges += [(r["started"], 1), (r["started"] + r["total"], -1)]
    level = peak = 0
    for _, delta in sorted(edges):
        level += delta
        peak = max(peak, level)
    return peak


def summarize(records: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    """Counts, error share, late starts, TTFT and total percentiles (seconds) of a list of records."""
    ok = [r for r in records if r["outcome"] == "ok"]
    if ok:  # completions per second between the first start and the last end
        span = max(r["started"] + r["total"] for r in ok) - min(r["started"] for r in records)
        wall = span if span > 0 else wall
    ttft = [r["ttft"] for r in ok if r["ttft"] is not None]
    total = [r["total"] for r in ok if r["total"] is not None]
    errors: dict[str, int] = {}
    for r in records:
        if r["outcome"] != "ok":
            errors[r["detail"]] = errors.get(r["detail"], 0) + 1
    return {
        "requests": len(records),
        "ok": len(ok),
        "errors": len(records) - len(ok),
        "error_rate": (len(records) - len(ok)) / len(records) if records else float("nan"),
        "error_kinds": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:5]),
        "late": sum(1 for r in records if r["late"]),
        "throughput": len(ok) / wall if wall else float("nan"),
        **{f"ttft_p{int(q * 100)}": pct(ttft, q) for q in (0.5, 0.95, 0.99)},
        **{f"total_p{int(q * 100)}": pct(total, q) for q in (0.5, 0.95, 0.99)},
    }


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "loadgen":
        raise_fd_limit()
        _loadgen_main(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 120.0)
    else:
        print(__doc__)
