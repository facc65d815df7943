"""The shopper's side of human handoff in the widget, in a real (headless) Chromium against ``kefu serve``.

An agent is played through the desk's HTTP API (no desk UI): ``kefu agent add``, login, claim, typing, messages,
release, close. Covered: the "talk to a person" control (header and under an answer that offers it), the queue and
"joined" status line, a person's messages labelled with their name, the typing line, messages relayed without an
empty bot bubble, reload and a network drop mid-conversation (each message once, none lost), back to the bot, and
close → rating → stored.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from kefu.config import DEMO_BOT_DIR
from tests.support import ROOT, KefuServer
from tests.web.test_widget import answers, ask, expect, open_demo, part, visitor

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
AGENT, AGENT_NAME = "xiaowang", "小王"


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def server(make_server: Callable[..., KefuServer], tmp_path: Path) -> KefuServer:
    """``kefu serve`` in demo mode with the demo shop bot, its people always "at work" (no business hours, so the
    test does not depend on the time of day), and one agent account."""
    bot = tmp_path / "bot"
    shutil.copytree(DEMO_BOT_DIR, bot, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    (bot / "handoff.yaml").write_text("queue_timeout: 0\nrepeated_failures: 2\n", encoding="utf-8")
    kefu = make_server(None, KEFU_DEMO="1", KEFU_BOT_DIR=str(bot), KEFU_SSE_HEARTBEAT="1", KEFU_LOG_LEVEL="warning")
    added = subprocess.run(
        [sys.executable, "-m", "kefu", "agent", "add", AGENT, "--display-name", AGENT_NAME, "--password-stdin"],
        input=PASSWORD + "\n",
        env={**kefu.env, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    return kefu


class Agent:
    """A person at the desk, through its HTTP API."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        login = self.http.post("/desk/api/login", json={"name": AGENT, "password": PASSWORD})
        assert login.status_code == 200, login.text
        self.http.headers["Authorization"] = f"Bearer {login.json()['token']}"
        self._stop = threading.Event()

    def post(self, sid: str, action: str, body: dict[str, Any] | None = None) -> httpx.Response:
        response = self.http.post(f"/desk/api/conversations/{sid}/{action}", json=body)
        assert response.status_code in (200, 204), (action, response.text)
        return response

    def conversation(self, sid: str) -> dict[str, Any]:
        response = self.http.get(f"/desk/api/conversations/{sid}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    def go_online(self) -> None:
        """Keep the desk's stream open (that is what makes an agent "online"), until the test ends."""

        own = httpx.Client(base_url=self.http.base_url, headers=self.http.headers, timeout=httpx.Timeout(30, read=None))

        def hold() -> None:  # until the test stops its server (or the agent closes and a heartbeat comes)
            try:
                with own, own.stream("GET", "/desk/api/stream") as stream:
                    for _ in stream.iter_lines():
                        if self._stop.is_set():
                            return
            except httpx.HTTPError:
                return

        threading.Thread(target=hold, daemon=True).start()
        for _ in range(100):
            if self.http.get("/desk/api/queue").json()["online_agents"] == 1:
                return
            self._stop.wait(0.05)
        raise AssertionError("the agent never showed as online")

    def close(self) -> None:
        self._stop.set()
        self.http.close()


@pytest.fixture
def agent(server: KefuServer) -> Iterator[Agent]:
    person = Agent(server.url)
    yield person
    person.close()


def handoff_state(server: KefuServer, page: Any) -> dict[str, Any]:
    token, sid = visitor(page)
    response = httpx.get(f"{server.url}/v1/sessions/{sid}/handoff", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def bubbles(page: Any, selector: str) -> list[str]:
    texts: list[str] = part(page, f"{selector} .bubble").all_text_contents()
    return texts


def feed_requests(page: Any) -> list[int]:
    """Record the ``?after=`` of every conversation-feed request the page makes from now on."""
    seen: list[int] = []

    def on_request(request: Any) -> None:
        url = urlsplit(request.url)
        if url.path.endswith("/events") and "/v1/sessions/" in url.path:
            seen.append(int(parse_qs(url.query).get("after", ["-1"])[0]))

    page.on("request", on_request)
    return seen


# ----------------------------------------------------------------------------- tests


def test_button_queue_agent_typing_reload_drop_close_and_rating(
    page: Any, context: Any, server: KefuServer, agent: Agent
) -> None:
    open_demo(page, server.url)
    human = part(page, "button.human")
    expect(human).to_have_attribute("aria-label", "转人工")
    ask(page, "满多少包邮？")
    expect(answers(page)).to_have_count(1)
    expect(answers(page).last).to_have_attribute("data-state", "complete")
    agent.go_online()

    # The header button asks for a person with POST …/handoff (a session exists), and the status line says so.
    with page.expect_response(lambda r: r.url.endswith("/handoff") and r.request.method == "POST") as posted:
        human.click()
    assert posted.value.status == 200
    bar = part(page, ".hbar")
    expect(bar).to_have_text("排队中，前面还有 0 位")
    expect(part(page, ".sys").last).to_contain_text("已为您转接人工客服")
    expect(human).to_be_disabled()  # a person owns the conversation now
    _, sid = visitor(page)
    assert handoff_state(server, page)["state"] == "queued"

    agent.post(sid, "claim")
    expect(bar).to_have_text(f"客服 {AGENT_NAME} 已接入")
    expect(part(page, ".sys").last).to_have_text(f"客服 {AGENT_NAME} 已接入，正在为您服务。")  # the feed's notice

    agent.post(sid, "typing")
    typing = part(page, ".agent-typing")
    expect(typing).to_be_visible()
    expect(typing).to_have_text(f"{AGENT_NAME} 正在输入…")
    agent.post(sid, "messages", {"text": "您好，我是小王，请问有什么可以帮您？"})
    expect(part(page, ".msg.agent")).to_have_count(1)
    expect(part(page, ".msg.agent .who")).to_have_text(AGENT_NAME)
    expect(part(page, ".msg.agent .bubble")).to_have_text("您好，我是小王，请问有什么可以帮您？")
    expect(typing).to_be_hidden()

    # The shopper's message goes to the person: no bot bubble (the turn ends with source "human" and no text).
    ask(page, "我的订单 DD20261105002 还没到")
    expect(part(page, ".msg.user")).to_have_count(2)
    expect(part(page, "textarea")).to_be_enabled()
    expect(answers(page)).to_have_count(1)
    transcript = agent.conversation(sid)["messages"]
    assert [m["content"] for m in transcript if m["role"] == "user"][-1] == "我的订单 DD20261105002 还没到"

    # Away from the page while the agent writes; back again: the message is there, once, and the feed resumes
    # after the last event it had read (persisted), not from the start.
    page.goto("about:blank")
    agent.post(sid, "messages", {"text": "我查一下，请稍等。"})
    after = feed_requests(page)
    page.goto(server.url + "/")
    expect(part(page, ".msg.agent")).to_have_count(2)
    expect(bar).to_have_text(f"客服 {AGENT_NAME} 已接入")
    agent.post(sid, "messages", {"text": "已经为您催促仓库发货。"})
    expect(part(page, ".msg.agent")).to_have_count(3)
    assert after and after[0] > 0, after
    assert bubbles(page, ".msg.agent") == [
        "您好，我是小王，请问有什么可以帮您？",
        "我查一下，请稍等。",
        "已经为您催促仓库发货。",
    ]
    assert bubbles(page, ".msg.user") == ["满多少包邮？", "我的订单 DD20261105002 还没到"]

    # A network drop: the feed reconnects and resumes; nothing lost, nothing twice.
    connections = len(after)
    context.set_offline(True)
    agent.post(sid, "messages", {"text": "仓库说今天发出。"})
    context.set_offline(False)
    expect(part(page, ".msg.agent")).to_have_count(4)
    expect(part(page, ".msg.agent .bubble").last).to_have_text("仓库说今天发出。")
    assert len(after) > connections and after[-1] > after[connections - 1], after  # a new connection, resumed

    # Closed: a short line, the server's notice in its place, and the rating form.
    agent.post(sid, "close", {"outcome": "resolved"})
    rate = part(page, "form.rate")
    expect(rate).to_be_visible()
    expect(bar).to_be_hidden()
    expect(part(page, ".sys").last).to_contain_text("本次人工服务已结束")  # handoff.yaml texts.closed
    expect(part(page, ".sys").filter(has_text="本次服务已结束")).to_have_count(0)  # replaced, not both
    send = rate.locator("button.rate-send")
    expect(send).to_be_disabled()  # no score yet
    rate.locator("button.star").nth(3).click()
    expect(rate.locator("button.star[data-on]")).to_have_count(4)
    expect(rate.locator("button.star").nth(3)).to_have_attribute("aria-pressed", "true")
    rate.locator("textarea").fill("很耐心")
    send.click()
    expect(rate).to_have_text("感谢您的评价！")
    stored = handoff_state(server, page)
    assert stored["state"] == "closed" and stored["handoff"]["rating"] == 4
    desk_view = agent.conversation(sid)["handoff"]
    assert desk_view["rating"] == 4 and desk_view["rating_comment"] == "很耐心"

    # After a reload: the same conversation, each message once, and no second rating form.
    page.reload()
    expect(part(page, ".msg.agent")).to_have_count(4)
    expect(part(page, ".msg.user")).to_have_count(2)
    expect(part(page, "form.rate")).to_have_count(0)
    expect(part(page, ".error")).to_have_count(0)  # relayed messages are not "unanswered"
    expect(human).to_be_enabled()
    assert page.js_errors == []


def test_no_session_yet_sends_the_words_then_back_to_bot_then_offered_button(page: Any, server: KefuServer) -> None:
    open_demo(page, server.url)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(urlsplit(r.url).path) if r.method == "POST" else None)
    part(page, "button.human").click()
    # No conversation yet: the control says "转人工" as a message; the bot's human flow queues it.
    expect(part(page, ".msg.user")).to_have_count(1)
    expect(part(page, ".msg.user .bubble")).to_have_text("转人工")
    expect(answers(page)).to_have_count(1)
    expect(answers(page).last).to_contain_text("已为您登记转人工")
    bar = part(page, ".hbar")
    expect(bar).to_have_text("客服暂时不在线，您可以先留言，客服会尽快回复您")  # nobody has the desk open
    assert not any(p.endswith("/handoff") for p in posts)
    _, sid = visitor(page)
    assert handoff_state(server, page)["state"] == "queued"

    # A message while queued: relayed, no bubble, still the offline line (the relay's event cannot know).
    for n, text in enumerate(("有人吗", "还在吗"), start=2):
        ask(page, text)
        expect(part(page, ".msg.user")).to_have_count(n)
        expect(part(page, "textarea")).to_be_enabled()
    expect(answers(page)).to_have_count(1)
    expect(bar).to_have_text("客服暂时不在线，您可以先留言，客服会尽快回复您")
    # After a reload, the relayed messages are not shown as "unanswered" (no person has written yet).
    page.reload()
    expect(part(page, ".msg.user")).to_have_count(3)
    expect(bar).to_be_visible()
    expect(answers(page)).to_have_count(1)
    expect(part(page, ".error")).to_have_count(0)

    # The agent hands the conversation back to the bot: the line says so and the status line goes away.
    person = Agent(server.url)
    try:
        person.post(sid, "release")
    finally:
        person.close()
    expect(bar).to_be_hidden()
    expect(part(page, ".sys").last).to_have_text("已回到智能助手，有需要可以随时再转人工。")
    expect(part(page, "button.human")).to_be_enabled()

    # The bot cannot help and offers a person: a visible button under that answer, which asks by POST …/handoff.
    ask(page, "qzx 啵啵 ffj")
    expect(answers(page)).to_have_count(2)
    offer = answers(page).last.locator("button.offer")
    expect(offer).to_be_visible()
    expect(offer).to_have_text("转人工")
    offer.click()
    expect(bar).to_have_text("客服暂时不在线，您可以先留言，客服会尽快回复您")
    expect(part(page, "button.offer")).to_have_count(0)
    assert [p for p in posts if p.endswith("/handoff")] == [f"/v1/sessions/{sid}/handoff"]
    state = handoff_state(server, page)
    assert state["state"] == "queued" and state["handoff"]["reason"] == "button"
    assert page.js_errors == []


def test_english_strings_and_hostile_agent_text_stays_text(page: Any, server: KefuServer, agent: Agent) -> None:
    page.goto(server.url + "/widget?lang=en")
    expect(part(page, ".greeting")).to_be_visible()
    human = part(page, "button.human")
    expect(human).to_have_attribute("aria-label", "Talk to a person")
    agent.go_online()
    human.click()
    bar = part(page, ".hbar")
    expect(bar).to_contain_text("In the queue")
    _, sid = visitor(page)
    agent.post(sid, "claim")
    expect(bar).to_have_text(f"{AGENT_NAME} has joined the chat")
    hostile = "<img src=x onerror=alert(1)> [x](javascript:alert(2))"
    agent.post(sid, "messages", {"text": hostile})
    expect(part(page, ".msg.agent .bubble")).to_have_text(hostile)
    assert part(page, ".msg.agent img").count() == 0 and part(page, ".msg.agent a").count() == 0
    agent.post(sid, "release")
    expect(part(page, ".sys").last).to_contain_text("已回到智能助手")  # the bot's own (Chinese) notice text
    expect(bar).to_be_hidden()
    assert page.js_errors == []


def test_agent_name_survives_a_reload(page: Any, server: KefuServer, agent: Agent) -> None:
    open_demo(page, server.url)
    part(page, "button.human").click()
    expect(part(page, ".hbar")).to_be_visible()
    _, sid = visitor(page)
    agent.post(sid, "claim")
    agent.post(sid, "messages", {"text": "您好"})
    expect(part(page, ".msg.agent .who")).to_have_text(AGENT_NAME)
    page.reload()
    expect(part(page, ".msg.agent")).to_have_count(1)
    expect(part(page, ".msg.agent .who")).to_have_text(AGENT_NAME, timeout=3000)
