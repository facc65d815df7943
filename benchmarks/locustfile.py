"""The seed scenario for teams who use Locust: simulated shoppers asking 5 questions each with think time.

Locust is not a kefu dependency; install it where you run the load::

    pip install locust
    KEFU_JWT_SECRET=... locust -f benchmarks/locustfile.py --host http://127.0.0.1:8000 \\
        --users 300 --spawn-rate 100 --run-time 2m --headless

Each simulated shopper gets a signed end-user token (``KEFU_JWT_SECRET``, the server's secret; or set
``KEFU_LOCUST_API_KEY`` to one of the server's ``KEFU_API_KEYS`` to act for the shoppers with ``X-Kefu-User``),
opens a session with its first question, asks 4 more in the same session with 1-5 s of think time, then leaves
and a new shopper takes its place. Half the questions are FAQ questions the demo shop answers from its knowledge
base, half need the model. Two request types are reported per question kind:

- ``chat faq`` / ``chat model``: the POST, timed by Locust to the response headers (failures: non-200, an
  ``error`` event, or a stream that ends without ``done``);
- ``ttft faq`` / ``ttft model``: time to the first answer text, and ``answer faq`` / ``answer model``: time to
  the end of the streamed answer (custom events).

Streams that end with an ``error`` event, or without ``done``, count as failures. Use a load generator
machine separate from the server for numbers that mean anything; Locust's own CPU per request is high.
``benchmarks/seed.py`` runs the same scenario without Locust (open-loop arrivals, per-process CPU).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from typing import Any

from locust import HttpUser, between, task  # type: ignore[import-not-found]

# The same questions as benchmarks/seed.py (kept here so this file runs on a machine with only locust).
# Answered by the demo shop's knowledge base (FAQ) without the model.
FAQ_QUESTIONS = [
    "运费怎么算？",
    "什么时候发货",
    "怎么退货",
    "退款多久到账？",
    "退货运费谁出？",
    "怎么查物流？",
    "发货后几天能收到？",
    "支持七天无理由退货吗？",
    "可以指定顺丰吗",
    "能寄香港吗",
]
# Need the model; {n} makes each one specific to its shopper.
MODEL_QUESTIONS = [
    "我身高{n}厘米，平时穿M码，你们家的卫衣我该选哪个码？",
    "想给{n}岁的妈妈买件外套，有什么推荐吗？",
    "上次买的牛仔裤洗了{n}次有点褪色，正常吗？",
    "我预算{n}元左右，想要一件春天穿的薄外套，怎么选？",
    "白色T恤和米色T恤哪个更百搭？我皮肤偏黄，今年{n}岁",
    "羊毛衫洗了{n}次起球了怎么处理？",
]

QUESTIONS_PER_SHOPPER = 5
_ids = itertools.count()


def _auth(user_id: str) -> dict[str, str]:
    api_key = os.environ.get("KEFU_LOCUST_API_KEY")
    if api_key:
        return {"Authorization": f"Bearer {api_key}", "X-Kefu-User": user_id}
    import jwt  # PyJWT, a kefu dependency; install it next to locust when running elsewhere

    secret = os.environ["KEFU_JWT_SECRET"]
    now = int(time.time())
    token = jwt.encode({"sub": user_id, "iat": now, "exp": now + 3600}, secret, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


class Shopper(HttpUser):  # type: ignore[misc]
    wait_time = between(1, 5)

    def on_start(self) -> None:
        self._new_shopper()

    def _new_shopper(self) -> None:
        self.user_id = f"locust-{uuid.uuid4().hex[:12]}-{next(_ids)}"
        self.headers = _auth(self.user_id)
        self.session_id: str | None = None
        self.asked = 0

    @task
    def ask(self) -> None:
        if self.asked >= QUESTIONS_PER_SHOPPER:
            self._new_shopper()
        self.asked += 1
        if random.random() < 0.5:
            kind, text = "faq", random.choice(FAQ_QUESTIONS)
        else:
            kind, text = "model", random.choice(MODEL_QUESTIONS).format(n=random.randint(150, 550))
        body: dict[str, Any] = {"message": text, "session_id": self.session_id}
        start = time.perf_counter()
        first: float | None = None
        event = ""
        with self.client.post(
            "/v1/chat", json=body, headers=self.headers, stream=True, catch_response=True, name=f"chat {kind}"
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            outcome = None
            for raw in response.iter_lines(decode_unicode=True):
                if raw.startswith("event: "):
                    event = raw[7:]
                elif raw.startswith("data: "):
                    if event == "session":
                        self.session_id = json.loads(raw[6:])["session_id"]
                    elif event == "delta" and first is None:
                        first = time.perf_counter() - start
                    elif event in ("done", "error"):
                        outcome = (event, raw[6:])
                        break
            total = time.perf_counter() - start
            if outcome is None:
                response.failure("stream ended without done")
            elif outcome[0] == "error":
                response.failure(f"error event {outcome[1][:80]}")
            else:
                response.success()
        if first is not None:
            self._report(f"ttft {kind}", first)
        if outcome is not None and outcome[0] == "done":
            self._report(f"answer {kind}", total)

    def _report(self, name: str, seconds: float) -> None:
        self.environment.events.request.fire(
            request_type="SSE", name=name, response_time=seconds * 1000, response_length=0, exception=None, context={}
        )
