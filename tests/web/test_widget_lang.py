"""Suggestions ("did you mean") are buttons in the widget: tapping one asks it, in the shopper's language."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import KefuServer
from tests.web.test_widget import answers, ask, expect, open_demo, part

pytestmark = pytest.mark.browser
BILINGUAL_BOT = Path(__file__).resolve().parents[1] / "bots" / "bilingual"  # three FAQ entries, two in English


def test_suggestions_are_buttons_that_ask_the_question(page: Any, make_server: Callable[..., KefuServer]) -> None:
    server = make_server(None, KEFU_DEMO="1", KEFU_BOT_DIR=str(BILINGUAL_BOT))
    open_demo(page, server.url)
    ask(page, "退货")
    vague = answers(page).nth(0)
    expect(vague).to_have_attribute("data-state", "complete")
    buttons = vague.locator(".suggest button")
    expect(buttons).to_have_count(2)
    expect(buttons.filter(has_text="退货运费谁出？")).to_be_visible()
    expect(vague.locator(".content")).to_contain_text("您是不是想问")
    expect(vague.locator(".content")).not_to_contain_text("- 退货运费谁出？")  # the buttons replace the list
    buttons.filter(has_text="退货运费谁出？").click()
    expect(answers(page)).to_have_count(2)
    expect(part(page, ".msg.user").last).to_contain_text("退货运费谁出？")  # sent as the shopper's message
    expect(answers(page).last).to_contain_text("质量问题的退货运费由我们承担。")
    expect(vague.locator(".suggest button")).to_have_count(2)  # still there after the next turn

    ask(page, "about returns")
    english = answers(page).nth(2)
    expect(english).to_have_attribute("data-state", "complete")
    expect(english.locator(".content")).to_contain_text("Did you mean")
    english.locator(".suggest button").filter(has_text="What is the return address?").click()
    expect(answers(page)).to_have_count(4)
    expect(answers(page).last).to_contain_text("Use the address shown once your return is approved.")
    assert page.js_errors == []
