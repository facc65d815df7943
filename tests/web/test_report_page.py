"""The report page in Debian's Chromium: the numbers of a seeded week, and one click from an unanswered question
to an FAQ entry that the knowledge base then answers it with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from kefu.config import DEMO_BOT_DIR
from kefu.store.migrate import upgrade_database
from kefu.store.sql import create_engine_for
from tests.report.seed import seed, week
from tests.support import KefuServer
from tests.web.conftest import _run_async
from tests.web.test_widget import expect

pytestmark = pytest.mark.browser
KEY = "test-api-key"


@pytest.fixture
def server(make_server: Callable[..., KefuServer], tmp_path: Path) -> KefuServer:
    url = f"sqlite+aiosqlite:///{tmp_path / 'kefu.db'}"

    async def prepare() -> None:
        await upgrade_database(url)
        engine = create_engine_for(url)
        await seed(engine, week())
        await engine.dispose()

    _run_async(prepare())  # off this thread: Playwright's sync API owns its event loop
    return make_server(None, KEFU_DATABASE_URL=url, KEFU_BOT_DIR=str(DEMO_BOT_DIR))


def test_add_faq_from_an_unanswered_question(server: KefuServer, page: Any) -> None:
    page.goto(server.url + "/desk/report")
    page.fill("#key", KEY)
    page.fill("#since", "2026-12-01")
    page.fill("#until", "2026-12-02")
    page.click("#load")
    expect(page.locator("#cards")).to_contain_text("50%")
    expect(page.locator("#reasons svg")).to_contain_text("button")
    row = page.locator("#unanswered tbody tr").first
    expect(row.locator(".question")).to_have_text("保修多久")
    row.locator("button.add-faq").click()
    expect(page.locator("#faq-question")).to_have_value("保修多久")
    page.fill("#faq-answer", "本店商品保修一年，自签收之日起计算。")
    page.click("#faq-save")
    expect(page.locator("#faq-dialog")).not_to_be_visible()
    expect(page.locator("#unanswered tbody tr").first).to_contain_text("answered now")
    assert page.js_errors == []
    search = httpx.get(
        server.url + "/v1/admin/kb/search", params={"q": "保修多久"}, headers={"Authorization": f"Bearer {KEY}"}
    ).json()
    assert search["confidence"] == "high"
    assert search["hits"][0]["question"] == "保修多久"
