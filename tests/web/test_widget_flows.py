"""A demo task flow completed in the widget, in a real (headless) Chromium, with no model configured."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kefu.config import DEMO_BOT_DIR
from tests.support import KefuServer
from tests.web.test_widget import answers, ask, expect, open_demo, stored_messages, visitor

pytestmark = pytest.mark.browser


def test_widget_order_status_flow_with_a_correction(page: Any, make_server: Callable[..., KefuServer]) -> None:
    server = make_server(None, KEFU_DEMO="1", KEFU_BOT_DIR=str(DEMO_BOT_DIR))
    open_demo(page, server.url)

    def turn(text: str, shows: str) -> None:
        count = answers(page).count()
        ask(page, text)
        expect(answers(page)).to_have_count(count + 1)
        expect(answers(page).last).to_have_attribute("data-state", "complete")
        expect(answers(page).last).to_contain_text(shows)

    turn("我的快递到哪了", "订单号")
    turn("DD20261101001", "后四位")
    turn("不对，是 DD20261105002", "后四位")  # a correction: the order number changes, the question stays
    turn("1 2 3 4", "SF1234567890")
    token, session = visitor(page)
    stored = stored_messages(server.url, token, session)
    assert [m["source"] for m in stored if m["role"] == "assistant"] == ["flow"] * 4
    assert "DD20261105002" in stored[-1]["content"]
    assert page.js_errors == []
