"""Finding the command-line tools the deployment checks run (hadolint, kubectl)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def missing_tool(name: str, how: str) -> None:
    """Skip (visibly) when a tool is missing; under CI=true fail instead."""
    message = f"{name} not found ({how})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: deployment checks must run)")
    pytest.skip(message)


def find_tool(name: str, env: str) -> str | None:
    """``$env``, then the one installed beside this Python (a wheel's script), then $PATH."""
    for candidate in (os.environ.get(env), str(Path(sys.executable).parent / name), shutil.which(name)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None
