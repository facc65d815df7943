"""Outgoing webhooks against a real receiver over loopback HTTP and a real database (a SQLite file; PostgreSQL
too for the replicas case)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import shutil
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict
from sqlalchemy.ext.asyncio import AsyncEngine

from kefu.handoff.webhooks import EVENTS, DeliveryRecord, Webhooks, WebhookTarget, sign, verify, wecom_message
from kefu.obs.metrics import Metrics
from kefu.store.migrate import upgrade_database_sync
from kefu.store.sql import create_engine_for
from kefu.store.webhooks import WebhookStore

SECRET = "whsec-test"
ALL_EVENTS = frozenset(EVENTS)


@dataclass
class Hit:
    """One request the receiver got."""

    headers: CIMultiDict[str]
    body: bytes
    verified: bool | None  # None: it carried no signature


@dataclass
class Receiver:
    """A webhook receiver on loopback: checks signatures with :func:`verify`, answers scripted statuses."""

    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    reply: bytes = b"ok"
    hold: asyncio.Event | None = None  # when set: wait (up to 10 s) for it before answering
    answered: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        signature = request.headers.get("X-Kefu-Signature")
        verified = verify(SECRET, signature, body) if signature is not None else None
        self.hits.append(Hit(CIMultiDict(request.headers), body, verified))
        if self.hold is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.hold.wait(), 10)
        status = self.statuses.pop(0) if self.statuses else 200
        self.answered += 1
        return web.Response(status=status, body=self.reply)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found.url = f"http://127.0.0.1:{port}/hook"
    yield found
    if found.hold is not None:
        found.hold.set()
    await runner.cleanup()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback port that refuses connections (bound, never listening, so nothing else can take it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    sock.close()


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite file that each test copies."""
    path = tmp_path_factory.mktemp("template") / "kefu.db"
    upgrade_database_sync(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(migrated_sqlite: Path, tmp_path: Path) -> str:
    path = tmp_path / "kefu.db"
    shutil.copyfile(migrated_sqlite, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """A migrated, empty database of this test's own."""
    if request.param == "sqlite":
        return sqlite_url
    url: str = request.getfixturevalue("postgres_db")
    upgrade_database_sync(url)
    return url


Make = Callable[..., Webhooks]


@pytest.fixture
async def make_hooks() -> AsyncIterator[Make]:
    """Build :class:`Webhooks` instances (each with its own engine, like a replica); stopped afterwards."""
    made: list[tuple[Webhooks, AsyncEngine]] = []

    def make(url: str, targets: Sequence[WebhookTarget], **kwargs: Any) -> Webhooks:
        engine = create_engine_for(url)
        hooks = Webhooks(engine, **kwargs)
        hooks.use_targets(targets)
        made.append((hooks, engine))
        return hooks

    yield make
    for hooks, engine in made:
        await hooks.stop()
        await engine.dispose()


def team(url: str, *, events: frozenset[str] = ALL_EVENTS, secret: str | None = SECRET) -> WebhookTarget:
    return WebhookTarget(name="team", url=url, events=events, secret=secret)


async def until(check: Callable[[], Awaitable[bool]], *, within: float = 15.0) -> None:
    """Wait for ``check`` to hold; fail (not hang) if it never does."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached")
        await asyncio.sleep(0.01)


async def only(hooks: Webhooks) -> DeliveryRecord:
    [record] = await hooks.deliveries()
    return record


def has_status(hooks: Webhooks, status: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await only(hooks)).status == status

    return check


def count(metrics: Metrics, event: str, result: str) -> float | None:
    return metrics.registry.get_sample_value("kefu_webhook_deliveries_total", {"event": event, "result": result})


def test_signature_covers_the_exact_body_and_a_fresh_timestamp() -> None:
    body = '{"event":"handoff.requested","data":{"text":"你好"}}'.encode()
    header = sign(SECRET, 1_700_000_000, body)
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify(SECRET, header, body, now=1_700_000_010)
    assert not verify(SECRET, header, body.replace("你好".encode(), "再见".encode()), now=1_700_000_010)
    assert not verify("another-secret", header, body, now=1_700_000_010)
    assert not verify(SECRET, header, body, now=1_700_000_000 + 301)  # replayed later
    assert not verify(SECRET, header, body, now=1_700_000_000 - 301)
    assert not verify(SECRET, header.replace("t=1700000000", "t=1700000100"), body, now=1_700_000_100)
    for malformed in ("", "garbage", f"v1={expected}", "t=1700000000", "t=soon,v1=00"):
        assert not verify(SECRET, malformed, body, now=1_700_000_000)


async def test_signed_delivery_arrives_and_verifies(sqlite_url: str, receiver: Receiver, make_hooks: Make) -> None:
    hooks = make_hooks(sqlite_url, [team(receiver.url)])
    data = {"session_id": "s_1", "handoff_id": "ho_1", "reason": "button", "position": 1}

    assert await hooks.emit("handoff.requested", data, session_id="s_1") == 1
    assert receiver.hits == []  # queued, never sent inline
    assert await hooks.deliver_due() == 1

    [hit] = receiver.hits
    record = await only(hooks)
    assert hit.verified is True
    assert hit.headers["Content-Type"] == "application/json"
    assert hit.headers["X-Kefu-Event"] == "handoff.requested"
    assert hit.headers["X-Kefu-Delivery"] == record.id
    payload = json.loads(hit.body)
    assert payload["event"] == "handoff.requested"
    assert payload["id"] == record.id
    assert payload["data"] == data
    assert datetime.fromisoformat(payload["created_at"]) == record.created_at
    # The receiver's check fails for a tampered body and for a stale timestamp.
    signature = hit.headers["X-Kefu-Signature"]
    assert not verify(SECRET, signature, hit.body.replace(b"button", b"model"))
    assert not verify(SECRET, signature, hit.body, now=time.time() + 600)
    assert (record.status, record.attempts, record.last_status, record.last_error) == ("delivered", 1, 200, None)
    assert record.delivered_at is not None
    assert (record.target, record.url, record.session_id, record.event) == (
        "team",
        receiver.url,
        "s_1",
        "handoff.requested",
    )
    assert await hooks.deliver_due() == 0  # nothing is sent twice


async def test_server_errors_are_retried_until_delivered(sqlite_url: str, receiver: Receiver, make_hooks: Make) -> None:
    receiver.statuses = [500, 500]
    metrics = Metrics()
    hooks = make_hooks(sqlite_url, [team(receiver.url)], metrics=metrics, backoff=(0.01, 0.01), poll_interval=0.05)
    hooks.start()

    await hooks.emit("message.created", {"session_id": "s_1", "text": "在吗"}, session_id="s_1")
    await until(has_status(hooks, "delivered"))

    record = await only(hooks)
    assert record.attempts == 3
    assert record.last_status == 200
    assert record.last_error is not None and "HTTP 500" in record.last_error  # what went wrong before
    assert [hit.headers["X-Kefu-Delivery"] for hit in receiver.hits] == [record.id] * 3
    assert all(hit.verified for hit in receiver.hits)  # each retry is signed afresh
    assert count(metrics, "message.created", "retry") == 2
    assert count(metrics, "message.created", "delivered") == 1


async def test_dead_receiver_is_retried_then_given_up(sqlite_url: str, refused_url: str, make_hooks: Make) -> None:
    metrics = Metrics()
    hooks = make_hooks(
        sqlite_url, [team(refused_url)], metrics=metrics, max_attempts=3, backoff=(0.01,), poll_interval=0.05
    )
    hooks.start()

    await hooks.emit("conversation.closed", {"session_id": "s_1", "outcome": "resolved"}, session_id="s_1")
    await until(has_status(hooks, "failed"))

    record = await only(hooks)
    assert record.attempts == 3
    assert record.last_status is None
    assert record.last_error is not None and "Connect" in record.last_error
    assert record.delivered_at is None
    assert count(metrics, "conversation.closed", "retry") == 2
    assert count(metrics, "conversation.closed", "failed") == 1
    assert await hooks.deliver_due() == 0  # failed is final


async def test_slow_receiver_never_delays_emit(sqlite_url: str, receiver: Receiver, make_hooks: Make) -> None:
    receiver.hold = asyncio.Event()  # the receiver sits on every request for up to 10 s
    hooks = make_hooks(sqlite_url, [team(receiver.url)], timeout=30, poll_interval=0.05)
    hooks.start()

    assert await hooks.emit("message.created", {"session_id": "s_1", "text": "一"}, session_id="s_1") == 1
    assert (await only(hooks)).status == "pending"
    assert receiver.answered == 0

    await until(lambda: _true(len(receiver.hits) == 1))  # the dispatcher sends it in the background
    # While that request hangs, another event is still only queued.
    assert await hooks.emit("message.created", {"session_id": "s_1", "text": "二"}, session_id="s_1") == 1
    assert [r.status for r in await hooks.deliveries()] == ["pending", "pending"]
    assert receiver.answered == 0

    receiver.hold.set()

    async def all_delivered() -> bool:
        return all(r.status == "delivered" for r in await hooks.deliveries())

    await until(all_delivered)
    assert receiver.answered == 2


async def _true(value: bool) -> bool:
    return value


async def test_two_replicas_deliver_each_delivery_exactly_once(
    database_url: str, receiver: Receiver, make_hooks: Make
) -> None:
    first = make_hooks(database_url, [team(receiver.url)])
    second = make_hooks(database_url, [team(receiver.url)])
    for i in range(30):
        await first.emit("message.created", {"session_id": f"s_{i}", "text": str(i)}, session_id=f"s_{i}")

    attempted = 0
    for _ in range(20):
        # Both replicas (and two dispatch passes of each) race for the same due rows.
        rounds = await asyncio.gather(
            first.deliver_due(7), second.deliver_due(7), first.deliver_due(7), second.deliver_due(7)
        )
        attempted += sum(rounds)
        if not any(r.status == "pending" for r in await first.deliveries()):
            break

    records = await second.deliveries()
    assert len(records) == 30
    assert all((r.status, r.attempts) == ("delivered", 1) for r in records)
    assert Counter(hit.headers["X-Kefu-Delivery"] for hit in receiver.hits) == {r.id: 1 for r in records}
    assert attempted == 30


async def test_wecom_target_gets_markdown_and_no_signature(
    sqlite_url: str, receiver: Receiver, make_hooks: Make
) -> None:
    robot = WebhookTarget(
        name="wecom", url=receiver.url, events=frozenset({"handoff.requested"}), secret=SECRET, format="wecom"
    )
    hooks = make_hooks(sqlite_url, [robot])
    data = {"session_id": "s_9", "reason": "shopper_asked", "reason_text": None, "position": 2, "offline": False}

    assert await hooks.emit("handoff.requested", data, session_id="s_9") == 1
    assert await hooks.deliver_due() == 1

    [hit] = receiver.hits
    assert "X-Kefu-Signature" not in hit.headers
    body = json.loads(hit.body)
    assert body == wecom_message("handoff.requested", data)
    assert body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert content.startswith("**转人工请求**\n")
    assert "> 会话：s_9" in content
    assert "前面还有 2 位" in content
    assert (await only(hooks)).status == "delivered"


async def test_wecom_refusal_with_http_200_is_retried(sqlite_url: str, receiver: Receiver, make_hooks: Make) -> None:
    receiver.reply = b'{"errcode":93000,"errmsg":"invalid webhook url"}'
    robot = WebhookTarget(name="wecom", url=receiver.url, events=ALL_EVENTS, format="wecom")
    hooks = make_hooks(sqlite_url, [robot])

    await hooks.emit("csat.received", {"session_id": "s_1", "score": 5}, session_id="s_1")
    assert await hooks.deliver_due() == 1

    record = await only(hooks)
    assert (record.status, record.attempts, record.last_status) == ("pending", 1, 200)
    assert record.last_error is not None and "93000" in record.last_error


async def test_only_subscribed_events_are_queued(sqlite_url: str, receiver: Receiver, make_hooks: Make) -> None:
    hooks = make_hooks(
        sqlite_url,
        [
            team(receiver.url, events=frozenset({"handoff.requested"})),
            WebhookTarget(name="survey", url=receiver.url, events=frozenset({"csat.received"})),
        ],
    )

    assert await hooks.emit("message.created", {"session_id": "s_1", "text": "hi"}, session_id="s_1") == 0
    assert await hooks.deliveries() == []
    assert await hooks.emit("csat.received", {"session_id": "s_1", "score": 4}, session_id="s_1") == 1
    assert [r.target for r in await hooks.deliveries()] == ["survey"]
    assert await hooks.deliver_due() == 1
    assert [hit.headers["X-Kefu-Event"] for hit in receiver.hits] == ["csat.received"]
    assert receiver.hits[0].verified is None  # a target without a secret sends no signature
    with pytest.raises(ValueError):
        await hooks.emit("order.shipped", {})


async def test_targets_follow_reloads(sqlite_url: str, receiver: Receiver, make_hooks: Make) -> None:
    hooks = make_hooks(sqlite_url, [team(receiver.url)])
    await hooks.emit("handoff.requested", {"session_id": "s_1"}, session_id="s_1")

    hooks.use_targets([])  # the bot was reloaded without webhooks
    assert hooks.targets == ()
    assert await hooks.emit("handoff.requested", {"session_id": "s_2"}, session_id="s_2") == 0
    assert await hooks.deliver_due() == 1

    record = await only(hooks)
    assert receiver.hits == []  # not sent to a target that is gone
    assert record.status == "failed"
    assert record.last_error == "target is no longer configured"


async def test_dispatcher_survives_errors(
    sqlite_url: str, receiver: Receiver, make_hooks: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_claim = WebhookStore.claim_due
    calls = 0

    async def flaky_claim(self: WebhookStore, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ConnectionError("database restarting")
        return await real_claim(self, *args, **kwargs)

    monkeypatch.setattr(WebhookStore, "claim_due", flaky_claim)
    hooks = make_hooks(sqlite_url, [team(receiver.url)], poll_interval=0.02)
    await hooks.emit("handoff.requested", {"session_id": "s_1"}, session_id="s_1")
    hooks.start()

    await until(has_status(hooks, "delivered"))
    assert calls > 2
    assert len(receiver.hits) == 1


async def test_delete_for_session(sqlite_url: str, receiver: Receiver, make_hooks: Make) -> None:
    hooks = make_hooks(sqlite_url, [team(receiver.url), WebhookTarget(name="b", url=receiver.url, events=ALL_EVENTS)])
    await hooks.emit("handoff.requested", {"session_id": "s_1"}, session_id="s_1")
    await hooks.emit("handoff.requested", {"session_id": "s_2"}, session_id="s_2")
    engine = create_engine_for(sqlite_url)
    try:
        assert await WebhookStore(engine).delete_for_session("s_1") == 2
    finally:
        await engine.dispose()
    assert {r.session_id for r in await hooks.deliveries()} == {"s_2"}


async def test_deliveries_are_newest_first_and_limited(sqlite_url: str, receiver: Receiver, make_hooks: Make) -> None:
    hooks = make_hooks(sqlite_url, [team(receiver.url)])
    for i in range(3):
        await hooks.emit("message.created", {"session_id": f"s_{i}"}, session_id=f"s_{i}")
    assert [r.session_id for r in await hooks.deliveries(limit=2)] == ["s_2", "s_1"]


def test_wecom_messages_per_event() -> None:
    def content(event: str, data: dict[str, Any]) -> str:
        message = wecom_message(event, data)
        assert message["msgtype"] == "markdown"
        text: str = message["markdown"]["content"]
        return text

    requested = content(
        "handoff.requested", {"session_id": "s_1", "reason": "frustration", "reason_text": "叫人工", "offline": True}
    )
    assert requested.splitlines() == [
        "**转人工请求**",
        "> 会话：s_1",
        "> 原因：顾客表达不满（叫人工）",
        "> 等待：非工作时间，顾客可留言",
    ]
    assert "> 客服：小王" in content("conversation.assigned", {"session_id": "s_1", "agent": {"name": "小王"}})
    assert content("conversation.assigned", {"agent": {"name": "小李"}, "transferred": True}).startswith(
        "**会话已转接**"
    )
    message = content("message.created", {"session_id": "s_1", "from": "shopper", "text": "第一行\n> **第二行**"})
    assert message.splitlines()[-1] == "> 内容：第一行 > **第二行**"  # shopper text stays on its quoted line
    assert "> 来自：客服 小王" in content("message.created", {"from": "agent", "agent": {"name": "小王"}, "text": "好"})
    assert "> 结果：已解决" in content("conversation.closed", {"session_id": "s_1", "outcome": "resolved"})
    rated = content("csat.received", {"session_id": "s_1", "score": 4, "comment": "很快"})
    assert "> 评分：★★★★☆ 4 分" in rated
    assert "> 评价：很快" in rated
    assert len(content("message.created", {"text": "长" * 1000}).splitlines()[-1]) < 220
