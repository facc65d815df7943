"""The agent desk (``/desk``) in a real (headless) Chromium, next to the shopper's widget, against two ``kefu serve``
replicas sharing Redis and PostgreSQL.

The shopper's widget talks to replica A, the desk to replica B: the queue updates live, a claim, the agent's
messages reach the widget with the agent's name, the shopper's replies reach the desk live and in order (also after a
network drop: nothing twice), canned replies, notes, the typing signal at most every 3 s, back to the bot (the bot
answers again), a new handoff, close with an outcome, the shopper's rating shown on the desk. Also: two agents
claiming at once (exactly one wins), the "already claimed" error in plain words, English, and how the page is
served (strict CSP, no inline code, cached assets) — and docs/screenshot-desk.png.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kefu.config import DEMO_BOT_DIR
from tests.support import ROOT, KefuServer, iter_sse, token_for
from tests.web.conftest import WebStack
from tests.web.test_widget import answers, ask, expect, part, visitor

WEB = ROOT / "kefu" / "web"
SCREENSHOT = ROOT / "docs" / "screenshot-desk.png"
PASSWORD = "desk-test-password 1"
AGENTS = {"alice": "小李", "bob": "小王"}  # login name → the name shoppers see


# ----------------------------------------------------------------------------- fixtures and helpers


@dataclass
class Replicas:
    """Two ``kefu serve`` processes on one Redis and one PostgreSQL database, with agents alice and bob."""

    a: KefuServer  # the shopper's
    b: KefuServer  # the desk's


@pytest.fixture
def replicas(make_server: Callable[..., KefuServer], redis_url: str, web_postgres_db: str, tmp_path: Path) -> Replicas:
    # The demo shop bot (its FAQ, its human flow, its canned replies) with people always at work, so the test does
    # not depend on the time of day.
    bot = tmp_path / "bot"
    shutil.copytree(DEMO_BOT_DIR, bot, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    config = yaml.safe_load((bot / "handoff.yaml").read_text(encoding="utf-8"))
    config.pop("hours", None)
    config["queue_timeout"] = 0
    (bot / "handoff.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    shared = {
        "KEFU_DEMO": "1",
        "KEFU_BOT_DIR": str(bot),
        "KEFU_REDIS_URL": redis_url,
        "KEFU_REDIS_PREFIX": f"kefu-desk-{uuid.uuid4().hex[:8]}",
        "KEFU_DATABASE_URL": web_postgres_db,
        "KEFU_SSE_HEARTBEAT": "1",
        "KEFU_LOG_LEVEL": "warning",
    }
    a = make_server(None, **shared)
    b = make_server(None, **shared)  # A has migrated the database
    for name, display in AGENTS.items():
        added = subprocess.run(
            [sys.executable, "-m", "kefu", "agent", "add", name, "--role", "agent", "--display-name", display]
            + ["--password-stdin"],
            input=PASSWORD + "\n",
            env={**os.environ, **a.env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert added.returncode == 0, added.stdout + added.stderr
    return Replicas(a, b)


def new_page(context: Any) -> Any:
    """A page that records uncaught JavaScript errors."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    return page


def desk_login(page: Any, url: str, name: str) -> None:
    page.goto(url + "/desk")
    expect(page.locator("#login-form")).to_be_visible()
    page.fill("#login-name", name)
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")
    expect(page.locator("#desk-view")).to_be_visible()
    expect(page.locator("#me")).to_contain_text(AGENTS[name])


