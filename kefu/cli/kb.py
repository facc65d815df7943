"""``kefu kb …``: import, list, search and evaluate a bot's knowledge base.

Every command opens the knowledge base exactly as the server does (bot files synced into the database,
same analyzer, same index, same thresholds), so what you see here is what chat answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kefu.config import Settings
from kefu.content.problems import LoadReport
from kefu.kb import evaluate
from kefu.kb.botdir import expand, load_file
from kefu.kb.entries import Entry, entry_json
from kefu.kb.factory import kb_config, open_knowledge_base
from kefu.kb.loaders import dedupe
from kefu.kb.service import KnowledgeBase
from kefu.obs.logging import configure_logging
from kefu.store.migrate import upgrade_database_sync

app = typer.Typer(
    help="Knowledge base: import FAQ files and documents, list, search, evaluate.\n\n"
    'Example: kefu kb search "运费怎么算" --bot-dir ./mybot',
    no_args_is_help=True,
)
err = Console(stderr=True)
out = Console(highlight=False)
T = TypeVar("T")

BotDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--bot-dir",
        help="Bot directory (default: KEFU_BOT_DIR, else the demo shop in demo mode, the neutral bot otherwise).",
        file_okay=False,
    ),
]
DatabaseOpt = Annotated[
    str | None, typer.Option("--database-url", help="Database (default: KEFU_DATABASE_URL, else ./kefu.db).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]


def _settings(bot_dir: Path | None, database_url: str | None) -> Settings:
    overrides: dict[str, Any] = {}
    if bot_dir is not None:
        overrides["bot_dir"] = bot_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    settings = Settings(**overrides)
    configure_logging("warning")
    upgrade_database_sync(settings.database_url)
    return settings


def _owning_bot(file: Path) -> Path | None:
    """The bot directory ``file`` belongs to (``<bot>/kb/eval.jsonl``), if any."""
    kb = file.resolve().parent
    return kb.parent if kb.name == "kb" and (kb.parent / "system_prompt.md").is_file() else None


def _with_kb(settings: Settings, work: Callable[[KnowledgeBase], Awaitable[T]]) -> T:
    async def run() -> T:
        kb = await open_knowledge_base(settings)
        try:
            return await work(kb)
        finally:
            await kb.aclose()

    return asyncio.run(run())


def _print_problems(report: LoadReport) -> None:
    for problem in report.problems:  # one line each, never wrapped: people grep these
        typer.echo(str(problem), err=True)


@app.command("import")
def import_(
    paths: Annotated[
        list[Path],
        typer.Argument(help="FAQ files (.csv .jsonl .md), documents (.md .txt .html) or folders.", exists=True),
    ],
    kind: Annotated[str, typer.Option(help="auto (by extension / a 'faq' folder), faq or doc.")] = "auto",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only read and validate; change nothing.")] = False,
    strict: Annotated[bool, typer.Option(help="Exit 1 if any row was skipped.")] = False,
    bot_dir: BotDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Import entries; re-importing the same path replaces what it imported before.

    Example: kefu kb import ./faq.csv ./manuals/ --database-url sqlite:///./kefu.db
    """
    if kind not in ("auto", "faq", "doc"):
        raise typer.BadParameter("--kind must be auto, faq or doc")
    chosen: Literal["auto", "faq", "doc"] = "faq" if kind == "faq" else "doc" if kind == "doc" else "auto"
    settings = _settings(bot_dir, database_url)
    report = LoadReport()
    batches: list[tuple[str, list[Entry]]] = []
    files = [(p, expand(p)) for p in paths]
    unreadable: list[Path] = []
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as progress:
        task = progress.add_task("reading", total=sum(len(f) for _, f in files))
        for root, members in files:
            entries: list[Entry] = []
            for file in members:
                progress.update(task, description=f"reading {file.name}")
                read = load_file(file, report, origin="", kind=chosen)
                if not read:
                    unreadable.append(file)
                entries.extend(read)
                progress.advance(task)
            if not members:
                unreadable.append(root)
            batches.append((f"import:{root.resolve()}", dedupe(entries, report)))
        if unreadable:
            # Refuse before writing anything: a file that yields nothing (empty, wrong header, broken CSV) is a
            # mistake, and importing the rest would hide it behind a "success".
            progress.stop()
            _print_problems(report)
            for path in unreadable:
                typer.echo(f"error: nothing to import from {path}", err=True)
            typer.echo("error: nothing was imported; fix the file(s) above and run the import again", err=True)
            raise typer.Exit(1)
        if not dry_run:
            write = progress.add_task("writing + indexing", total=len(batches))

            async def store(kb: KnowledgeBase) -> list[Any]:
                results = []
                for origin, entries in batches:
                    results.append(await kb.replace_origin(origin, entries))
                    progress.advance(write)
                return results

            changes = _with_kb(settings, store)
    _print_problems(report)
    total = sum(len(e) for _, e in batches)
    skipped = len(report.skipped)
    if dry_run:
        out.print(f"read {total} entries, skipped {skipped} rows (dry run: nothing written)")
    else:
        added = sum(c.added for c in changes)
        updated = sum(c.updated for c in changes)
        removed = sum(c.removed for c in changes)
        out.print(
            f"imported {total} entries ({added} new, {updated} changed, {removed} removed), skipped {skipped} rows"
        )
    if strict and skipped:
        raise typer.Exit(1)


