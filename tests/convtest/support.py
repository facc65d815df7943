"""Run ``kefu test`` as a real process and read its ``--json`` report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEMO_TESTS = ROOT / "kefu" / "demo" / "tests"
HERE = Path(__file__).resolve().parent


@dataclass
class Report:
    """A finished ``kefu test`` run."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def data(self) -> dict[str, Any]:
        """The ``--json`` report."""
        try:
            parsed: dict[str, Any] = json.loads(self.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"no JSON report (exit {self.returncode}):\n{self.stderr[-4000:]}") from None
        return parsed

    @property
    def steps(self) -> list[dict[str, Any]]:
        """Every step of the ``--json`` report."""
        steps: list[dict[str, Any]] = self.data["steps"]
        return steps

    def failed(self) -> list[dict[str, Any]]:
        """The failed steps."""
        return [s for s in self.steps if not s["passed"]]

    def explain(self) -> str:
        """The failed steps, one block each, for an assertion message."""
        blocks = [
            f"{Path(s['file']).name}:{s['line']} [{s['conversation']}]\n  user: {s['user']}\n"
            + "".join(f"  - {f}\n" for f in s["failures"])
            + f"  bot: {s['reply']}"
            for s in self.failed()
        ]
        return "\n\n".join(blocks) or f"(no failed step; exit {self.returncode})\n{self.stderr[-3000:]}"


def run_kefu_test(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> Report:
    """``kefu test ARGS`` with no ``KEFU_*`` setting inherited (and no ``.env``: ``cwd`` is a scratch folder)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    proc = subprocess.run(
        [sys.executable, "-m", "kefu", "test", *map(str, args)],
        env={**clean, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Report(proc.returncode, proc.stdout, proc.stderr)
