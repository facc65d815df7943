"""Browser-test fixtures: Debian's Chromium driven by Playwright, kefu servers in demo mode, a shop on another origin.

Playwright's own browser download is not used: the tests need ``/usr/bin/chromium`` (``apt-get install chromium``).
Without it (and without a way to install it) they are skipped with the reason shown; under ``CI=true`` they fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATABASE_URL, MODEL_ONLY_BOT, server_env
from tests.support import JWT_SECRET, KefuServer, MockLLM, free_port, service_unavailable
from tests.web.stubs import StubServer, start_host_site, start_shop_model

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "screenshot-demo.png"


def pytest_configure(config: pytest.Config) -> None:
    # Also belongs in pyproject's [tool.pytest.ini_options] markers; registering here keeps this folder self-contained.
    config.addinivalue_line("markers", "browser: drives Debian's Chromium (/usr/bin/chromium) with Playwright")


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: browser tests must run)")
    pytest.skip(message)


def _find_chromium() -> str | None:
    for candidate in (
        os.environ.get("KEFU_TEST_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _try_install_chromium() -> str:
    """One attempt at ``apt-get install chromium`` (root with apt-get only); returns what happened."""
    if not shutil.which("apt-get"):
        return "apt-get is not available"
    if os.geteuid() != 0:
        return "not root, so apt-get cannot install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:  # maybe no package lists yet
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900, check=False)
    return "installed" if result.returncode == 0 else f"apt-get install chromium failed: {result.stderr[-300:]}"


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium, installed once with apt-get if missing and possible."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed (pip install playwright)")
    path = _find_chromium()
    if path is None:
        outcome = _try_install_chromium()
        path = _find_chromium()
        if path is None:
            _unavailable(f"Chromium not found at /usr/bin/chromium ({outcome}); install it: apt-get install chromium")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """A headless Chromium for the test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (empty localStorage) per test."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 820}, locale="zh-CN")
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    """A page that fails the test on uncaught JavaScript errors."""
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.js_errors = errors
    return pg


@dataclass
class WebStack:
    """A kefu server in demo mode, its model, and a shop site on another origin allowed by CORS."""

    kefu: KefuServer
    host: StubServer
    token_calls: list[str]

    @property
    def url(self) -> str:
        return self.kefu.url


@pytest.fixture(scope="session")
def model_only_bot() -> Path:
    """The shared bot without a knowledge base, so every question reaches the (scripted) model."""
    return MODEL_ONLY_BOT


@pytest.fixture(scope="session")
def web_stack(tmp_path_factory: pytest.TempPathFactory, mock_llm: MockLLM, model_only_bot: Path) -> Iterator[WebStack]:
    """``kefu serve`` (KEFU_DEMO=1, KEFU_CORS_ORIGINS = the shop's origin) and the shop's own site.

    Its model answers a few shop questions itself (Markdown, the screenshot) and forwards everything else to the
    mock upstream, so tests still script the mock (``mock.script(...)`` or ``[[mock:{...}]]``).
    """
    workdir = tmp_path_factory.mktemp("kefu-web")
    model = start_shop_model(mock_llm.url)
    host_port = free_port()
    env = server_env(
        mock_llm,
        KEFU_BOT_DIR=str(model_only_bot),
        KEFU_DEMO="1",
        KEFU_CORS_ORIGINS=f"http://127.0.0.1:{host_port}",
        KEFU_DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'kefu.db'}",
        KEFU_SSE_HEARTBEAT="2",
        KEFU_MAX_MESSAGE_CHARS="300",
        KEFU_LLM_BASE_URL=model.url + "/v1",
    )
    kefu = KefuServer(env=env, workdir=workdir).start()
    host, calls = start_host_site(host_port, kefu.url, JWT_SECRET)
    yield WebStack(kefu=kefu, host=host, token_calls=calls)
    host.close()
    kefu.stop()
    model.close()


def _run_async(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine on a thread of its own: Playwright's sync API owns this thread's event loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()


@pytest.fixture
def web_postgres_db() -> Iterator[str]:
    """A throwaway PostgreSQL database (like ``postgres_db``, but usable while a browser is open)."""
    import asyncpg

    admin = DATABASE_URL.replace("+asyncpg", "")
    name = f"kefu_test_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin, timeout=3)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        _run_async(run(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any failure to reach it
        service_unavailable("PostgreSQL", f"{DATABASE_URL}: {exc}")
    yield f"{DATABASE_URL.rsplit('/', 1)[0]}/{name}"
    _run_async(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
