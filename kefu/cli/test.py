"""``kefu test``: run scripted conversations (YAML) against a bot directory and print a pass/fail table."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kefu.config import Settings
from kefu.convtest.runner import ConversationRunner, StepResult
from kefu.convtest.spec import SpecError, parse
from kefu.obs.logging import configure_logging

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def _files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        elif path.exists():
            found.append(path)
        else:
            err.print(f"[red]{path}: no such file or directory[/red]")
            raise typer.Exit(2)
    return found


def test(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Test files or folders of them (default: the bot directory's tests/ folder)."),
    ] = None,
    bot_dir: Annotated[
        Path | None,
        typer.Option(
            "--bot-dir", help="Bot directory for files that don't name one (default: KEFU_BOT_DIR).", file_okay=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable results on stdout.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every step and the bot's replies.")] = False,
) -> None:
    """Run conversation tests: user says → reply contains / slot equals / tool called with / flow ended.

    Runs in process on a throw-away SQLite database with the demo shop API (or the file's stubs) as the
    merchant; the model is whatever KEFU_LLM_* configures (none by default). Exit code 1 on any failure.
    Format: docs/conversation-tests.md.

    Example: kefu test kefu/demo/tests
    """
    configure_logging("warning", json=False)
    settings = Settings() if bot_dir is None else Settings(bot_dir=bot_dir)
    files = _files(paths or [settings.bot_dir / "tests"])
    if not files:
        err.print("[red]no test files (*.yaml) found[/red]")
        raise typer.Exit(2)
    all_results: list[tuple[Path, StepResult]] = []
    for path in files:
        try:
            spec = parse(path)
        except SpecError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
        results = asyncio.run(ConversationRunner(spec, bot_dir=bot_dir, base=settings).run())
        all_results.extend((path, r) for r in results)
    failed = [(p, r) for p, r in all_results if not r.passed]
    if as_json:
        rows = [
            {
                "file": str(p),
                "line": r.line,
                "conversation": r.conversation,
                "user": r.user,
                "passed": r.passed,
                "failures": r.failures,
                "reply": r.reply,
            }
            for p, r in all_results
        ]
        out.print_json(json.dumps({"passed": not failed, "steps": rows}, ensure_ascii=False))
    else:
        _table(all_results, verbose)
    conversations = {(p, r.conversation) for p, r in all_results}
    bad = {(p, r.conversation) for p, r in failed}
    summary = f"{len(conversations) - len(bad)}/{len(conversations)} conversations passed, {len(failed)} failed step(s)"
    err.print(f"[{'red' if failed else 'green'}]{summary}[/]")
    if failed:
        raise typer.Exit(1)


def _table(results: list[tuple[Path, StepResult]], verbose: bool) -> None:
    table = Table(show_lines=False)
    for column in ("", "where", "conversation", "user says", "result"):
        table.add_column(column, overflow="fold")
    for path, r in results:
        if r.passed and not verbose:
            continue
        mark = "[green]✓[/]" if r.passed else "[red]✗[/]"
        said = r.user if r.user is not None else "(restart)"
        detail = "\n".join(r.failures) if r.failures else ""
        if verbose or r.failures:
            detail = (detail + "\n" if detail else "") + f"[dim]bot: {r.reply[:300]}[/dim]"
        table.add_row(mark, f"{path.name}:{r.line}", r.conversation, said, detail)
    by_conv: dict[tuple[Path, str], bool] = {}
    for path, r in results:
        by_conv[(path, r.conversation)] = by_conv.get((path, r.conversation), True) and r.passed
    if not verbose:
        for (path, name), ok in by_conv.items():
            if ok:
                table.add_row("[green]✓[/]", path.name, name, "", "all steps passed")
    out.print(table)
