"""Does the knowledge base work for a shop it was never tuned on? FAQ imported into an empty bot directory.

For each set, a temporary bot directory holds only the shop's FAQ files (no dictionary, no synonyms, no
stopwords: what a new shop has on day one) and the knowledge base is built the way the server builds it
(``KnowledgeBase`` over a fresh SQLite file, default thresholds). Sets:

* ``demo`` — the demo shop's bot directory as shipped (its own dictionary, synonyms, 507 similar questions);
* ``demo-faq`` — the demo's FAQ alone in an empty bot directory (its similar questions, none of its lexicon);
* ``demo-bare`` — the demo's FAQ questions and answers alone (no similar questions either);
* ``<shop>`` — each ``evals/faq/<shop>/``: its FAQ files (``*.csv``, ``*.jsonl``, ``*.md`` anywhere under it;
  never ``eval*``; a dictionary or synonyms there are NOT used) and labelled queries ``eval.jsonl`` or
  ``kb/eval.jsonl`` (the format of ``kefu kb eval``).

Columns (answerable = queries with an expected entry): hit@1 / hit@3 on answerable; *direct* = answered
directly with the right entry, of answerable; *suggest* = "您是不是想问…" (medium), of answerable; *wrong* = a
direct answer with the wrong entry, of answerable; *false (none)* = any direct answer to an unanswerable query,
of unanswerable; *false* = both kinds of bad direct answer, of all queries.

    .venv/bin/python -m benchmarks.kb_transfer [--sets demo grocery] [--json] [--misses grocery]

It only uses the public knowledge-base API, so it also runs against an older checkout (before/after)::

    git archive HEAD | tar -x -C /tmp/kefu-before
    cd /tmp && PYTHONPATH=/tmp/kefu-before /work/main/.venv/bin/python /work/main/benchmarks/kb_transfer.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.kb_quality import production
from kefu.config import DEMO_BOT_DIR
from kefu.kb import evaluate
from kefu.kb.botdir import load_bot_content
from kefu.obs.logging import configure_logging

EVALS = Path(__file__).resolve().parent.parent / "evals" / "faq"
FAQ_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".md", ".markdown")


@dataclass(frozen=True, slots=True)
class Numbers:
    """One set's outcome."""

    queries: int
    answerable: int
    unanswerable: int
    hit_at_1: float
    hit_at_3: float
    direct: float
    suggest: float
    wrong: float
    false_none: float
    false_all: float


def numbers(outcomes: Sequence[evaluate.QueryOutcome]) -> Numbers:
    """The transfer columns of ``outcomes``."""
    answerable = [o for o in outcomes if o.expected_id is not None]
    none = [o for o in outcomes if o.expected_id is None]
    a, u = max(1, len(answerable)), max(1, len(none))
    wrong = sum(o.answered not in (None, o.expected_id) for o in answerable)
    false_none = sum(o.answered is not None for o in none)
    return Numbers(
        queries=len(outcomes),
        answerable=len(answerable),
        unanswerable=len(none),
        hit_at_1=round(sum(o.rank == 1 for o in answerable) / a, 3),
        hit_at_3=round(sum(o.rank is not None and o.rank <= 3 for o in answerable) / a, 3),
        direct=round(sum(o.answered == o.expected_id for o in answerable) / a, 3),
        suggest=round(sum(o.confidence == "medium" for o in answerable) / a, 3),
        wrong=round(wrong / a, 3),
        false_none=round(false_none / u, 3),
        false_all=round((wrong + false_none) / max(1, len(outcomes)), 3),
    )


def _demo_faq(target: Path, *, similar: bool) -> None:
    """The demo's FAQ entries as one JSONL file in ``target/kb/faq`` (documents and lexicon left out)."""
    folder = target / "kb" / "faq"
    folder.mkdir(parents=True)
    rows = [
        {
            "id": e.id,
            "question": e.question,
            "answer": e.answer,
            "similar_questions": list(e.similar) if similar else [],
        }
        for e in load_bot_content(DEMO_BOT_DIR).entries
        if e.kind == "faq"
    ]
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    (folder / "faq.jsonl").write_text(text, encoding="utf-8")


