"""Micro-benchmark of the upstream hot loop: CPU per chunk of a 175-token DeepSeek-style stream, no network.

``OpenAICompatModel.stream`` runs against a fake response whose ``readany`` hands out the stream one SSE frame
per read (2 keep-alive comments, the role chunk, 175 one-token content chunks, the finish chunk with usage,
``[DONE]``), so what is timed is the loop itself: reads, SSE framing, JSON, events, watchdog bookkeeping (reads
are not paced). ``--before REV`` also loads ``kefu/llm`` as it was at a git revision (into a temporary package)
and times both side by side, in alternating rounds, after checking that both yield the same events. The pure
:class:`~kefu.llm.decoder.ChatStreamDecoder` is timed alone too.

    .venv/bin/python -m benchmarks.decoder                        # this tree
    .venv/bin/python -m benchmarks.decoder --before 83d1e73       # and the code at a revision, side by side
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from benchmarks.common import REPO
from kefu.llm import openai_compat
from kefu.llm.auth import StaticKey
from kefu.llm.base import ChatMessage, ChatRequest
from kefu.llm.decoder import ChatStreamDecoder

MODEL = "deepseek-chat"
ANSWER = (
    "您好！关于您的订单 A1001，我们已经在今天下午 3 点通过顺丰快递发出，预计 2-3 个工作日送达。"
    "您可以在「我的订单」页面查看物流信息，也可以拨打客服热线 400-800-1234 咨询。"
    "如果收到商品后有任何质量问题，7 天内可以申请无理由退换货，运费由我们承担。"
    "Your order A1001 shipped today via SF Express and should arrive in 2-3 business days. "
    "您还可以关注我们的公众号，第一时间获取优惠活动和新品上架的通知。祝您购物愉快！"
)


def tokens(text: str, count: int) -> list[str]:
    """``count`` DeepSeek-like tokens: an ASCII word with its leading space, or one or two CJK characters."""
    pieces = re.findall(r" ?[A-Za-z0-9-]+|[^\x00-\x7f]{1,2}|.", text)
    while len(pieces) < count:
        pieces += pieces
    return pieces[:count]


def deepseek_stream(count: int = 175) -> list[bytes]:
    """The stream as an upstream sends it, one frame per read."""
    head = (
        b'data: {"id":"3f1c0b2e-6a7d-4c1e-9b8a-0d5e2f7a9c41","object":"chat.completion.chunk","created":1718345013,'
        b'"model":"deepseek-chat","system_fingerprint":"fp_a49d71b8a1_prod0225","choices":[{"index":0,"delta":'
    )
    tail = b',"logprobs":null,"finish_reason":null}]}\n\n'
    usage = {
        "prompt_tokens": 812,
        "completion_tokens": count,
        "total_tokens": 812 + count,
        "prompt_tokens_details": {"cached_tokens": 768},
        "prompt_cache_hit_tokens": 768,
        "prompt_cache_miss_tokens": 44,
    }
    reads = [b": keep-alive\n\n", b": keep-alive\n\n", head + b'{"role":"assistant","content":""}' + tail]
    reads += [head + b'{"content":' + orjson.dumps(t) + b"}" + tail for t in tokens(ANSWER, count)]
    finish = b'{"content":""},"logprobs":null,"finish_reason":"stop"}],"usage":' + orjson.dumps(usage) + b"}\n\n"
    reads += [head + finish, b"data: [DONE]\n\n"]
    return reads


class _Content:
    __slots__ = ("_next",)

    def __init__(self, reads: list[bytes]) -> None:
        self._next = iter([*reads, b""]).__next__

    async def readany(self) -> bytes:
        return self._next()


class FakeResponse:
    """What the stream loop uses of an ``aiohttp.ClientResponse``."""

    headers = {"Content-Type": "text/event-stream"}
    connection = None

    def __init__(self, reads: list[bytes]) -> None:
        self.content = _Content(reads)

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


def load_revision(rev: str, into: Path) -> ModuleType:
    """``kefu/llm``'s modules at ``rev`` as a package of their own; returns its ``openai_compat``."""
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{rev}:kefu/llm"], cwd=REPO, check=True, capture_output=True, text=True
    )
    names = [n[:-3] for n in listing.stdout.split() if n.endswith(".py") and n != "__init__.py"]
    package = "kefu_llm_" + re.sub(r"\W", "_", rev)
    (into / package).mkdir()
    (into / package / "__init__.py").write_text("")
    pattern = re.compile(r"\bkefu\.llm\.(" + "|".join(names) + r")\b")
    for name in names:
        source = subprocess.run(
            ["git", "show", f"{rev}:kefu/llm/{name}.py"], cwd=REPO, check=True, capture_output=True, text=True
        ).stdout
        (into / package / f"{name}.py").write_text(pattern.sub(package + r".\1", source))
    sys.path.insert(0, str(into))
    return importlib.import_module(f"{package}.openai_compat")


