"""Imports only point down: the import-linter contracts in pyproject.toml ([tool.importlinter]) hold.

The layers (top → bottom) follow the design page's "Layout" section (../shared/DESIGN.md); on failure the output
of ``lint-imports`` says which import broke which contract. scripts/test.sh also runs it, right after mypy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.exists(), f"{lint} is missing: install the dev tools (pip install -e '.[dev]')"
    result = subprocess.run(
        [str(lint), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = result.stdout + result.stderr
    if result.returncode != 0:
        print(report)
    assert result.returncode == 0, "an import breaks a layer contract (kefu/…):\n" + report
