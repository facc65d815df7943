"""``kefu chat`` while a person owns the conversation: a real ``kefu chat`` process (stdin/stdout pipes) against
``kefu serve`` in demo mode; the agent is played through the desk's HTTP API."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from kefu.config import DEMO_BOT_DIR
from tests.support import ROOT, KefuServer

PASSWORD = "correct horse battery"


class Terminal:
    """``kefu chat`` with its output collected by a thread."""

    def __init__(self, url: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
        env |= {"PYTHONUNBUFFERED": "1", "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kefu", "chat", "--url", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := os.read(self.proc.stdout.fileno(), 4096):
            self._chunks.append(chunk)

    @property
    def output(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def wait_for(self, text: str, count: int = 1, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.output.count(text) < count:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{text!r} (x{count}) never printed; output:\n{self.output}")
            time.sleep(0.05)

    def quit(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # Ctrl-D
        code = self.proc.wait(timeout=20)
        self._reader.join(timeout=5)
        return code


@pytest.fixture
def terminal_and_desk(make_server: Callable[..., KefuServer]) -> Iterator[tuple[Terminal, httpx.Client]]:
    server = make_server(None, KEFU_DEMO="1", KEFU_BOT_DIR=str(DEMO_BOT_DIR), KEFU_SSE_HEARTBEAT="1")
    added = subprocess.run(
        [sys.executable, "-m", "kefu", "agent", "add", "xiaowang", "--display-name", "小王", "--password-stdin"],
        input=PASSWORD + "\n",
        env={**server.env, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    desk = httpx.Client(base_url=server.url, timeout=30)
    login = desk.post("/desk/api/login", json={"name": "xiaowang", "password": PASSWORD})
    assert login.status_code == 200, login.text
    desk.headers["Authorization"] = f"Bearer {login.json()['token']}"
    terminal = Terminal(server.url)
    yield terminal, desk
    if terminal.proc.poll() is None:
        terminal.proc.kill()
        terminal.proc.wait()
    desk.close()


def act(desk: httpx.Client, sid: str, action: str, body: dict[str, Any] | None = None) -> None:
    response = desk.post(f"/desk/api/conversations/{sid}/{action}", json=body)
    assert response.status_code in (200, 204), (action, response.text)


def test_chat_prints_the_agent_and_notices_until_closed_then_rates(
    terminal_and_desk: tuple[Terminal, httpx.Client],
) -> None:
    terminal, desk = terminal_and_desk
    terminal.type("转人工")
    terminal.wait_for("已为您登记转人工")
    queue = desk.get("/desk/api/queue").json()["conversations"]
    assert len(queue) == 1 and queue[0]["state"] == "queued"
    sid = queue[0]["session_id"]

    act(desk, sid, "claim")
    terminal.wait_for("客服 小王 已接入，正在为您服务。")
    act(desk, sid, "messages", {"text": "您好，我是小王，请问有什么可以帮您？"})
    terminal.wait_for("小王: 您好，我是小王，请问有什么可以帮您？")

    # The shopper's message goes to the person (the turn has no text) and the feed goes on.
    terminal.type("我的快递还没到")
    terminal.wait_for("(human, None)")
    transcript = desk.get(f"/desk/api/conversations/{sid}").json()["messages"]
    assert [m["content"] for m in transcript if m["role"] == "user"] == ["转人工", "我的快递还没到"]
    act(desk, sid, "messages", {"text": "[bold]已经为您催促仓库[/bold]"})  # printed as is, not as Rich markup
    terminal.wait_for("小王: [bold]已经为您催促仓库[/bold]")

    act(desk, sid, "close", {"outcome": "resolved"})
    terminal.wait_for("本次人工服务已结束")
    terminal.wait_for("/rate 1-5 [comment]")
    terminal.type("/rate 5 很好")
    terminal.wait_for("thank you for rating")
    handoff = desk.get(f"/desk/api/conversations/{sid}").json()["handoff"]
    assert handoff["rating"] == 5 and handoff["rating_comment"] == "很好"

    assert terminal.quit() == 0
    out = terminal.output
    assert f"session: {sid}" in out
    # Every message of the person and every notice exactly once (the feed starts at this handoff: no replay).
    assert out.count("小王: 您好，我是小王") == 1 and out.count("客服 小王 已接入") == 1
    assert out.count("本次人工服务已结束") == 1
