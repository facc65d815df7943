"""Every shell and Python example in README.md and docs/*.md runs for real, unless marked ``not-tested``.

Shell blocks run with ``bash -euo pipefail`` in a temporary directory against one ``kefu serve`` in demo mode
(its model is the mock upstream); ``http://127.0.0.1:8000`` and ``localhost:8000`` become that server's address.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.docs.blocks import ROOT, Block, all_blocks
from tests.support import KefuServer, MockLLM

EXAMPLES = all_blocks({"sh", "bash", "shell", "console", "python"})
RUN = [b for b in EXAMPLES if b.skip_reason is None]
API_KEY = "docs-test-api-key"
# What a block's output must show, found by a line of its code (line numbers move when docs change).
EXPECTED_OUTPUT = {
    "curl -N http://127.0.0.1:8000/v1/chat": ["event: session", "event: delta", "event: done"],
    "kefu test kefu/demo/tests": ["conversations passed", "0 failed"],
    "/v1/admin/kb/entries": ['"id"'],
}


def test_the_docs_have_examples_that_run() -> None:
    assert any("curl -N http://127.0.0.1:8000/v1/chat" in b.code for b in RUN), "README's 'Talk to it' must run"


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory, mock_llm: MockLLM) -> Iterator[KefuServer]:
    """``kefu serve`` in demo mode as a reader runs it: its own ``.kefu/jwt-secret`` in its working directory."""
    workdir = tmp_path_factory.mktemp("docs")
    (workdir / ".venv").symlink_to(ROOT / ".venv")
    (workdir / "kefu").symlink_to(ROOT / "kefu")  # examples name bundled files such as kefu/demo/tests
    env = {
        "KEFU_DEMO": "1",
        "KEFU_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'kefu.db'}",
        "KEFU_API_KEYS": API_KEY,
        "KEFU_LLM_BASE_URL": mock_llm.url + "/v1",
        "KEFU_LLM_API_KEY": "sk-test",
        "KEFU_LLM_MODEL": "mock-chat",
    }
    server = KefuServer(env=env, workdir=workdir)
    # The server must find (or make) its secret in .kefu/, exactly as `kefu token` in the same directory does.
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("KEFU_")}
    try:
        server.start()
    finally:
        os.environ.update(saved)
    yield server
    server.stop()


def block_env(server: KefuServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env |= {k: v for k, v in server.env.items() if k != "KEFU_API_KEYS"}
    env["KEY"] = API_KEY  # the admin key the docs' curl examples call $KEY
    return env


def with_server_url(code: str, url: str) -> str:
    host = url.removeprefix("http://")
    code = code.replace("http://127.0.0.1:8000", url).replace("http://localhost:8000", url)
    return code.replace("localhost:8000", host)


def test_a_skipped_example_says_why() -> None:
    unexplained = [b.id for b in EXAMPLES if b.skip_reason == ""]
    assert not unexplained, f"<!-- not-tested: … --> needs a reason: {unexplained}"


@pytest.fixture
def server_unless_marked(request: pytest.FixtureRequest) -> KefuServer | None:
    """The module's server, started only when a test runs a block (not for a run of marked ones alone)."""
    block: Block = request.getfixturevalue("block")
    if block.skip_reason is not None:
        return None
    server: KefuServer = request.getfixturevalue("demo_server")
    return server


@pytest.mark.parametrize("block", EXAMPLES, ids=lambda b: b.id)
def test_example_runs(block: Block, server_unless_marked: KefuServer | None, mock_llm: MockLLM) -> None:
    if block.skip_reason is not None:
        assert block.skip_reason, f"{block.id}: <!-- not-tested: … --> needs a reason"
        pytest.skip(f"not-tested: {block.skip_reason}")
    assert server_unless_marked is not None
    demo_server = server_unless_marked
    mock_llm.reset()
    env = block_env(demo_server)
    code = with_server_url(block.code, demo_server.url)
    if block.lang == "python":
        env["KEFU_JWT_SECRET"] = "docs-example-secret-0123456789abcdef"  # examples read it from the environment
        command = [str(ROOT / ".venv" / "bin" / "python"), "-c", code]
    else:
        command = ["bash", "-euo", "pipefail", "-c", code]
    result = subprocess.run(
        command, cwd=demo_server.workdir, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{block.id} exited {result.returncode}:\n{code}\n---\n{output[-3000:]}"
    for needle, expected in EXPECTED_OUTPUT.items():
        if needle in block.code:
            for text in expected:
                assert text in output, f"{block.id}: {text!r} not in output:\n{output[-3000:]}"