@app.command("list")
def list_(
    kind: Annotated[str | None, typer.Option(help="Only faq or doc entries.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 1000,
    as_json: JsonOpt = False,
    bot_dir: BotDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """List entries (id, kind, category, question, similar questions, origin).

    Example: kefu kb list --kind faq
    """
    settings = _settings(bot_dir, database_url)

    async def work(kb: KnowledgeBase) -> tuple[list[Entry], int]:
        return await kb.store.list(kind=kind, limit=limit)

    entries, total = _with_kb(settings, work)
    if as_json:
        typer.echo(json.dumps([entry_json(e) for e in entries], ensure_ascii=False))
        return
    table = Table("id", "kind", "category", "question", "similar", "origin")
    for e in entries:
        table.add_row(e.id, e.kind, e.category or "", e.question, str(len(e.similar)), e.origin)
    out.print(table)
    out.print(f"{len(entries)} of {total} entries")


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="What a user would type.")],
    limit: Annotated[int, typer.Option(min=1, help="Number of hits.")] = 5,
    as_json: JsonOpt = False,
    bot_dir: BotDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Ranked hits with scores and the field that matched, the confidence band and the suggestions.

    Example: kefu kb search "yf多少" --json
    """
    settings = _settings(bot_dir, database_url)

    async def work(kb: KnowledgeBase) -> Any:
        return await kb.explain(query, limit=limit)

    found = _with_kb(settings, work)
    if as_json:
        rows = [{"id": m.entry.id, "question": m.entry.question, "score": m.score} for m in found.matches]
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("#", "score", "kind", "id", "question / title", "matched")
    for rank, m in enumerate(found.matches, start=1):
        matched = f"{m.field}: {m.text}" if m.text != m.entry.question else m.field
        table.add_row(str(rank), f"{m.score:.3f}", m.entry.kind, m.entry.id, m.entry.question, matched)
    out.print(table)
    out.print(f"confidence: {found.confidence}  ({found.elapsed_ms:.2f} ms)")
    if found.suggestions:
        out.print("suggestions: " + " | ".join(m.entry.question for m in found.suggestions))


@app.command("eval")
def eval_(
    file: Annotated[Path, typer.Argument(help='JSONL: {"query": ..., "expected": <question or null>} per line.')],
    split: Annotated[str | None, typer.Option(help="Only the cases of this split (e.g. dev, holdout).")] = None,
    min_hit1: Annotated[float | None, typer.Option(help="Exit 1 if hit@1 is below this.")] = None,
    max_false_answer: Annotated[
        float | None, typer.Option(help="Exit 1 if the false-answer rate is above this.")
    ] = None,
    calibrate: Annotated[bool, typer.Option(help="Also sweep the confidence thresholds and print the best.")] = False,
    as_json: JsonOpt = False,
    bot_dir: BotDirOpt = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Replay labelled queries: hit@1, hit@3, MRR, direct-answer accuracy, false-answer rate, the misses.

    Exit codes: 0 ran (and met --min-hit1 / --max-false-answer), 1 a gate failed, 2 unusable eval file.

    Example: kefu kb eval kefu/demo/kb/eval.jsonl --min-hit1 0.9 --max-false-answer 0.05
    """
    if not file.is_file():
        err.print(f"error: no eval file {file}")
        raise typer.Exit(2)
    try:
        cases = [c for c in evaluate.load_cases(file) if split is None or c.split == split]
    except evaluate.EvalFileError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(2) from exc
    if bot_dir is None and not Settings().bot_dir_chosen:
        bot_dir = _owning_bot(file)  # <bot>/kb/eval.jsonl is that bot's eval set, whatever the mode's default bot
    settings = _settings(bot_dir, database_url)

    async def work(kb: KnowledgeBase) -> list[evaluate.QueryOutcome]:
        entries, _ = await kb.store.list(limit=1_000_000)

        async def searcher(query: str) -> Any:
            found = await kb.explain(query, limit=evaluate.RANK_DEPTH)
            return found.matches, found.confidence

        return await evaluate.run(cases, entries, searcher)

    try:
        outcomes = _with_kb(settings, work)
    except evaluate.EvalFileError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(2) from exc
    result = evaluate.report(outcomes)
    thresholds = kb_config(settings).thresholds
    grid, best = evaluate.calibrate(outcomes, thresholds=thresholds) if calibrate else ([], None)
    if as_json:
        data = result.as_dict()
        if calibrate:
            data["calibration"] = {"best": dataclasses.asdict(best) if best else None}
        typer.echo(json.dumps(data, ensure_ascii=False))
    else:
        _print_eval(result, best, calibrate)
    m = result.overall
    failed = (min_hit1 is not None and m.hit_at_1 < min_hit1) or (
        max_false_answer is not None and m.false_answer_rate > max_false_answer
    )
    if failed:
        err.print("[red]quality gate failed[/red]")
        raise typer.Exit(1)


def _print_eval(result: evaluate.Report, best: evaluate.Calibration | None, calibrate: bool) -> None:
    misses = Table("line", "query", "expected", "got (score, confidence)", "rank", title="misses")
    for miss in result.misses:
        got = f"{miss['got']} ({miss['score']}, {miss['confidence']})" if miss["got"] else "—"
        misses.add_row(str(miss["line"]), miss["query"], miss["expected"] or "(none)", got, str(miss["rank"] or "—"))
    if result.misses:
        out.print(misses)
    table = Table("set", "queries", "hit@1", "hit@3", "MRR", "direct", "wrong answer", "false answer")
    rows: Sequence[tuple[str, evaluate.EvalMetrics]] = [("all", result.overall), *result.splits.items()]
    for name, m in rows:
        table.add_row(
            name,
            f"{m.queries} ({m.no_answer} none)",
            f"{m.hit_at_1:.3f}",
            f"{m.hit_at_3:.3f}",
            f"{m.mrr:.3f}",
            f"{m.direct_accuracy:.3f}",
            f"{m.wrong_answer_rate:.3f}",
            f"{m.false_answer_rate:.3f}",
        )
    out.print(table)
    if calibrate:
        if best is None:
            out.print("calibration: no thresholds keep false answers ≤ 5% and wrong answers ≤ 3%")
        else:
            out.print(
                f"calibration: KEFU_KB_CONFIDENCE_HIGH={best.high} KEFU_KB_CONFIDENCE_MARGIN={best.margin} "
                f"KEFU_KB_CONFIDENCE_DIRECT={best.direct} → "
                f"direct {best.direct_accuracy:.3f}, wrong {best.wrong_answer_rate:.3f}, "
                f"false {best.false_answer_rate:.3f}"
            )
