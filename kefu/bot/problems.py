"""Problems found while loading a bot directory, reported with file and line like a compiler does."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class BotProblem:
    """One thing wrong in a bot file. ``line`` is 1-based; None when the problem is about the whole file."""

    file: Path
    message: str
    line: int | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else str(self.file)
        return f"{where}: {self.severity}: {self.message}"


@dataclass(slots=True)
class Problems:
    """Collects problems while a loader keeps going, so one run reports all of them."""

    items: list[BotProblem] = field(default_factory=list)

    def error(self, file: Path, message: str, line: int | None = None) -> None:
        """Record an error (the bot will not load)."""
        self.items.append(BotProblem(file, message, line, "error"))

    def warning(self, file: Path, message: str, line: int | None = None) -> None:
        """Record a warning (the bot loads, but something is probably not what the author meant)."""
        self.items.append(BotProblem(file, message, line, "warning"))

    @property
    def errors(self) -> list[BotProblem]:
        """Only the errors."""
        return [p for p in self.items if p.severity == "error"]

    def extend(self, other: Problems) -> None:
        """Add another collector's problems."""
        self.items.extend(other.items)

    def report(self) -> str:
        """All problems, one per line."""
        return "\n".join(str(p) for p in self.items)
