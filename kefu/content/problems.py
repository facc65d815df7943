"""Problems found while reading bot content, reported with file and line like a compiler does.

One collector for every reader: bot files (texts, tools, flows) record errors (the bot will not load) and
warnings; data files (FAQ rows, documents, lexicon lines) record rows left out (``skip``) or doubts about rows
that were kept (``warn``) in a :class:`LoadReport`, which also counts what was loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a content file. ``line`` is 1-based; None when the problem is about the whole file.

    ``row`` marks a data row: an error there means the row was skipped (and says so), a warning that it was kept.
    ``file`` is what the reader was given (a path, or its text for data rows).
    """

    file: Path | str
    message: str
    line: int | None = None
    severity: Severity = "error"
    row: bool = False

    @property
    def reason(self) -> str:
        """The message (the name data-file reports use)."""
        return self.message

    @property
    def skipped(self) -> bool:
        """True for a data row that was left out (an error)."""
        return self.severity == "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else str(self.file)
        kind = ("skipped" if self.skipped else "warning") if self.row else self.severity
        return f"{where}: {kind}: {self.message}"


@dataclass(slots=True)
class Problems:
    """Collects problems while a reader keeps going, so one run reports all of them."""

    items: list[Problem] = field(default_factory=list)

    def error(self, file: Path, message: str, line: int | None = None) -> None:
        """Record an error (the bot will not load)."""
        self.items.append(Problem(file, message, line, "error"))

    def warning(self, file: Path, message: str, line: int | None = None) -> None:
        """Record a warning (the bot loads, but something is probably not what the author meant)."""
        self.items.append(Problem(file, message, line, "warning"))

    @property
    def errors(self) -> list[Problem]:
        """Only the errors."""
        return [p for p in self.items if p.severity == "error"]

    def extend(self, other: Problems) -> None:
        """Add another collector's problems."""
        self.items.extend(other.items)

    def report(self) -> str:
        """All problems, one per line."""
        return "\n".join(str(p) for p in self.items)


@dataclass(slots=True)
class LoadReport(Problems):
    """Problems met while loading data files (row by row); ``loaded`` counts what was kept."""

    loaded: int = 0

    def skip(self, path: Path | str, line: int, reason: str) -> None:
        """Record a row that was left out."""
        self.items.append(Problem(str(path), reason, line, "error", row=True))

    def warn(self, path: Path | str, line: int, reason: str) -> None:
        """Record a doubt about a row that was kept."""
        self.items.append(Problem(str(path), reason, line, "warning", row=True))

    @property
    def problems(self) -> list[Problem]:
        """Everything recorded, in order."""
        return self.items

    @property
    def skipped(self) -> list[Problem]:
        """Only the rows that were left out."""
        return [p for p in self.items if p.skipped]

    def extend(self, other: Problems) -> None:
        """Add another report's findings (and its count) to this one."""
        self.items.extend(other.items)
        if isinstance(other, LoadReport):
            self.loaded += other.loaded
