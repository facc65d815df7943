"""What loading content skipped or doubted, with file and line, so a team can fix its spreadsheet."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Problem:
    """One skipped row (``skipped=True``) or a warning about a row that was kept."""

    file: str
    line: int
    reason: str
    skipped: bool = True

    def __str__(self) -> str:
        kind = "skipped" if self.skipped else "warning"
        return f"{self.file}:{self.line}: {kind}: {self.reason}"


@dataclass(slots=True)
class LoadReport:
    """Problems met while loading; ``loaded`` counts what was kept."""

    problems: list[Problem] = field(default_factory=list)
    loaded: int = 0

    def skip(self, path: Path | str, line: int, reason: str) -> None:
        """Record a row that was left out."""
        self.problems.append(Problem(str(path), line, reason))

    def warn(self, path: Path | str, line: int, reason: str) -> None:
        """Record a doubt about a row that was kept."""
        self.problems.append(Problem(str(path), line, reason, skipped=False))

    @property
    def skipped(self) -> list[Problem]:
        """Only the rows that were left out."""
        return [p for p in self.problems if p.skipped]

    def extend(self, other: LoadReport) -> None:
        """Add another report's findings to this one."""
        self.problems.extend(other.problems)
        self.loaded += other.loaded
