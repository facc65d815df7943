"""Fenced code blocks of README.md and docs/*.md, with the ``<!-- not-tested: reason -->`` marker before each."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^(\s*)```([\w-]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*not-tested:(.*?)-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its (dedented) code and the skip reason if marked."""

    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    skip_reason: str | None  # None: not marked; "" : marked without a reason

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path, langs: set[str]) -> list[Block]:
    """The blocks in ``path`` whose language is one of ``langs``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not re.match(r"^\s*```\s*$", lines[end]):
            end += 1
        if match.group(2) in langs:
            marker = _MARKER.match(lines[i - 1]) if i > 0 else None
            reason = marker.group(1).strip() if marker else None
            code = textwrap.dedent("\n".join(lines[i + 1 : end])) + "\n"
            found.append(Block(path, i + 1, match.group(2), code, reason))
        i = end + 1
    return found


def all_blocks(langs: set[str], files: list[Path] = DOC_FILES) -> list[Block]:
    return [block for path in files for block in blocks(path, langs)]
