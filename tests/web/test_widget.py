"""The chat widget in a real (headless) Chromium against real ``kefu serve`` processes.

Covers: streaming with a typing effect, stop, reload and network drops mid-answer (resume by last event id),
errors with retry, inert hostile text, Markdown, the widget embedded on another origin with the host's token
endpoint, a phone screen with the keyboard only — and the demo screenshot in docs/.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import KefuServer, MockLLM, token_for
from tests.web.conftest import SCREENSHOT, WebStack
from tests.web.stubs import HOST_USER

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - conftest skips (or fails under CI) with the reason
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("the playwright package is not installed", allow_module_level=True)

pytestmark = pytest.mark.browser
expect.set_options(timeout=15_000)

W = "#kefu-widget"
SLOW = {"tps": 40, "tokens": 90, "chunk_chars": 2}


# ----------------------------------------------------------------------------- helpers


def part(page: Any, selector: str) -> Any:
    """A locator inside the widget (Playwright's CSS pierces its open shadow root)."""
    return page.locator(f"{W} {selector}")


def answers(page: Any) -> Any:
    return part(page, ".msg.assistant:not(.greeting)")


def ask(page: Any, text: str) -> None:
    box = part(page, "textarea")
    box.fill(text)
    box.press("Enter")


def wait_streaming(page: Any, min_chars: int = 8) -> None:
    """Until the last answer is visibly streaming with some text on screen (event-driven, no sleeps)."""
    page.wait_for_function(
        """(min) => {
            const root = document.querySelector('#kefu-widget').shadowRoot;
            const el = [...root.querySelectorAll('.msg.assistant:not(.greeting)')].at(-1);
            return el && el.dataset.state === 'streaming' && Number(el.dataset.shown || 0) >= min;
        }""",
        arg=min_chars,
    )


def visitor(page: Any) -> tuple[str, str]:
    """The demo visitor's token and the widget's session id, from the page's localStorage."""
    token, session = page.evaluate(
        """() => {
            const keys = Object.keys(localStorage);
            const get = (suffix) => localStorage.getItem(keys.find((k) => k.endsWith(suffix)));
            return [get(':visitor-token'), get(':session')];
        }"""
    )
    assert token and session, "the widget keeps its visitor token and session id in localStorage"
    return token, session


def stored_messages(base_url: str, token: str, session_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base_url}/v1/sessions/{session_id}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


def shown_text(bubble: Any) -> str:
    text: str = bubble.locator(".content").text_content()
    return text


def open_demo(page: Any, stack_url: str) -> None:
    page.goto(stack_url + "/")
    expect(part(page, ".panel")).to_be_visible()
    expect(part(page, ".greeting")).to_be_visible()


# ----------------------------------------------------------------------------- tests


def test_demo_page_streams_answer_with_typing_effect(page: Any, web_stack: WebStack, fresh_mock: MockLLM) -> None:
    open_demo(page, web_stack.url)
    expect(page.locator("h1")).to_contain_text("基础款")
    expect(part(page, "textarea")).to_have_attribute("placeholder", "输入您的问题，回车发送")  # follows <html lang>
    expect(part(page, ".chip")).to_have_count(3)
    # Record every length the bubble shows, frame by frame.
    page.evaluate(
        """() => {
            window.__shown = [];
            const root = document.querySelector('#kefu-widget').shadowRoot;
            const tick = () => {
                const el = [...root.querySelectorAll('.msg.assistant:not(.greeting)')].at(-1);
                const n = el ? Number(el.dataset.shown || 0) : 0;
                if (window.__shown.at(-1) !== n) window.__shown.push(n);
                requestAnimationFrame(tick);
            };
            tick();
        }"""
    )
    fresh_mock.script(SLOW)
    ask(page, "你好，请问几天发货？")
    wait_streaming(page)
    expect(part(page, "textarea")).to_be_disabled()
    expect(part(page, "button.stop")).to_be_visible()
    bubble = answers(page).last
    expect(bubble).to_have_attribute("data-state", "complete")
    expect(part(page, "textarea")).to_be_enabled()
    expect(part(page, "textarea")).to_be_focused()

    token, session = visitor(page)
    stored = stored_messages(web_stack.url, token, session)
    assert [(m["role"], m["status"]) for m in stored] == [("user", "complete"), ("assistant", "complete")]
    assert shown_text(bubble) == stored[1]["content"]
    assert "几天发货" in stored[1]["content"]
    expect(bubble).to_have_attribute("data-turn-id", stored[1]["turn_id"])
    # A typing effect: many small, growing steps — not a few jumps of whole network frames.
    lengths = [n for n in page.evaluate("window.__shown") if n > 0]
    assert lengths == sorted(lengths) and lengths[-1] == len(stored[1]["content"])
    assert len(lengths) >= 30, lengths
    assert page.js_errors == []


def test_stop_marks_answer_interrupted_and_history_keeps_it(
    page: Any, web_stack: WebStack, fresh_mock: MockLLM
) -> None:
    open_demo(page, web_stack.url)
    fresh_mock.script({"tps": 30, "tokens": 600})
    ask(page, "讲讲你们店的故事")
    wait_streaming(page)
    # Keyboard only: focus moved from the (now disabled) input to the stop button.
    expect(part(page, "button.stop")).to_be_focused()
    page.keyboard.press("Enter")
    bubble = answers(page).last
    expect(bubble).to_have_attribute("data-state", "interrupted")
    expect(bubble.locator(".note")).to_have_text("回答已中断")
    expect(part(page, "textarea")).to_be_enabled()
    expect(part(page, "textarea")).to_be_focused()

    token, session = visitor(page)
    stored = stored_messages(web_stack.url, token, session)
    assert stored[-1]["role"] == "assistant" and stored[-1]["status"] == "interrupted"
    partial = shown_text(bubble)
    assert partial == stored[-1]["content"] and 0 < len(partial) < 600

    page.reload()
    again = answers(page).last
    expect(again).to_have_attribute("data-state", "interrupted")
    expect(again.locator(".note")).to_have_text("回答已中断")
    assert shown_text(again) == partial
    assert page.js_errors == []


def test_reload_mid_answer_resumes_without_duplicates(page: Any, web_stack: WebStack, fresh_mock: MockLLM) -> None:
    open_demo(page, web_stack.url)
    fresh_mock.script(SLOW)
    ask(page, "我的订单什么时候到？")
    wait_streaming(page, 10)
    resumes: list[str | None] = []
    page.on("request", lambda r: resumes.append(r.headers.get("last-event-id")) if "/events" in r.url else None)
    page.reload()
    bubble = answers(page).last
    expect(bubble).to_have_attribute("data-state", "complete")

    token, session = visitor(page)
    stored = stored_messages(web_stack.url, token, session)
    assert [m["role"] for m in stored] == ["user", "assistant"] and stored[1]["status"] == "complete"
    expect(part(page, ".msg.user")).to_have_count(1)
    expect(answers(page)).to_have_count(1)
    assert shown_text(bubble) == stored[1]["content"]  # nothing lost, nothing twice
    # It resumed after the last event it had, rather than replaying the turn or waiting for the history.
    assert resumes and resumes[0] is not None
    turn, _, seq = resumes[0].rpartition(":")
    assert turn == stored[1]["turn_id"] and int(seq) > 1
    assert page.js_errors == []


def test_network_drop_mid_answer_reconnects_and_resumes(
    page: Any, context: Any, web_stack: WebStack, fresh_mock: MockLLM
) -> None:
    open_demo(page, web_stack.url)
    fresh_mock.script(SLOW)
    ask(page, "可以开发票吗？")
    wait_streaming(page, 10)
    resumes: list[str | None] = []
    page.on("request", lambda r: resumes.append(r.headers.get("last-event-id")) if "/events" in r.url else None)
    context.set_offline(True)
    bubble = answers(page).last
    expect(bubble).to_have_attribute("data-reconnecting", "")
    expect(bubble.locator(".reconnecting")).to_have_text("网络断开，正在重新连接…")
    context.set_offline(False)
    expect(bubble).to_have_attribute("data-state", "complete")
    expect(bubble).not_to_have_attribute("data-reconnecting", "")

    token, session = visitor(page)
    stored = stored_messages(web_stack.url, token, session)
    assert shown_text(bubble) == stored[1]["content"]  # the whole answer, exactly once
    assert any(r and r.startswith(stored[1]["turn_id"] + ":") for r in resumes), resumes
    expect(answers(page)).to_have_count(1)
    assert page.js_errors == []


def test_errors_in_plain_words_with_retry(page: Any, web_stack: WebStack, fresh_mock: MockLLM) -> None:
    open_demo(page, web_stack.url)
    # An `error` event after some text (the upstream stream broke): plain words, the text kept, a retry button.
    fresh_mock.script({"fail": "cut", "after_chunks": 3})
    ask(page, "你好，在吗")
    bubble = answers(page).last
    expect(bubble).to_have_attribute("data-state", "error")
    expect(bubble.get_by_role("alert")).to_contain_text("客服暂时无法回答，请稍后重试。")
    expect(bubble.locator(".error-code")).to_contain_text("upstream_stream_broken")
    expect(bubble.locator(".note")).to_have_text("回答已中断")
    retry = bubble.get_by_role("button", name="重试")
    retry.click()  # asks again; the mock answers normally this time
    expect(answers(page)).to_have_count(1)
    expect(answers(page).last).to_have_attribute("data-state", "complete")
    expect(part(page, ".msg.user")).to_have_count(1)

    # HTTP 429 with Retry-After: the wait in plain words, the retry button counts down, then works.
    page.route(
        "**/v1/chat",
        lambda route: route.fulfill(
            status=429,
            headers={"Retry-After": "1", "Access-Control-Allow-Origin": "*"},
            json={"error": {"code": "rate_limited", "message": "too many requests"}},
        ),
        times=1,
    )
    ask(page, "还有别的颜色吗")
    limited = answers(page).last
    expect(limited).to_have_attribute("data-state", "error")
    expect(limited.get_by_role("alert")).to_contain_text("消息发送太频繁了，请 1 秒后再试。")
    again = limited.get_by_role("button")
    expect(again).to_be_disabled()
    expect(again).to_have_text("重试")
    expect(again).to_be_enabled()
    again.click()
    expect(answers(page).last).to_have_attribute("data-state", "complete")
    expect(answers(page).last).to_contain_text("还有别的颜色吗")
    expect(answers(page)).to_have_count(2)

    # HTTP 413 (KEFU_MAX_MESSAGE_CHARS): not retryable, so no button; the text goes back into the input.
    long = "很长的问题" * 80
    ask(page, long)
    too_long = answers(page).last
    expect(too_long).to_have_attribute("data-state", "error")
    expect(too_long.get_by_role("alert")).to_contain_text("消息太长了，请精简后再发送。")
    expect(too_long.get_by_role("button")).to_have_count(0)
    expect(part(page, "textarea")).to_have_value(long)
    assert page.js_errors == []


def test_hostile_text_is_shown_not_executed(page: Any, web_stack: WebStack, fresh_mock: MockLLM) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_demo(page, web_stack.url)
    hostile = "<img src=x onerror=alert(1)>"
    ask(page, hostile)
    bubble = answers(page).last
    expect(bubble).to_have_attribute("data-state", "complete")
    expect(part(page, ".msg.user .bubble")).to_have_text(hostile)
    expect(bubble).to_contain_text("「<img src=x onerror=a」")  # the mock echoes the question
    expect(part(page, "img")).to_have_count(0)
    # The renderer itself: Markdown yes, HTML never, links only http(s)/mailto.
    result = page.evaluate(
        """(src) => {
            const div = document.createElement('div');
            div.append(Kefu.renderMarkdown(src));
            return {
                text: div.textContent,
                tags: [...div.querySelectorAll('*')].map((e) => e.tagName.toLowerCase()),
                links: [...div.querySelectorAll('a')].map(
                    (a) => [a.getAttribute('href'), a.rel, a.target, a.textContent]),
                strong: [...div.querySelectorAll('strong')].map((e) => e.textContent),
                items: [...div.querySelectorAll('ul > li')].map((e) => e.textContent),
                steps: [...div.querySelectorAll('ol > li')].map((e) => e.textContent),
            };
        }""",
        "**满 199** 包邮\n\n- 一\n- 二 [官网](https://xiaopu.example/a?b=1)\n\n1、申请\n2、寄回\n\n"
        "<script>alert(2)</script> [x](javascript:alert(3)) [m](mailto:hi@xiaopu.example) "
        '<a href="javascript:alert(4)">y</a> https://xiaopu.example/faq。',
    )
    assert result["strong"] == ["满 199"]
    assert result["items"] == ["一", "二 官网"]
    assert result["steps"] == ["申请", "寄回"]
    assert result["links"] == [
        ["https://xiaopu.example/a?b=1", "noopener noreferrer", "_blank", "官网"],
        ["mailto:hi@xiaopu.example", "noopener noreferrer", "_blank", "m"],
        ["https://xiaopu.example/faq", "noopener noreferrer", "_blank", "https://xiaopu.example/faq"],
    ]
    assert "script" not in result["tags"] and "img" not in result["tags"]
    assert "<script>alert(2)</script>" in result["text"] and "[x](javascript:alert(3))" in result["text"]
    assert '<a href="javascript:alert(4)">y</a>' in result["text"]
    assert dialogs == []
    assert page.js_errors == []


def test_keyless_demo_answers_from_the_faq_and_screenshot(browser: Any, make_server: Callable[..., KefuServer]) -> None:
    """docs/screenshot-demo.png: what `KEFU_DEMO=1 kefu serve` answers with no model key — the demo FAQ's answers."""
    from kefu.config import DEMO_BOT_DIR

    server = make_server(None, KEFU_DEMO="1", KEFU_BOT_DIR=str(DEMO_BOT_DIR))
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN", device_scale_factor=1)
    try:
        page = context.new_page()
        open_demo(page, server.url)
        part(page, ".chip").filter(has_text="满多少包邮？").click()
        shipping = answers(page).last
        expect(shipping).to_have_attribute("data-state", "complete")
        expect(shipping).to_contain_text("全场实付满99元包邮")  # kefu/demo/kb/faq/shop.csv, ship-fee
        ask(page, "怎么退货？")
        returns = answers(page).last
        expect(returns).to_have_attribute("data-state", "complete")
        expect(returns).to_contain_text("申请售后 → 退货退款")  # return-how
        part(page, ".log").evaluate("(el) => { el.scrollTop = 0; }")
        page.mouse.move(0, 0)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
        assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and SCREENSHOT.stat().st_size > 20_000
    finally:
        context.close()


def test_markdown_answers_on_the_demo_page(browser: Any, web_stack: WebStack) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN", device_scale_factor=1)
    try:
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        open_demo(page, web_stack.url)
        part(page, ".chip").filter(has_text="满多少包邮？").click()
        expect(answers(page).last).to_have_attribute("data-state", "complete")
        expect(answers(page).last.locator("strong")).to_have_text("99 元")
        expect(part(page, ".chips")).to_have_count(0)
        ask(page, "怎么退货？")
        returns = answers(page).last
        expect(returns).to_have_attribute("data-state", "complete")
        expect(returns.locator("ol > li")).to_have_count(3)
        link = returns.get_by_role("link", name="退换货说明")
        expect(link).to_have_attribute("href", "https://xiaopu.example/help/returns")
        expect(link).to_have_attribute("rel", "noopener noreferrer")
        expect(link).to_have_attribute("target", "_blank")

        # A model that answers with HTML and a javascript: link: shown as text, nothing runs.
        ask(page, "HOSTILE")
        hostile = answers(page).last
        expect(hostile).to_have_attribute("data-state", "complete")
        expect(hostile).to_contain_text("<img src=x onerror=alert(1)>")
        expect(hostile).to_contain_text("[点我](javascript:alert(3))")
        expect(hostile.locator("a")).to_have_count(1)
        expect(hostile.locator("a")).to_have_attribute("href", "https://xiaopu.example/")
        expect(part(page, "img")).to_have_count(0)
        expect(part(page, "script")).to_have_count(0)
        assert dialogs == []
    finally:
        context.close()


def test_embedded_on_another_origin_with_host_token(page: Any, web_stack: WebStack, fresh_mock: MockLLM) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    before = len(web_stack.token_calls)
    page.goto(web_stack.host.url + "/")
    launcher = part(page, "button.launcher")
    expect(launcher).to_have_attribute("aria-label", "Open customer service chat")  # <html lang="en">
    expect(part(page, ".panel")).to_be_hidden()
    assert web_stack.host.url != web_stack.url
    # Keyboard only: Tab reaches the launcher, Enter opens the chat with the input focused.
    page.keyboard.press("Tab")
    expect(launcher).to_be_focused()
    page.keyboard.press("Enter")
    expect(part(page, ".panel")).to_be_visible()
    box = part(page, "textarea")
    expect(box).to_be_focused()
    expect(box).to_have_attribute("placeholder", "Type your question, Enter to send")
    page.keyboard.type("Where is my parcel?")
    page.keyboard.press("Enter")
    bubble = answers(page).last
    expect(bubble).to_have_attribute("data-state", "complete")

    assert len(web_stack.token_calls) > before and web_stack.token_calls[-1] == web_stack.host.url
    assert not any("/v1/demo/token" in url for url in requests)  # the host's token, never a made-up visitor
    assert any(url.startswith(web_stack.url + "/v1/chat") for url in requests)
    session = page.evaluate("() => localStorage.getItem(Object.keys(localStorage).find((k) => k.endsWith(':session')))")
    assert ":" + HOST_USER + ":session" in page.evaluate("() => Object.keys(localStorage).join(' ')")
    stored = stored_messages(web_stack.url, token_for(HOST_USER), session)
    assert stored[0]["content"] == "Where is my parcel?"
    assert shown_text(bubble) == stored[1]["content"]
    # The host page's own CSS (button, textarea { all: unset }) does not reach into the widget.
    assert launcher.evaluate("(el) => getComputedStyle(el).borderRadius") == "50%"
    assert page.js_errors == []


def test_phone_screen_keyboard_and_labels(browser: Any, web_stack: WebStack, fresh_mock: MockLLM) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 720}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        # The full-page widget, in English.
        page.goto(web_stack.url + "/widget?lang=en")
        panel = part(page, ".panel")
        expect(panel).to_be_visible()
        box = panel.bounding_box()
        assert box is not None and box["width"] == 375 and box["height"] == 720
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        expect(page.get_by_role("log", name="Conversation")).to_have_attribute("aria-live", "polite")
        expect(page.get_by_role("textbox", name="Message")).to_be_focused()
        expect(page.get_by_role("button", name="Send")).to_be_visible()
        expect(page.get_by_role("button", name="New chat")).to_be_visible()
        page.keyboard.type("hi there")
        page.keyboard.press("Enter")
        expect(answers(page).last).to_have_attribute("data-state", "complete")
        expect(page.get_by_role("status")).to_have_text("The assistant has answered")

        # The demo page on a phone starts with the chat closed (it would cover the shop). Opened, it takes the
        # screen; Escape closes it and gives the focus back to the launcher.
        page.goto(web_stack.url + "/")
        launcher = part(page, "button.launcher")
        expect(launcher).to_have_attribute("aria-expanded", "false")
        expect(part(page, ".panel")).to_be_hidden()
        launcher.focus()
        page.keyboard.press("Enter")
        expect(part(page, ".panel")).to_be_visible()
        expect(part(page, "textarea")).to_be_focused()
        panel_box = part(page, ".panel").bounding_box()
        assert panel_box is not None and round(panel_box["width"]) == 375 and round(panel_box["height"]) == 720
        expect(launcher).to_be_hidden()
        expect(answers(page).last).to_contain_text("hi there")  # the same conversation as on /widget
        page.keyboard.press("Escape")
        expect(part(page, ".panel")).to_be_hidden()
        expect(launcher).to_be_focused()
        expect(launcher).to_have_attribute("aria-expanded", "false")
    finally:
        context.close()


