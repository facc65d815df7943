"""Retrieval quality on the demo shop's labelled eval set, per split, plus an ablation of the pieces.

The headline numbers go through the production path (``KnowledgeBase`` over a fresh SQLite database, the
bot directory synced into it, the configured thresholds). The ablation rebuilds the index in memory with one
piece taken away at a time (synonyms and dictionary, character grams, pinyin grams, the answer field) to
show what each contributes. ``dev`` and ``holdout`` together are the *tune* split: their misses drove the
synonyms, dictionary, similar questions and thresholds. ``test`` was never looked at query by query; only its
aggregate numbers are reported (see docs/benchmarks.md, section 3).

    .venv/bin/python -m benchmarks.kb_quality
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from kefu.config import DEMO_BOT_DIR, Settings
from kefu.kb import evaluate
from kefu.kb.botdir import load_bot_content
from kefu.kb.confidence import Thresholds, decide
from kefu.kb.factory import open_knowledge_base
from kefu.kb.knowledge import Confidence
from kefu.obs.logging import configure_logging
from kefu.store.migrate import upgrade_database
from kefu.text.analyzer import Analyzer
from kefu.text.index import Index, Match, Weights
from kefu.text.lexicon import Lexicon

TUNE_SPLITS = ("dev", "holdout")  # the labelled queries whose misses were read while tuning; "test" never was


async def production(bot_dir: Path, cases: Sequence[evaluate.Case]) -> list[evaluate.QueryOutcome]:
    """Outcomes through the same code path the server uses."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/kb.db"
        await upgrade_database(url)
        kb = await open_knowledge_base(Settings(_env_file=None, bot_dir=bot_dir, database_url=url))
        try:
            entries, _ = await kb.store.list(limit=1_000_000)

            async def search(query: str) -> tuple[list[Match], Confidence]:
                found = await kb.explain(query, limit=evaluate.RANK_DEPTH)
                return found.matches, found.confidence

            return await evaluate.run(cases, entries, search)
        finally:
            await kb.aclose()


def ablation(bot_dir: Path, cases: Sequence[evaluate.Case]) -> list[tuple[str, dict[str, evaluate.EvalMetrics]]]:
    """Metrics per split with one piece of the retrieval removed at a time."""
    content = load_bot_content(bot_dir)
    base = Weights()
    variants: list[tuple[str, Lexicon, Weights]] = [
        ("everything", content.lexicon, base),
        ("no synonyms / dictionary", Lexicon.build(), base),
        ("words only (no character, no pinyin grams)", content.lexicon, replace(base, channels=(1.0, 0.0, 0.0))),
        ("no pinyin grams", content.lexicon, replace(base, channels=(0.5, 0.5, 0.0))),
        ("no answer field", content.lexicon, replace(base, answer=0.0)),
    ]
    now = datetime.now(UTC)
    rows = []
    for name, lexicon, weights in variants:
        index = Index(content.entries, Analyzer(lexicon), weights)

        async def search(query: str, index: Index = index) -> tuple[list[Match], Confidence]:
            matches = index.search(query, limit=evaluate.RANK_DEPTH, now=now)
            return matches, decide(matches, Thresholds())[0]

        outcomes = asyncio.run(evaluate.run(cases, content.entries, search))
        rows.append((name, _by_split(outcomes)))
    return rows


def _by_split(outcomes: Sequence[evaluate.QueryOutcome]) -> dict[str, evaluate.EvalMetrics]:
    result = evaluate.report(outcomes)
    return {"all": result.overall, **result.splits}


def _table(rows: Sequence[tuple[str, dict[str, evaluate.EvalMetrics]]], columns: Sequence[str]) -> str:
    lines = [
        "| configuration | split | queries (none) | hit@1 | hit@3 | MRR | direct answer | wrong answer "
        "| false answer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, splits in rows:
        for split in columns:
            m = splits.get(split)
            if m is None:
                continue
            lines.append(
                f"| {name} | {split} | {m.queries} ({m.no_answer}) | {m.hit_at_1:.3f} | {m.hit_at_3:.3f} | {m.mrr:.3f} "
                f"| {m.direct_accuracy:.3f} | {m.wrong_answer_rate:.3f} | {m.false_answer_rate:.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bot-dir", type=Path, default=DEMO_BOT_DIR)
    parser.add_argument("--eval", type=Path, default=None, help="default: <bot dir>/kb/eval.jsonl")
    parser.add_argument("--no-ablation", action="store_true")
    args = parser.parse_args()
    configure_logging("warning")
    cases = evaluate.load_cases(args.eval or args.bot_dir / "kb" / "eval.jsonl")
    outcomes = asyncio.run(production(args.bot_dir, cases))
    splits = _by_split(outcomes)
    print("Production path (KnowledgeBase over SQLite, default thresholds):\n")
    print(_table([("kefu", splits)], list(splits)))
    tune = [o for o in outcomes if o.case.split in TUNE_SPLITS]
    print("\n" + _table([("kefu", {"tune (dev + holdout)": evaluate.metrics(tune)})], ["tune (dev + holdout)"]))
    grid, best = evaluate.calibrate(tune)
    if best is not None:
        print(
            f"\nBest on tune (most direct answers with false <= 5 %, wrong <= 3 %): high={best.high} "
            f"margin={best.margin} → direct {best.direct_accuracy:.3f}, wrong {best.wrong_answer_rate:.3f}, "
            f"false {best.false_answer_rate:.3f}"
        )
    if not args.no_ablation:
        print("\nAblation (in-memory index, same thresholds):\n")
        print(_table(ablation(args.bot_dir, cases), ["dev", "holdout", "test"]))


if __name__ == "__main__":
    main()
