"""``kefu test``: run scripted conversations (YAML) against a bot directory and print a pass/fail table."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kefu.config import Settings
from kefu.convtest.runner import ConversationRunner, ExchangeResult
from kefu.convtest.spec import SpecError, parse
from kefu.obs.logging import configure_logging

err = Console(stderr=True, highlight=False, soft_wrap=True)  # messages stay one line: grep-able
out = Console(highlight=False, soft_wrap=True)
_PIPE_WIDTH = 160


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


def _enclosing_bot(files: list[Path]) -> Path | None:
    """The bot directory whose ``tests/`` folder holds every one of ``files`` (None unless they share one)."""
    homes: set[Path] = set()
    for file in files:
        folder = next((p for p in file.resolve().parents if p.name == "tests"), None)
        if folder is None or not (folder.parent / "system_prompt.md").is_file():
            return None
        homes.add(folder.parent)
    return homes.pop() if len(homes) == 1 else None


def test(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Test files or folders of them (default: the bot directory's tests/ folder)."),
    ] = None,
    bot_dir: Annotated[
        Path | None,
        typer.Option(
            "--bot-dir",
            help="Bot directory for files that don't name one (default: KEFU_BOT_DIR, else the bot whose tests/ "
            "folder holds them).",
            file_okay=False,
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
    # The report is the table: tool warnings (a stubbed failure is expected) and "no model configured" are noise.
    configure_logging("warning" if verbose else "error", json=False)
    if not out.is_terminal:
        out.width = max(out.width, _PIPE_WIDTH)  # a log file or CI: don't squeeze replies into 80 columns
    settings = Settings() if bot_dir is None else Settings(bot_dir=bot_dir)
    files = _files(paths or [settings.bot_dir / "tests"])
    if not files:
        err.print("[red]no test files (*.yaml) found[/red]")
        raise typer.Exit(2)
    if bot_dir is None and not settings.bot_dir_chosen:
        # `kefu test mybot/tests` tests mybot, not whatever bot the mode would default to (the neutral one).
        bot_dir = _enclosing_bot(files)
        if bot_dir is not None:
            settings = settings.model_copy(update={"bot_dir": bot_dir})
    specs = []
    for path in files:  # every file is checked before anything runs
        try:
            specs.append(parse(path))
        except SpecError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
    all_results: list[tuple[Path, ExchangeResult]] = []
    for spec in specs:
        try:
            results = asyncio.run(ConversationRunner(spec, bot_dir=bot_dir, base=settings).run())
        except SpecError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
        all_results.extend((spec.path, r) for r in results)
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
        sys.stdout.write(json.dumps({"passed": not failed, "steps": rows}, ensure_ascii=False, indent=2) + "\n")
    else:
        _table(all_results, verbose)
        if not verbose:  # the verbose table shows them in place
            _failures(failed)
    conversations = {(p, r.conversation) for p, r in all_results}
    bad = {(p, r.conversation) for p, r in failed}
    steps = sum(1 for _, r in all_results if r.user is not None)
    summary = (
        f"{len(conversations) - len(bad)}/{len(conversations)} conversations passed "
        f"({steps} messages in {len(specs)} file(s)), {len(failed)} failed step(s)"
    )
    err.print(f"[{'red' if failed else 'green'}]{summary}[/]")
    if failed:
        raise typer.Exit(1)


def _table(results: list[tuple[Path, ExchangeResult]], verbose: bool) -> None:
    """One row per conversation (✓/✗ and how many steps passed); with ``verbose`` one row per step and the reply."""
    table = Table(show_lines=verbose)
    table.add_column("", no_wrap=True)
    table.add_column("where", no_wrap=True)
    table.add_column("conversation", ratio=2, overflow="fold")
    if verbose:
        table.add_column("user says", ratio=2, overflow="fold")
        table.add_column("bot", ratio=5, overflow="fold")
        for path, r in results:
            said = escape(r.user) if r.user is not None else "[dim](restart)[/dim]"
            detail = "".join(f"[red]{escape(f)}[/red]\n" for f in r.failures)
            table.add_row(
                _mark(r.passed), f"{path.name}:{r.line}", escape(r.conversation), said, detail + escape(r.reply)
            )
        out.print(table)
        return
    table.add_column("steps", no_wrap=True, justify="right")
    by_conv: dict[tuple[Path, str], list[ExchangeResult]] = {}
    for path, r in results:
        by_conv.setdefault((path, r.conversation), []).append(r)
    for (path, name), steps in by_conv.items():
        passed = sum(1 for r in steps if r.passed)
        table.add_row(
            _mark(passed == len(steps)), f"{path.name}:{steps[0].line}", escape(name), f"{passed}/{len(steps)}"
        )
    out.print(table)


def _failures(failed: list[tuple[Path, ExchangeResult]]) -> None:
    """Each failed step: where, what the user said, which expectations broke, and the bot's whole reply."""
    for path, r in failed:
        said = r.user if r.user is not None else "(restart)"
        out.print(f"\n[red]✗[/red] [bold]{escape(f'{path}:{r.line}')}[/bold]  {escape(r.conversation)}")
        out.print(f"  user: {escape(said)}")
        for failure in r.failures:
            out.print(f"  [red]- {escape(failure)}[/red]")
        out.print(f"  [dim]bot: {escape(r.reply)}[/dim]")


def _mark(passed: bool) -> str:
    return "[green]✓[/]" if passed else "[red]✗[/]"
