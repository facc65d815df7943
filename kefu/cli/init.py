"""``kefu init DIR``: start a shop's own bot directory from the bundled template (``kefu/bot/template``)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "bot" / "template"
SHOP_NAME = "【店铺名称】"  # the placeholder --name fills in (system_prompt.md)

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def template_files() -> list[Path]:
    """The template's files, relative to it, in a stable order."""
    return sorted(
        p.relative_to(TEMPLATE_DIR) for p in TEMPLATE_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )


def scaffold(target: Path, *, shop_name: str | None = None, force: bool = False) -> tuple[list[Path], list[Path]]:
    """Write the template into ``target``: (files written, existing files kept). Never overwrites a file.

    Raises :class:`FileExistsError` for a non-empty ``target`` unless ``force``, and :class:`NotADirectoryError`
    when it is a file.
    """
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} is a file, not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise FileExistsError(f"{target} is not empty")
    written: list[Path] = []
    kept: list[Path] = []
    for relative in template_files():
        destination = target / relative
        if destination.exists():
            kept.append(relative)
            continue
        text = (TEMPLATE_DIR / relative).read_text(encoding="utf-8")
        if shop_name:
            text = text.replace(SHOP_NAME, shop_name)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(text, encoding="utf-8")
        written.append(relative)
    return written, kept


def _next_steps(target: Path) -> str:
    bot = shlex.quote(str(target))
    return "\n".join(
        [
            "Next:",
            f"  1. edit {target / 'system_prompt.md'} (the 【…】 placeholders) and handoff.yaml (business hours)",
            f"  2. put your FAQ in {target / 'kb' / 'faq' / 'faq.csv'} (header: question, answer, …; docs/kb.md)",
            f"  3. kefu bot check {bot}",
            f"  4. kefu test {shlex.quote(str(target / 'tests'))}",
            f"  5. KEFU_BOT_DIR={bot} kefu serve",
        ]
    )


def init(
    directory: Annotated[Path, typer.Argument(help="The new bot directory (created if missing; must be empty).")],
    name: Annotated[str | None, typer.Option("--name", help="Your shop's name, written into system_prompt.md.")] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Also write into a non-empty directory (existing files are kept, not replaced)."),
    ] = False,
) -> None:
    """Start a bot directory for your shop: persona, texts, hours, an empty FAQ, example flow, tool and test.

    The result passes `kefu bot check`; the server uses it with KEFU_BOT_DIR (docs/bot.md).

    Example: kefu init ./mybot --name 小铺
    """
    try:
        written, kept = scaffold(directory, shop_name=name.strip() if name else None, force=force)
    except NotADirectoryError as exc:
        err.print(f"[red]error: {escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    except FileExistsError as exc:
        err.print(
            f"[red]error: {escape(str(exc))}: choose a new directory, or add --force to add the missing files "
            "(files already there are kept)[/red]"
        )
        raise typer.Exit(2) from exc
    except OSError as exc:
        err.print(f"[red]error: cannot write {escape(str(directory))}: {escape(str(exc))}[/red]")
        raise typer.Exit(1) from exc
    for relative in kept:
        err.print(f"[yellow]kept existing {escape(str(directory / relative))}[/yellow]")
    out.print(f"✓ {directory}: {len(written)} file(s) written" + (f", {len(kept)} kept" if kept else ""), markup=False)
    out.print(_next_steps(directory), markup=False)