def desk_client(url: str, name: str) -> httpx.Client:
    """The desk API as ``name``, with the bearer token from the login."""
    http = httpx.Client(base_url=url, timeout=30)
    login = http.post("/desk/api/login", json={"name": name, "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert login.json()["token"].startswith("kd_")
    http.headers["Authorization"] = f"Bearer {login.json()['token']}"
    return http


def shopper_asks_for_a_person(url: str, user: str) -> str:
    """A shopper's turn "转人工" over HTTP; returns the session id (now queued)."""
    headers = {"Authorization": f"Bearer {token_for(user)}"}
    with (
        httpx.Client(base_url=url, timeout=30) as http,
        http.stream("POST", "/v1/chat", json={"message": "转人工"}, headers=headers) as response,
    ):
        assert response.status_code == 200, response.read()
        events = [e for e in iter_sse(response) if e is not None]
    session = next(e for e in events if e.event == "session").data["session_id"]
    assert any(e.event == "handoff" and e.data["state"] == "queued" for e in events), events
    return str(session)


def transcript(desk: Any) -> list[str]:
    texts: list[str] = desk.locator("#transcript .msg .bubble").all_text_contents()
    return texts


# ----------------------------------------------------------------------------- tests


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.browser
def test_desk_and_widget_on_two_replicas(browser: Any, replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b
    desk_ctx = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN", device_scale_factor=1)
    shop_ctx = browser.new_context(viewport={"width": 1280, "height": 820}, locale="zh-CN")
    desk_ctx.set_default_timeout(15_000)
    shop_ctx.set_default_timeout(15_000)
    try:
        desk = new_page(desk_ctx)
        shop = new_page(shop_ctx)

        # Log in on replica B (a wrong password first: the API's error in plain words).
        desk.goto(b.url + "/desk")
        expect(desk.locator("h1")).to_have_text("客服工作台")
        expect(desk.locator("#login-submit")).to_have_text("登录")
        expect(desk.locator("#login-name")).to_be_focused()
        desk.fill("#login-name", "alice")
        desk.fill("#login-password", "wrong")
        desk.press("#login-password", "Enter")
        expect(desk.locator("#login-error")).to_have_text("用户名或密码错误")
        desk_login(desk, b.url, "alice")
        expect(desk.locator("#live")).to_have_attribute("data-state", "on")
        expect(desk.locator("#queue-meta")).to_contain_text("在线客服 1 人")

        # The shopper asks for a person on replica A; the widget says it is queued.
        shop.goto(a.url + "/")
        expect(part(shop, ".greeting")).to_be_visible()
        ask(shop, "转人工")
        expect(answers(shop).last).to_contain_text("已为您登记转人工")
        bar = part(shop, ".hbar")
        expect(bar).to_contain_text("排队中")
        _, sid = visitor(shop)

        # The desk's queue shows it live (no reload): state, reason, a waiting time that ticks.
        item = desk.locator(f'.q-item[data-sid="{sid}"]')
        expect(item).to_be_visible()
        expect(item.locator(".state")).to_have_text("排队中")
        expect(item.locator(".q-reason")).to_have_text("顾客要求转人工")
        wait = item.locator(".q-wait")
        expect(wait).to_have_text(re.compile(r"^已等待 \d\d:\d\d$"))
        before = wait.text_content()
        expect(wait).not_to_have_text(before or "")
        expect(desk).to_have_title(re.compile(r"^\(1\) 客服工作台"))

        # A message while queued: relayed to the desk, an unread badge and the preview, live.
        ask(shop, "在吗？")
        expect(item.locator(".badge")).to_have_text("1")
        expect(item.locator(".q-preview")).to_have_text("在吗？")

        # Open it: the transcript with roles and the bot's source; opening marks it read.
        item.click()
        expect(desk.locator("#conv-state")).to_have_text("排队中")
        expect(desk.locator("#conv-reason")).to_contain_text("顾客要求转人工")
        expect(desk.locator('#transcript .msg[data-role="assistant"] .src').first).to_have_text("流程")
        expect(desk.locator('#transcript .msg[data-role="user"] .bubble')).to_have_text(["转人工", "在吗？"])
        expect(item.locator(".badge")).to_have_count(0)
        expect(desk.locator("#send")).to_be_disabled()
        expect(desk.locator("#reply-hint")).to_have_text("接入这个会话后才能回复。")

        # Claim: the widget says who joined; the reply box takes the focus.
        desk.click("#act-claim")
        expect(desk.locator("#conv-state")).to_have_text("人工服务中")
        expect(desk.locator("#conv-agent")).to_contain_text("小李")
        expect(desk.locator("#reply")).to_be_focused()
        expect(bar).to_have_text("客服 小李 已接入")
        expect(desk.locator("#transcript .sys").last).to_contain_text("客服 小李 已接入")

        # A canned reply, found by search, goes into the reply box; Enter sends it.
        desk.fill("#canned-q", "问候")
        canned = desk.locator("#canned-list button.canned")
        expect(canned).to_have_count(1)
        canned.click()
        greeting = "您好，我是小铺的客服，很高兴为您服务，请问有什么可以帮您？"
        expect(desk.locator("#reply")).to_have_value(greeting)
        expect(desk.locator("#reply")).to_be_focused()
        desk.keyboard.press("Enter")
        expect(desk.locator("#reply")).to_have_value("")
        agent_msgs = part(shop, ".msg.agent")
        expect(agent_msgs).to_have_count(1)
        expect(agent_msgs.locator(".who")).to_have_text("小李")
        expect(agent_msgs.locator(".bubble")).to_have_text(greeting)

        # Typing: the desk tells the shopper at most every 3 s, and the widget shows it. Shift+Enter: a new line.
        typing_posts: list[str] = []
        desk.on("request", lambda r: typing_posts.append(r.url) if r.url.endswith("/typing") else None)
        desk.locator("#reply").press_sequentially("请问是哪个订单", delay=120)
        desk.keyboard.press("Shift+Enter")
        desk.keyboard.type("？")
        expect(desk.locator("#reply")).to_have_value("请问是哪个订单\n？")
        assert len(typing_posts) == 1, typing_posts
        expect(part(shop, ".agent-typing")).to_have_text("小李 正在输入…")
        desk.keyboard.press("Enter")
        expect(agent_msgs).to_have_count(2)
        expect(agent_msgs.last.locator(".bubble")).to_have_text("请问是哪个订单？")
        expect(agent_msgs.last.locator(".bubble br")).to_have_count(1)  # the new line came along

        # The shopper answers: it reaches the desk live, after the agent's messages, once.
        ask(shop, "订单号 DD20261105002")
        user_msgs = desk.locator('#transcript .msg[data-role="user"] .bubble')
        expect(user_msgs.last).to_have_text("订单号 DD20261105002")
        assert transcript(desk)[-3:] == [greeting, "请问是哪个订单\n？", "订单号 DD20261105002"]

        # An internal note (private), shown with its author; the shopper never sees it.
        desk.fill("#note-text", "顾客着急，优先处理")
        desk.check("#note-private")
        desk.click("#note-add")
        note = desk.locator("#notes-list .note")
        expect(note).to_have_count(1)
        expect(note.locator(".who")).to_have_text("小李")
        expect(note.locator(".tag")).to_have_text("私密")
        expect(part(shop, ".log")).not_to_contain_text("顾客着急")

        # The desk mid-conversation, for the docs.
        desk.mouse.move(0, 0)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        desk.screenshot(path=str(SCREENSHOT))
        assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and SCREENSHOT.stat().st_size > 20_000

        # The desk's network drops while the shopper writes: after reconnecting, the message is there, once, and
        # nothing before it shows twice (EventSource resumes; the desk skips events it already has).
        desk_ctx.set_offline(True)
        ask(shop, "我等你消息")
        expect(part(shop, ".msg.user").last).to_contain_text("我等你消息")
        desk_ctx.set_offline(False)
        expect(user_msgs.last).to_have_text("我等你消息")
        expect(user_msgs).to_have_count(4)
        texts = transcript(desk)
        assert len(texts) == len(set(texts)), texts
        assert texts[-4:] == [greeting, "请问是哪个订单\n？", "订单号 DD20261105002", "我等你消息"]

        # Back to the bot: the widget says so, and the bot answers the next question (a FAQ) itself.
        desk.click("#act-release")
        expect(desk.locator("#conv-state")).to_have_text("机器人")
        expect(bar).to_be_hidden()
        expect(part(shop, ".sys").last).to_contain_text("已回到智能助手")
        bot_before = answers(shop).count()
        ask(shop, "怎么退货")
        expect(answers(shop)).to_have_count(bot_before + 1)
        expect(answers(shop).last).to_have_attribute("data-state", "complete")
        expect(answers(shop).last).to_contain_text("申请售后")
        expect(desk.locator("#act-claim")).to_be_disabled()

        # A new handoff of the same conversation: the open conversation and the queue follow it live.
        ask(shop, "转人工")
        expect(bar).to_contain_text("排队中")
        expect(desk.locator("#conv-state")).to_have_text("排队中")
        expect(item.locator(".state")).to_have_text("排队中")
        desk.click("#act-claim")
        expect(desk.locator("#conv-state")).to_have_text("人工服务中")
        expect(bar).to_have_text("客服 小李 已接入")

        # Close with an outcome: a dialog that Esc closes (focus back on its button), then for real.
        close = desk.locator("#act-close")
        close.click()
        dialog = desk.locator("#close-dialog")
        expect(dialog).to_be_visible()
        expect(desk.locator('#close-dialog input[value="resolved"]')).to_be_focused()
        desk.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(close).to_be_focused()
        assert owner_state(b, sid) == "agent"
        close.click()
        desk.check('#close-dialog input[value="unresolved"]')
        desk.check('#close-dialog input[value="resolved"]')
        desk.click("#close-ok")
        expect(dialog).to_be_hidden()
        expect(desk.locator("#conv-state")).to_have_text("已结束")
        expect(desk.locator("#send")).to_be_disabled()
        expect(item).to_have_count(0)  # closed conversations leave the queue

        # The shopper rates 5 in the widget; the desk shows it live, and the API has it.
        rate = part(shop, "form.rate")
        expect(rate).to_be_visible()
        rate.locator("button.star").nth(4).click()
        rate.locator("button.rate-send").click()
        expect(rate).to_have_text("感谢您的评价！")
        expect(desk.locator("#info .rating")).to_have_attribute("data-score", "5")
        expect(desk.locator("#transcript .sys").last).to_contain_text("顾客评分：5 星")
        http = desk_client(b.url, "alice")
        try:
            stored = http.get(f"/desk/api/conversations/{sid}")
        finally:
            http.close()
        assert stored.status_code == 200, stored.text
        body = stored.json()
        assert body["state"] == "closed" and body["handoff"]["rating"] == 5
        assert body["handoff"]["outcome"] == "resolved"
        agent_rows = [m for m in body["messages"] if m["role"] == "agent"]
        assert [m["content"] for m in agent_rows] == [greeting, "请问是哪个订单\n？"]
        assert {m["author"] for m in agent_rows} == {"小李"}

        # The login is an HttpOnly cookie. Logging out revokes it: back to the login form, and the old cookie is
        # refused on every replica.
        cookie = next(c for c in desk_ctx.cookies() if c["name"] == "kefu_desk")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        desk.click("#logout")
        expect(desk.locator("#login-form")).to_be_visible()
        for server in (a, b):
            me = httpx.get(server.url + "/desk/api/me", cookies={"kefu_desk": cookie["value"]})
            assert me.status_code == 401, me.text
        assert desk.js_errors == [] and shop.js_errors == []
    finally:
        desk_ctx.close()
        shop_ctx.close()


def owner_state(server: KefuServer, sid: str) -> str:
    """The conversation's owner state, as the desk API reports it."""
    http = desk_client(server.url, "alice")
    try:
        state: str = http.get(f"/desk/api/conversations/{sid}").json()["state"]
    finally:
        http.close()
    return state


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.browser
def test_two_agents_claim_at_once_and_the_loser_is_told(browser: Any, replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b
    sid = shopper_asks_for_a_person(a.url, f"shopper-{uuid.uuid4().hex[:6]}")
    alice, bob = desk_client(a.url, "alice"), desk_client(b.url, "bob")
    try:
        # Both at the same moment, each on another replica: exactly one wins.
        start = threading.Barrier(2)
        results: dict[str, httpx.Response] = {}

        def claim(name: str, http: httpx.Client) -> None:
            start.wait()
            results[name] = http.post(f"/desk/api/conversations/{sid}/claim")

        threads = [threading.Thread(target=claim, args=item) for item in (("alice", alice), ("bob", bob))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(r.status_code for r in results.values()) == [200, 409], {k: r.text for k, r in results.items()}
        winner = next(name for name, r in results.items() if r.status_code == 200)
        loser = next(r for r in results.values() if r.status_code == 409)
        assert loser.json()["error"]["code"] == "already_claimed"
        owner = (alice if winner == "alice" else bob).get(f"/desk/api/conversations/{sid}").json()
        assert owner["state"] == "agent" and owner["handoff"]["agent"]["name"] == AGENTS[winner]

        # In the desk (English browser): bob opens a waiting conversation, alice takes it meanwhile; bob's claim
        # fails with the API's error in plain words and its code. (His live feed is held back, so his page still
        # offers the claim, as it would in the instant before the update arrives.)
        sid2 = shopper_asks_for_a_person(a.url, f"shopper-{uuid.uuid4().hex[:6]}")
        context = browser.new_context(viewport={"width": 1280, "height": 820}, locale="en-US")
        context.set_default_timeout(15_000)
        try:
            page = new_page(context)
            page.route(re.compile(r".*/desk/api/(stream|conversations/[^/]+/events).*"), lambda route: route.abort())
            page.goto(b.url + "/desk")
            expect(page.locator("h1")).to_have_text("Agent desk")
            expect(page.locator("#login-submit")).to_have_text("Log in")
            page.fill("#login-name", "bob")
            page.fill("#login-password", PASSWORD)
            page.press("#login-password", "Enter")
            expect(page.locator("#desk-view")).to_be_visible()
            item = page.locator(f'.q-item[data-sid="{sid2}"]')
            expect(item.locator(".state")).to_have_text("queued")
            item.click()
            expect(page.locator("#conv-state")).to_have_text("queued")
            assert alice.post(f"/desk/api/conversations/{sid2}/claim").status_code == 200
            page.click("#act-claim")
            alert = page.get_by_role("alert").filter(has_text="already claimed")
            expect(alert).to_be_visible()
            expect(page.locator("#alert-text")).to_have_text("Another agent has already claimed this conversation")
            expect(page.locator("#alert-code")).to_have_text("Error code: already_claimed")
            expect(page.locator("#send")).to_be_disabled()  # no reply box for someone else's conversation
            assert page.js_errors == []
        finally:
            context.close()
    finally:
        alice.close()
        bob.close()


def test_desk_page_is_served_with_a_strict_policy_and_cached_assets(web_stack: WebStack) -> None:
    with httpx.Client(base_url=web_stack.url) as http:
        page = http.get("/desk")
        assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["cache-control"] == "no-cache"
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert 'src="/desk.js"' in page.text and 'href="/desk.css"' in page.text
        assert http.head("/desk").status_code == 200
        for path, media in (("/desk.js", "text/javascript"), ("/desk.css", "text/css")):
            asset = http.get(path)
            assert asset.status_code == 200 and asset.headers["content-type"] == f"{media}; charset=utf-8"
            assert asset.headers["cache-control"].startswith("public, max-age=")
            assert asset.headers["content-encoding"] == "gzip"
            assert http.get(path, headers={"If-None-Match": asset.headers["etag"]}).status_code == 304
            assert http.head(path).status_code == 200


def test_desk_files_have_no_inline_code_no_html_sinks_and_no_remote_loads() -> None:
    html = (WEB / "desk.html").read_text(encoding="utf-8")
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []  # every script is a file
    assert re.findall(r"<style|\sstyle=|\son[a-z]+=", html, flags=re.IGNORECASE) == []
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls and all(u.startswith(("/", "#")) for u in urls), urls
    source = (WEB / "desk.js").read_text(encoding="utf-8")
    sinks = re.compile(r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|\beval\(|new Function|\bimport\(")
    assert sinks.findall(source) == []
    assert re.findall(r"https?://", source + (WEB / "desk.css").read_text(encoding="utf-8")) == []
    assert "localStorage" not in source  # the login is an HttpOnly cookie, nothing script-readable
