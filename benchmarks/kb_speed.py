"""Knowledge-base search latency (p50/p99) and index memory at 1k / 10k / 100k synthetic FAQ entries.

Entries are generated from jieba's own dictionary (common 2–4 character words) so the vocabulary, posting
lists and term statistics look like real Chinese text: each entry has a question, 2–4 similar questions and
an answer of about 60 characters. Queries are drawn from the entries and perturbed the way shoppers type
(a dropped word, a swapped character, a word from another entry, English filler), plus off-topic ones.

Latency is the index search itself (the code that runs in the worker thread) and, separately, the same search
handed to a worker thread and awaited from the event loop (as ``KnowledgeBase`` runs it), single-threaded.
Index memory is the size of what the index keeps (numpy arrays, vocabulary, texts) and the growth of the
process's peak RSS while building it (which includes the build's garbage).

    .venv/bin/python -m benchmarks.kb_speed --sizes 1000 10000 100000 --queries 2000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import jieba  # type: ignore[import-untyped]

from kefu.kb.entries import Entry, make_entry
from kefu.kb.service import KB_WEIGHTS
from kefu.text.analyzer import Analyzer
from kefu.text.index import Index
from kefu.text.lexicon import Lexicon

INTENTS = ["怎么{}", "{}多少钱", "{}可以退吗", "{}什么时候到", "{}坏了怎么办", "能不能{}", "{}有优惠吗", "{}在哪里看"]
FILLER_EN = ["please", "help", "how", "about", "my", "order"]


def vocabulary(size: int, seed: int) -> list[str]:
    """Common Chinese words from the installed jieba dictionary."""
    path = Path(jieba.__file__).parent / "dict.txt"
    words = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            word, freq, *_ = line.split()
            if 2 <= len(word) <= 4 and int(freq) >= 200 and all("\u4e00" <= c <= "\u9fff" for c in word):
                words.append(word)
    random.Random(seed).shuffle(words)
    return words[:size]


def synthetic_entries(n: int, seed: int = 6) -> list[Entry]:
    """``n`` FAQ entries with similar questions and answers, deterministic for a seed."""
    rng = random.Random(seed)
    words = vocabulary(20_000, seed)
    entries = []
    for i in range(n):
        topic = rng.sample(words, 2)
        question = rng.choice(INTENTS).format("".join(topic))
        similar = [rng.choice(INTENTS).format(rng.choice(topic) + rng.choice(words)) for _ in range(rng.randint(2, 4))]
        answer = "，".join("".join(rng.sample(words, 3)) for _ in range(5)) + "。"
        entries.append(
            make_entry({"id": f"e{i}", "question": question, "answer": answer, "similar_questions": similar})
        )
    return entries


def queries(entries: list[Entry], count: int, seed: int = 7) -> list[str]:
    """Shopper-like queries: perturbed questions and some off-topic text."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        entry = rng.choice(entries)
        text = rng.choice([entry.question, *entry.similar])
        roll = rng.random()
        if roll < 0.25 and len(text) > 4:  # drop a piece
            cut = rng.randrange(len(text) - 2)
            text = text[:cut] + text[cut + 2 :]
        elif roll < 0.45:  # swap in a character from another entry
            other = rng.choice(entries).question
            pos = rng.randrange(len(text))
            text = text[:pos] + rng.choice(other) + text[pos + 1 :]
        elif roll < 0.6:
            text = f"{rng.choice(FILLER_EN)} {text} {rng.choice(FILLER_EN)}"
        elif roll < 0.7:
            text = "".join(rng.sample(rng.choice(entries).answer, 8))  # off-topic jumble
        out.append(text)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def index_mb(index: Index) -> float:
    """What the index keeps: numpy arrays, the vocabulary, variant texts and the entries' strings."""
    total = 0
    for postings in (index.questions, index.answers):
        total += sum(a.nbytes for a in (postings.data, postings.indices, postings.indptr, postings.totals))
    for value in vars(index).values():
        if hasattr(value, "nbytes"):
            total += int(value.nbytes)
    total += sys.getsizeof(index.vocab) + sum(sys.getsizeof(k) for k in index.vocab)
    total += sum(sys.getsizeof(t) for t in index.var_text)
    total += sum(sys.getsizeof(e.question) + sys.getsizeof(e.answer) for e in index.entries)
    return total / 1e6


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(n: int, count: int, analyzer: Analyzer) -> dict[str, float]:
    entries = synthetic_entries(n)
    sample = queries(entries, count)
    gc.collect()
    rss_before = rss_mb()
    started = time.perf_counter()
    index = Index(entries, analyzer, KB_WEIGHTS)  # the knowledge base's scoring (n-gram channel on)
    build = time.perf_counter() - started
    now = datetime.now(UTC)
    for q in sample[:50]:  # warm-up
        index.search(q, limit=5, now=now)
    core: list[float] = []
    for q in sample:
        t = time.perf_counter()
        index.search(q, limit=5, now=now)
        core.append((time.perf_counter() - t) * 1000)
    loop = asyncio.run(_through_loop(index, sample))
    return {
        "entries": n,
        "variants": len(index.var_text),
        "build_s": build,
        "index_mb": index_mb(index),
        "rss_growth_mb": rss_mb() - rss_before,
        "p50_ms": statistics.median(core),
        "p99_ms": percentile(core, 0.99),
        "max_ms": max(core),
        "loop_p50_ms": statistics.median(loop),
        "loop_p99_ms": percentile(loop, 0.99),
    }


async def _through_loop(index: Index, sample: list[str]) -> list[float]:
    """The same searches as the service runs them: handed to a worker thread and awaited."""
    now = datetime.now(UTC)
    out = []
    for q in sample:
        t = time.perf_counter()
        await asyncio.to_thread(index.search, q, limit=5, now=now)
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    analyzer = Analyzer(Lexicon.build())
    analyzer.terms("预热")
    header = (
        "| entries | variants | build s | index MB | peak RSS growth MB | p50 ms | p99 ms | max ms "
        "| via loop p50 ms | via loop p99 ms |"
    )
    print(header)
    print("|" + "---|" * 10)
    for n in args.sizes:
        r = measure(n, args.queries, analyzer)
        print(
            f"| {n:,} | {int(r['variants']):,} | {r['build_s']:.1f} | {r['index_mb']:.0f} | {r['rss_growth_mb']:.0f} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.2f} | {r['loop_p50_ms']:.2f} "
            f"| {r['loop_p99_ms']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