def make_model(module: ModuleType, reads: list[bytes]) -> Any:
    model = module.OpenAICompatModel("http://upstream.invalid/v1", MODEL, StaticKey("sk-bench"))

    async def fake_open(*_: Any) -> FakeResponse:
        return FakeResponse(reads)

    model._open = fake_open
    return model


async def run_streams(model: Any, streams: int) -> tuple[float, list[Any]]:
    """Seconds to read ``streams`` streams to the end, and the last stream's events."""
    request = ChatRequest(messages=(ChatMessage("user", "我的订单什么时候发货？"),))
    events: list[Any] = []
    started = time.perf_counter()
    for _ in range(streams):
        events = [event async for event in model.stream(request)]
    return time.perf_counter() - started, events


def decode_alone(reads: list[bytes], streams: int) -> float:
    started = time.perf_counter()
    for _ in range(streams):
        decoder = ChatStreamDecoder(MODEL, MODEL)
        feed = decoder.feed
        for chunk in reads:
            feed(chunk)
        list(decoder.end())
    return time.perf_counter() - started


def summary(label: str, seconds: list[float], chunks: int, reference: list[float] | None = None) -> str:
    """Min and median µs per chunk; against ``reference`` (timed in the same rounds) the median per-round ratio.

    On a busy machine the minimum is the steadier figure; the paired ratio cancels load that shifts between rounds.
    """
    per = [s / chunks * 1e6 for s in seconds]
    line = f"{label:<34} min {min(per):6.3f}   median {statistics.median(per):6.3f} µs/chunk"
    if reference is not None:
        ratio = statistics.median(a / b for a, b in zip(seconds, reference, strict=True))
        line += f"   (paired: {(ratio - 1) * 100:+.1f} % vs before)"
    return line


async def main_async(args: argparse.Namespace) -> None:
    reads = deepseek_stream(args.tokens)
    chunks = len(reads) * args.streams
    variants: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.before:
            variants[f"before ({args.before}) stream()"] = make_model(load_revision(args.before, Path(tmp)), reads)
        variants["after (this tree) stream()"] = make_model(openai_compat, reads)
        outputs = [repr((await run_streams(model, 1))[1]) for model in variants.values()]
        if any(out != outputs[-1] for out in outputs):
            raise SystemExit("before and after yield different events")
        timings: dict[str, list[float]] = {label: [] for label in variants}
        alone: list[float] = []
        for _ in range(args.rounds):
            for label, model in variants.items():
                timings[label].append((await run_streams(model, args.streams))[0])
            alone.append(decode_alone(reads, args.streams))
        for model in variants.values():
            await model.aclose()
    print(f"{args.tokens}-token stream, {len(reads)} reads of one frame; {args.streams} streams x {args.rounds} rounds")
    reference = next(iter(timings.values())) if args.before else None
    for label, seconds in timings.items():
        print(summary(label, seconds, chunks, reference if label.startswith("after") else None))
    print(summary("ChatStreamDecoder alone (after)", alone, chunks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default=None, help="git revision to compare with (its kefu/llm modules)")
    parser.add_argument("--tokens", type=int, default=175)
    parser.add_argument("--streams", type=int, default=100, help="streams per round and variant")
    parser.add_argument("--rounds", type=int, default=60)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
