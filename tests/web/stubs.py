"""Small HTTP servers for the browser tests: a shop's own site (another origin) and a model with shop answers.

Both run in threads of the test process (``ThreadingHTTPServer``) on free loopback ports.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit

from kefu.identity import mint_token

HOST_USER = "shopper-42"


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@dataclass
class StubServer:
    """A threaded HTTP server that stops with ``close()``."""

    server: ThreadingHTTPServer
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ----------------------------------------------------------------------------- the shop's own site


HOST_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Acme Goods</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body {{ font: 16px Georgia, serif; color: #400; }} button, textarea {{ all: unset; }}</style>
</head>
<body>
<h1>Acme Goods</h1>
<p>A shop on its own origin, embedding the kefu widget with one tag.</p>
<script src="{kefu}/widget.js" data-kefu-token-url="/my-backend/kefu-token" defer></script>
</body>
</html>
"""


def start_host_site(port: int, kefu_url: str, jwt_secret: str) -> tuple[StubServer, list[str]]:
    """A shop site on ``port``: ``/`` embeds kefu's widget, ``/my-backend/kefu-token`` mints its shopper's token.

    Returns the server and a list that records the token endpoint's calls (the Origin header of each).
    """
    calls: list[str] = []

    class Handler(_Quiet):
        def do_GET(self) -> None:
            if self.path == "/":
                self._send(200, HOST_PAGE.format(kefu=kefu_url).encode(), "text/html; charset=utf-8")
            else:
                self._send(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            if self.path != "/my-backend/kefu-token":
                self._send(404, b"not found", "text/plain")
                return
            # A real shop checks its own login session here and signs a token for *that* user:
            # the same code path as `kefu token USER_ID`.
            calls.append(self.headers.get("Origin") or "")
            token = mint_token(HOST_USER, jwt_secret, ttl_seconds=600)
            body = json.dumps({"token": token}).encode()
            self._send(200, body, "application/json", {"Cache-Control": "no-store"})

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    return StubServer(server), calls


# ----------------------------------------------------------------------------- a model with shop answers

SHIPPING = "满 **99 元**包邮，不满收 8 元运费。下单后 48 小时内发货，默认顺丰，偏远地区除外。"
RETURNS = (
    "退货很简单，**7 天无理由**：\n\n"
    "1. 在「我的订单」里点**申请退货**\n"
    "2. 选择上门取件，或自己寄回\n"
    "3. 仓库收到后 1–3 天退款到原支付账户\n\n"
    "详见[退换货说明](https://xiaopu.example/help/returns)。"
)
HOSTILE = (
    "试试 <img src=x onerror=alert(1)> 和 <script>alert(2)</script>，"
    "还有 [点我](javascript:alert(3)) 与 [官网](https://xiaopu.example/)。"
)
SHOP_ANSWERS = {"满多少包邮？": SHIPPING, "怎么退货？": RETURNS, "HOSTILE": HOSTILE}


class _ShopModel(_Quiet):
    """Answers a few questions like a small shop's assistant (Markdown included); forwards the rest to the mock."""

    protocol_version = "HTTP/1.0"
    mock_url: ClassVar[str] = ""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        messages = json.loads(body or b"{}").get("messages") or [{}]
        answer = SHOP_ANSWERS.get(str(messages[-1].get("content", "")).strip())
        if answer is None:
            self._forward(body)
        else:
            self._stream(answer)

    def _forward(self, body: bytes) -> None:
        target = urlsplit(self.mock_url)
        upstream = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        upstream.request("POST", self.path, body=body, headers=headers)
        response = upstream.getresponse()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(name, value)
        self.end_headers()
        while chunk := response.read1(65536):
            self.wfile.write(chunk)
            self.wfile.flush()
        upstream.close()

    def _stream(self, answer: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

        def chunk(delta: dict[str, Any], finish: str | None = None) -> None:
            obj = {
                "id": "chatcmpl-shop",
                "object": "chat.completion.chunk",
                "model": "shop-demo",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            self.wfile.write(b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n")
            self.wfile.flush()

        chunk({"role": "assistant", "content": ""})
        for i in range(0, len(answer), 3):
            chunk({"content": answer[i : i + 3]})
            time.sleep(0.012)
        chunk({}, "stop")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def start_shop_model(mock_url: str) -> StubServer:
    """An OpenAI-compatible model in front of the mock: shop answers for ``SHOP_ANSWERS``, the mock for the rest."""
    handler = type("ShopModel", (_ShopModel,), {"mock_url": mock_url})
    return StubServer(ThreadingHTTPServer(("127.0.0.1", 0), handler))