@pytest.mark.redis
@pytest.mark.postgres
def test_reload_resumes_on_another_server_process(
    page: Any,
    make_server: Callable[..., KefuServer],
    mock_llm: MockLLM,
    redis_url: str,
    web_postgres_db: str,
    model_only_bot: Path,
) -> None:
    """Two kefu processes sharing Redis and PostgreSQL: the turn runs on A; after a reload, B resumes and stops it."""
    mock_llm.reset()
    shared = {
        "KEFU_DEMO": "1",
        "KEFU_BOT_DIR": str(model_only_bot),
        "KEFU_REDIS_URL": redis_url,
        "KEFU_REDIS_PREFIX": f"kefu-web-{uuid.uuid4().hex[:8]}",
        "KEFU_DATABASE_URL": web_postgres_db,
    }
    a = make_server(mock_llm, **shared)
    # B starts (schema already migrated by A) while the browser works with A.
    started: list[KefuServer] = []
    starter = threading.Thread(target=lambda: started.append(make_server(mock_llm, **shared)))
    starter.start()
    open_demo(page, a.url)
    mock_llm.script({"tps": 40, "tokens": 1200, "chunk_chars": 2})  # long: it must outlast B's start-up
    ask(page, "跨进程也能接着说吗？")
    wait_streaming(page, 10)
    starter.join(60)
    assert started, "process B did not start"
    b = started[0]
    # From now on every API call of the page goes to process B (as a load balancer might send it).
    sent_to_b: list[str] = []
    statuses: dict[str, int] = {}
    page.on("response", lambda r: statuses.setdefault(r.url, r.status) if "/events" in r.url else None)

    def to_b(route: Any) -> None:
        sent_to_b.append(route.request.url)
        route.continue_(url=route.request.url.replace(a.url, b.url, 1))

    page.route(f"{a.url}/v1/**", to_b)
    page.reload()
    bubble = answers(page).last
    # Resumed from B: the answer goes on growing after the reload …
    before = int(bubble.get_attribute("data-shown") or 0) if bubble.count() else 0
    wait_streaming(page, before + 20)
    # … and the stop button works through B too (the turn runs on A).
    part(page, "button.stop").click()
    expect(bubble).to_have_attribute("data-state", "interrupted")
    token, session = visitor(page)
    stored = stored_messages(b.url, token, session)
    assert shown_text(bubble) == stored[1]["content"] and stored[1]["status"] == "interrupted"
    assert len(stored[1]["content"]) < 1200
    expect(answers(page)).to_have_count(1)
    events = [url for url in sent_to_b if f"/v1/chat/turns/{stored[1]['turn_id']}/events" in url]
    assert events and statuses.get(events[0].replace(a.url, b.url, 1)) == 200, (sent_to_b, statuses)
    assert any(url.endswith("/cancel") for url in sent_to_b)
    assert page.js_errors == []
