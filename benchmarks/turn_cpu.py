"""Server CPU per turn answered without the model: an FAQ hit, and (``--mock``) a shared-answer cache hit.

This is what the "turn-start CPU" target is about (≤ 1.5 ms of server CPU per FAQ turn): everything kefu does
for a turn except talking to the model (auth, rate limits, session, hot state, transcript writes, knowledge
search, turn log, SSE). Starts one ``kefu serve`` per source tree (demo bot, ``KEFU_DEMO=1``, no model key, its
own SQLite file in a temp dir, rate limits raised so they are checked but never trip) and runs slices of N turns
against each, round-robin across the trees in R rounds so machine noise hits all alike. A slice is one scenario:
a new session per turn or turns in existing sessions (made before the slice, at most ``--session-turns``
measured turns each), sequential (concurrency 1) or concurrent. CPU is the server process's utime+stime from
/proc (other load on the machine does not inflate it, though it can slow the server's caches); wall is the
slice's duration per turn. Every turn's ``done`` must have the expected ``source`` (``faq``), or the run stops.

    .venv/bin/python -m benchmarks.turn_cpu                                  # the current checkout
    .venv/bin/python -m benchmarks.turn_cpu --baseline /tmp/kefu-before      # before/after from one run
    .venv/bin/python -m benchmarks.turn_cpu --tree a=/tmp/a --tree b=/tmp/b --n 1000 --rounds 7 --json out.json
    .venv/bin/python -m benchmarks.turn_cpu --mock --redis redis://127.0.0.1:6379/0

Make an older tree with ``git archive <rev> | tar -x -C DIR``; its server imports kefu from ``DIR``
(``PYTHONPATH``), the bot is each tree's own demo bot. ``--mock`` also starts ``kefu mock-llm``, asks each server
a model question once (the model answers and the answer is shared) and then measures the ``cache`` scenario: the
same question in new sessions, each of which must end ``done.cached == true`` (shared answers are for first turns
only, so there is no existing-session variant). ``--redis URL`` keeps hot state (and shared answers) in Redis,
under a key prefix of its own per tree and run. The table shows per scenario and tree the median and min..max of the
slices' CPU ms/turn and wall ms/turn, and the ratio of each tree's medians to the first tree's (``--baseline``
is the first tree). ``--json PATH`` writes every slice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import REPO, BenchServer, describe_machine, machine, start_bench_mock, write_json
from tests.support import JWT_SECRET, MockLLM, free_port, token_for

CLK_TCK = os.sysconf("SC_CLK_TCK")
FAQ_QUESTION = "运费多少？"  # the demo shop's FAQ answers it
MODEL_QUESTION = "想给妈妈买件外套，有什么推荐吗？"  # the demo shop's FAQ does not: the model (or shared answer) does
TARGET_MS = 1.5  # the turn-start CPU target per FAQ turn


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


@dataclass
class Tree:
    """One ``kefu serve`` under test."""

    label: str
    path: str
    server: BenchServer | None = None
    pid: int = 0
    url: str = ""


@dataclass(frozen=True)
class Scenario:
    kind: str  # faq | cache
    sessions: str  # new | existing
    concurrency: int

    @property
    def name(self) -> str:
        return f"{self.kind} {self.sessions} c={self.concurrency}"


@dataclass
class Slice:
    round: int
    scenario: str
    kind: str
    sessions: str
    concurrency: int
    tree: str
    turns: int
    cpu_ms: float  # per turn
    user_ms: float
    sys_ms: float
    wall_ms: float


@dataclass
class Expect:
    sources: tuple[str, ...]
    cached: bool | None = None  # None: don't check


@dataclass
class Turn:
    session_id: str | None = None
    done: dict[str, Any] = field(default_factory=dict)


class Client:
    """Turns through ``/v1/chat`` with aiohttp (cheap on the client side; the server's CPU is measured)."""

    def __init__(self, session: aiohttp.ClientSession, users: list[dict[str, str]]) -> None:
        self.session = session
        self.users = users

    async def turn(self, url: str, user: int, message: str, session_id: str | None, expect: Expect) -> Turn:
        body: dict[str, Any] = {"message": message}
        if session_id:
            body["session_id"] = session_id
        result = Turn()
        event = b""
        async with self.session.post(f"{url}/v1/chat", json=body, headers=self.users[user]) as response:
            if response.status != 200:
                raise AssertionError(f"{url}: http {response.status}: {(await response.text())[:300]}")
            async for line in response.content:
                if line.startswith(b"event: "):
                    event = line[7:].rstrip()
                elif line.startswith(b"data: "):
                    if event == b"session":
                        result.session_id = json.loads(line[6:])["session_id"]
                    elif event == b"done":
                        result.done = json.loads(line[6:])
                    elif event == b"error":
                        result.done = {"source": "error", "error": json.loads(line[6:])}
        source = result.done.get("source")
        if source not in expect.sources:
            raise AssertionError(f"{url}: {message!r} ended {result.done or 'without done'}, want {expect.sources}")
        if expect.cached is not None and bool(result.done.get("cached")) != expect.cached:
            raise AssertionError(f"{url}: {message!r} done.cached is {result.done.get('cached')}, want {expect.cached}")
        return result


def redis_prefix(tree: Tree) -> str:
    return f"kefu-turncpu-{os.getpid()}-{tree.label}"


def drop_redis_keys(url: str, prefixes: list[str]) -> None:
    """Delete what the servers left in Redis under their prefixes (cached answers would live for a day)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for prefix in prefixes:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


def start_tree(tree: Tree, base_env: dict[str, str]) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"kefu-turncpu-{tree.label}-"))
    env = {
        "KEFU_REDIS_PREFIX": redis_prefix(tree),  # with --redis: nothing shared with other trees or runs
        **base_env,
        "PYTHONPATH": tree.path,
        "KEFU_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'kefu.db'}",
    }
    tree.server = BenchServer(env=env, workdir=workdir, port=free_port()).start()
    assert tree.server.proc is not None
    tree.pid, tree.url = tree.server.proc.pid, tree.server.url


async def new_sessions(client: Client, tree: Tree, workers: int, count: int) -> list[list[str]]:
    """``count`` fresh sessions (one FAQ turn each) for each of ``workers`` users; not measured."""

    async def make(worker: int) -> list[str]:
        made = []
        for _ in range(count):
            turn = await client.turn(tree.url, worker, FAQ_QUESTION, None, Expect(("faq",)))
            assert turn.session_id is not None
            made.append(turn.session_id)
        return made

    return list(await asyncio.gather(*(make(w) for w in range(workers))))


async def run_slice(
    client: Client, tree: Tree, scenario: Scenario, n: int, session_turns: int, settle: float, round_: int
) -> Slice:
    per = max(1, n // scenario.concurrency)  # turns per worker
    if scenario.kind == "faq":
        message, expect = FAQ_QUESTION, Expect(("faq",))
    else:
        message, expect = MODEL_QUESTION, Expect(("llm", "kb"), cached=True)
    sessions: list[list[str]] = []
    if scenario.sessions == "existing":
        sessions = await new_sessions(client, tree, scenario.concurrency, -(-per // session_turns))
    await asyncio.sleep(settle)  # let the set-up turns' after-work (writes, turn log) finish outside the slice

    async def worker(w: int) -> None:
        for t in range(per):
            sid = sessions[w][t // session_turns] if sessions else None
            await client.turn(tree.url, w, message, sid, expect)

    user0, sys0 = cpu_times(tree.pid)
    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(scenario.concurrency)))
    wall = time.perf_counter() - start
    user1, sys1 = cpu_times(tree.pid)
    turns = per * scenario.concurrency
    user_ms, sys_ms = (user1 - user0) / turns * 1000, (sys1 - sys0) / turns * 1000
    return Slice(
        round_,
        scenario.name,
        scenario.kind,
        scenario.sessions,
        scenario.concurrency,
        tree.label,
        turns,
        user_ms + sys_ms,
        user_ms,
        sys_ms,
        wall / turns * 1000,
    )


def summarise(slices: list[Slice], trees: list[Tree], scenarios: list[Scenario]) -> list[dict[str, Any]]:
    rows = []
    for scenario in scenarios:
        first: dict[str, float] = {}
        for tree in trees:
            mine = [s for s in slices if s.scenario == scenario.name and s.tree == tree.label]
            if not mine:
                continue
            cpu = [s.cpu_ms for s in mine]
            wall = [s.wall_ms for s in mine]
            row: dict[str, Any] = {
                "scenario": scenario.name,
                "tree": tree.label,
                "slices": len(mine),
                "turns": sum(s.turns for s in mine),
                "cpu_ms_median": statistics.median(cpu),
                "cpu_ms_min": min(cpu),
                "cpu_ms_max": max(cpu),
                "user_ms_median": statistics.median(s.user_ms for s in mine),
                "sys_ms_median": statistics.median(s.sys_ms for s in mine),
                "wall_ms_median": statistics.median(wall),
                "wall_ms_min": min(wall),
                "wall_ms_max": max(wall),
            }
            first = first or {"cpu": row["cpu_ms_median"], "wall": row["wall_ms_median"]}
            row["cpu_ratio"] = row["cpu_ms_median"] / first["cpu"] if first["cpu"] else float("nan")
            row["wall_ratio"] = row["wall_ms_median"] / first["wall"] if first["wall"] else float("nan")
            rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]], first: str) -> None:
    print(
        f"| scenario | tree | turns | CPU ms/turn median | CPU min..max | wall ms/turn median | wall min..max "
        f"| CPU × {first} | wall × {first} |"
    )
    print("|---" * 9 + "|")
    for r in rows:
        print(
            f"| {r['scenario']} | {r['tree']} | {r['turns']} | {r['cpu_ms_median']:.2f} | "
            f"{r['cpu_ms_min']:.2f}..{r['cpu_ms_max']:.2f} | {r['wall_ms_median']:.2f} | "
            f"{r['wall_ms_min']:.2f}..{r['wall_ms_max']:.2f} | {r['cpu_ratio']:.2f} | {r['wall_ratio']:.2f} |"
        )


async def main_async(args: argparse.Namespace, trees: list[Tree]) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="kefu-turncpu-"))
    env = {
        "KEFU_JWT_SECRET": JWT_SECRET,
        "KEFU_DEMO": "1",
        "KEFU_LOG_LEVEL": "warning",
        # Checked on every turn, never tripped.
        "KEFU_RATE_LIMIT_USER": "1000000/minute",
        "KEFU_RATE_LIMIT_IP": "1000000/minute",
        "KEFU_RATE_LIMIT_API_KEY": "1000000/minute",
        # Empty = unset (env_ignore_empty): nothing from the calling shell reaches the servers.
        "KEFU_LLM_API_KEY": "",
        "KEFU_LLM_OAUTH_TOKEN_URL": "",
        "KEFU_REDIS_URL": args.redis or "",
        "KEFU_BOT_DIR": "",
    }
    mock: MockLLM | None = None
    failed = False
    scenarios = [Scenario("faq", s, c) for s in args.sessions for c in args.concurrency]
    try:
        if args.mock:
            mock = start_bench_mock(workdir, "--ttft", "0.01", "--tps", "10000", "--tokens", "100")
            env |= {
                "KEFU_LLM_BASE_URL": mock.url + "/v1",
                "KEFU_LLM_API_KEY": "sk-bench",
                "KEFU_LLM_MODEL": "mock-chat",
                "KEFU_ANSWER_CACHE_TTL": "86400",  # no expiry during the run
            }
            scenarios += [Scenario("cache", "new", c) for c in args.concurrency]
        env |= dict(e.split("=", 1) for e in args.env)
        for tree in trees:
            start_tree(tree, env)
        m = machine()
        print(
            f"{describe_machine(m)}\nhot state: {'redis' if args.redis else 'memory'}; {args.n} turns per slice, "
            f"{args.rounds} rounds; trees: " + ", ".join(f"{t.label}={t.path}" for t in trees),
            flush=True,
        )
        slices: list[Slice] = []
        width = max(args.concurrency)
        users = [{"Authorization": f"Bearer {token_for(f'turncpu-{i}', ttl=86400)}"} for i in range(width)]
        connector = aiohttp.TCPConnector(limit=width + 10)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            client = Client(session, users)
            for tree in trees:  # warm-up: first-request costs are not per turn
                for i in range(args.warmup):
                    await client.turn(tree.url, i % width, FAQ_QUESTION, None, Expect(("faq",)))
                if args.mock:  # the model answers once; from then on the answer is shared
                    await client.turn(tree.url, 0, MODEL_QUESTION, None, Expect(("llm", "kb"), cached=False))
                    await client.turn(tree.url, 0, MODEL_QUESTION, None, Expect(("llm", "kb"), cached=True))
            for round_ in range(args.rounds):
                shift = round_ % len(trees)
                order = trees[shift:] + trees[:shift]
                for scenario in scenarios:
                    for tree in order:
                        done = await run_slice(client, tree, scenario, args.n, args.session_turns, args.settle, round_)
                        slices.append(done)
                        if args.verbose:
                            print(
                                f"  round {round_} {scenario.name} {tree.label}: {done.cpu_ms:.2f} ms CPU "
                                f"({done.user_ms:.2f} user, {done.sys_ms:.2f} sys), {done.wall_ms:.2f} ms wall",
                                flush=True,
                            )
        rows = summarise(slices, trees, scenarios)
        print()
        print_table(rows, trees[0].label)
        print(f"\ntarget: ≤ {TARGET_MS} ms server CPU per FAQ turn")
        if args.json:
            write_json(
                Path(args.json),
                {
                    "machine": m,
                    "args": vars(args),
                    "trees": {t.label: t.path for t in trees},
                    "summary": rows,
                    "slices": [asdict(s) for s in slices],
                },
            )
    except BaseException:
        for tree in trees:
            if tree.server is not None:
                print(f"--- {tree.label} server log ({tree.server.log_path}), tail:\n{tree.server.log_tail(2000)}")
        failed = True
        raise
    finally:
        for tree in trees:
            if tree.server is not None:
                tree.server.stop()
        if mock is not None:
            mock.stop()
        if args.redis:
            drop_redis_keys(args.redis, [redis_prefix(t) for t in trees])
        if not failed:  # keep the databases and logs of a failed run
            for path in [workdir] + [t.server.workdir for t in trees if t.server is not None]:
                shutil.rmtree(path, ignore_errors=True)


def parse_trees(args: argparse.Namespace) -> list[Tree]:
    trees = [Tree("before", args.baseline)] if args.baseline else []
    for spec in args.tree or ([] if args.baseline else [f"current={REPO}"]):
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            raise SystemExit(f"--tree wants LABEL=DIR, got {spec!r}")
        trees.append(Tree(label, path))
    if args.baseline and not args.tree:
        trees.append(Tree("current", str(REPO)))
    labels = [t.label for t in trees]
    if len(set(labels)) != len(labels):
        raise SystemExit(f"tree labels must differ: {labels}")
    for tree in trees:
        tree.path = str(Path(tree.path).resolve())
        if not (Path(tree.path) / "kefu" / "__init__.py").is_file():
            raise SystemExit(f"{tree.path} has no kefu package")
    return trees


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", help="LABEL=DIR: a kefu source tree to run (repeatable)")
    parser.add_argument("--baseline", default=None, help="shortcut for --tree before=DIR (then the current checkout)")
    parser.add_argument("--n", type=int, default=500, help="turns per slice")
    parser.add_argument("--rounds", type=int, default=5, help="slices per scenario and tree, interleaved")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--sessions", nargs="+", choices=("new", "existing"), default=["new", "existing"])
    parser.add_argument("--session-turns", type=int, default=10, help="measured turns per existing session")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured FAQ turns per server first")
    parser.add_argument("--settle", type=float, default=0.2, help="seconds of quiet before each slice")
    parser.add_argument("--redis", default=None, help="keep hot state in this Redis (a key prefix per tree)")
    parser.add_argument("--mock", action="store_true", help="also measure shared-answer cache hits (mock model)")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for every server (repeatable)")
    parser.add_argument("--json", default=None, help="write the slices and the summary here")
    parser.add_argument("--verbose", action="store_true", help="print every slice")
    args = parser.parse_args()
    if args.n < 1 or args.rounds < 1 or args.session_turns < 1 or min(args.concurrency) < 1:
        parser.error("--n, --rounds, --session-turns and --concurrency must be at least 1")
    asyncio.run(main_async(args, parse_trees(args)))


if __name__ == "__main__":
    main()