def _shop(source: Path, target: Path) -> None:
    """A shop's FAQ files copied into ``target/kb/faq`` (eval files stay out)."""
    folder = target / "kb" / "faq"
    folder.mkdir(parents=True)
    for path in sorted(source.rglob("*")):
        if path.is_file() and path.suffix.lower() in FAQ_SUFFIXES and not path.name.lower().startswith("eval"):
            shutil.copy(path, folder / path.relative_to(source).as_posix().replace("/", "__"))


def shop_eval(shop: Path) -> Path | None:
    """The labelled queries of a shop folder."""
    return next((p for p in (shop / "eval.jsonl", shop / "kb" / "eval.jsonl") if p.is_file()), None)


def available_sets() -> list[str]:
    """The demo sets and every shop under ``evals/faq``."""
    shops = sorted(p.name for p in EVALS.iterdir() if shop_eval(p) is not None) if EVALS.is_dir() else []
    return ["demo", "demo-faq", "demo-bare", *shops]


def run_set(name: str) -> tuple[Numbers, list[evaluate.QueryOutcome]]:
    """Build the bot directory of set ``name`` and measure it."""
    with tempfile.TemporaryDirectory() as tmp:
        bot = Path(tmp) / "bot"
        if name == "demo":
            bot = DEMO_BOT_DIR
            eval_file = DEMO_BOT_DIR / "kb" / "eval.jsonl"
        elif name in ("demo-faq", "demo-bare"):
            _demo_faq(bot, similar=name == "demo-faq")
            eval_file = DEMO_BOT_DIR / "kb" / "eval.jsonl"
        else:
            _shop(EVALS / name, bot)
            found = shop_eval(EVALS / name)
            if found is None:
                raise SystemExit(f"no eval.jsonl under {EVALS / name}")
            eval_file = found
        cases = evaluate.load_cases(eval_file)
        outcomes = asyncio.run(production(bot, cases))
    return numbers(outcomes), outcomes


def table(rows: Sequence[tuple[str, Numbers]]) -> str:
    """A Markdown table of the sets."""
    lines = [
        "| set | queries (none) | hit@1 | hit@3 | direct | suggest | wrong | false (none) | false |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, n in rows:
        lines.append(
            f"| {name} | {n.queries} ({n.unanswerable}) | {n.hit_at_1:.3f} | {n.hit_at_3:.3f} | {n.direct:.3f} "
            f"| {n.suggest:.3f} | {n.wrong:.3f} | {n.false_none:.3f} | {n.false_all:.3f} |"
        )
    return "\n".join(lines)


def misses(outcomes: Sequence[evaluate.QueryOutcome]) -> list[str]:
    """One line per miss: wrong top hit, no direct answer, or a direct answer that should not be."""
    out = []
    for o in outcomes:
        got = o.ranked_questions[0] if o.ranked_questions else "-"
        score = f"{o.scores[0]:.2f}" if o.scores else "-"
        second = f"{o.scores[1]:.2f}" if len(o.scores) > 1 else "-"
        if o.expected_id is None:
            if o.answered is not None:
                out.append(f"FALSE   {o.case.query!r} → {got} ({score}/{second})")
        elif o.rank != 1:
            out.append(f"RANK{o.rank or '-':<3} {o.case.query!r} → {got} ({score}/{second}) want {o.case.expected}")
        elif o.answered is None:
            out.append(f"{o.confidence.upper():<7} {o.case.query!r} → {got} ({score}/{second})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="*", default=None, help="default: every set (see the module doc)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--misses", nargs="*", default=(), help="print the misses of these sets")
    args = parser.parse_args()
    configure_logging("warning")
    names = args.sets or available_sets()
    rows = []
    for name in names:
        result, outcomes = run_set(name)
        rows.append((name, result))
        if name in args.misses:
            print(f"\n# misses of {name}", file=sys.stderr)
            for line in misses(outcomes):
                print(line, file=sys.stderr)
    if args.json:
        print(json.dumps({name: asdict(n) for name, n in rows}, ensure_ascii=False, indent=1))
    else:
        print(table(rows))


if __name__ == "__main__":
    main()
