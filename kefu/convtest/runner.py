"""Run conversation-test files in process: the real turn engine, a throw-away SQLite database, stubs or the
demo shop for the merchant API, and whatever model ``KEFU_LLM_*`` configures (none by default)."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kefu.config import Settings
from kefu.convtest.spec import Conversation, Exchange, SpecError, TestFile
from kefu.demo.shop.api import create_shop_app
from kefu.engine.events import DeltaEvent, DoneEvent, ErrorEvent, payload
from kefu.engine.flow_step import TurnRef
from kefu.flows.interpreter import FlowReply
from kefu.identity import Identity
from kefu.runtime import Runtime, build_runtime
from kefu.tools.base import ToolResult

DEMO_SHOP = "http://demo-shop.kefu-test"
_TURN_TIMEOUT = 60.0


@dataclass(slots=True)
class Observed:
    """What one turn did."""

    reply: str = ""
    done: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    flow: FlowReply | None = None


@dataclass(slots=True)
class ExchangeResult:
    """The outcome of one exchange: passed, or the failed expectations."""

    conversation: str
    line: int
    user: str | None
    failures: list[str] = field(default_factory=list)
    reply: str = ""

    @property
    def passed(self) -> bool:
        """True when every expectation held."""
        return not self.failures


def _result(raw: dict[str, Any]) -> ToolResult:
    if "ok" in raw or "error" in raw:
        return ToolResult(
            ok=bool(raw.get("ok", "error" not in raw)),
            data=raw.get("data"),
            error=raw.get("error"),
            message=raw.get("message"),
            status=raw.get("status"),
        )
    return ToolResult(ok=True, data=raw.get("data", raw))


class ConversationRunner:
    """Runs the conversations of one test file against one in-process kefu."""

    def __init__(self, test: TestFile, *, bot_dir: Path | None = None, base: Settings | None = None) -> None:
        self._test = test
        self._tmp = tempfile.TemporaryDirectory(prefix="kefu-test-")
        overrides: dict[str, Any] = {
            "database_url": f"sqlite+aiosqlite:///{Path(self._tmp.name) / 'kefu.db'}",
            "redis_url": None,
            "answer_cache_ttl": 0,
            "demo": False,
        }
        chosen = test.bot_dir or bot_dir
        if chosen is not None:
            overrides["bot_dir"] = chosen
        self._mounts: dict[str, httpx.AsyncBaseTransport] = {}
        if test.merchant == "demo":
            overrides["demo_shop_url"] = DEMO_SHOP
            self._mounts[DEMO_SHOP] = httpx.ASGITransport(app=create_shop_app())
        self._settings = (base or Settings()).model_copy(update=overrides)
        self._runtime: Runtime | None = None
        self._seen: dict[str, FlowReply] = {}
        self._stub_calls: list[tuple[str, dict[str, Any]]] = []

    async def _start(self) -> Runtime:
        runtime = await build_runtime(self._settings, tool_mounts=self._mounts)
        bot = runtime.bot
        used = {step.tool for flow in bot.flows.flows.values() for step in flow.steps if step.tool}
        unknown = sorted(n for n in self._test.stubs if not bot.tools.has(n) and n not in used)
        if unknown:
            await runtime.aclose()
            known = ", ".join(sorted({t.name for t in bot.tools.specs()} | used)) or "none"
            raise SpecError(f"{self._test.path}: stub(s) {unknown} name no tool of the bot (tools: {known})")
        for name, results in self._test.stubs.items():
            runtime.bot.tools.stub(name, [_result(r) for r in results])
        flow_step = runtime.answerer.flow_step
        if flow_step is not None:
            flow_step.observers.append(self._observe)
        self._runtime = runtime
        return runtime

    def _observe(self, turn: TurnRef, reply: FlowReply) -> None:
        self._seen[turn.turn_id] = reply

    async def aclose(self) -> None:
        """Stop the in-process server and remove its database."""
        if self._runtime is not None:
            await self._runtime.aclose()
            self._runtime = None
        self._tmp.cleanup()

    async def run(self) -> list[ExchangeResult]:
        """Every exchange of every conversation, in order."""
        results: list[ExchangeResult] = []
        try:
            await self._start()
            for conversation in self._test.conversations:
                results.extend(await self._conversation(conversation))
        finally:
            await self.aclose()
        return results

    async def _conversation(self, conversation: Conversation) -> list[ExchangeResult]:
        identity = Identity(user_id=conversation.user or f"test-{uuid.uuid4().hex[:10]}", kind="server")
        session_id: str | None = None
        out = []
        for exchange in conversation.exchanges:
            if exchange.restart:
                assert self._runtime is not None
                await self._runtime.aclose()
                self._runtime = None
                await self._start()
                out.append(ExchangeResult(conversation.name, exchange.line, None))
                continue
            observed, session_id = await self._turn(identity, exchange, session_id)
            result = ExchangeResult(conversation.name, exchange.line, exchange.user, reply=observed.reply)
            result.failures = check(exchange, observed)
            out.append(result)
        return out

    async def _turn(self, identity: Identity, exchange: Exchange, session_id: str | None) -> tuple[Observed, str]:
        runtime = self._runtime
        assert runtime is not None and exchange.user is not None
        handle = await runtime.chat.start_turn(identity, exchange.user, session_id)
        meta = await runtime.chat.turn_meta(identity, handle.turn_id)
        observed = Observed()
        parts: list[str] = []
        async for logged in runtime.chat.follow(meta, 0, heartbeat=_TURN_TIMEOUT):
            if logged is None:
                observed.error = {"code": "timeout", "message": f"no answer within {_TURN_TIMEOUT:.0f} s"}
                break
            event = logged.event
            if isinstance(event, DeltaEvent):
                parts.append(event.text)
            elif isinstance(event, DoneEvent):
                observed.done = payload(event)  # expectations are written against the public JSON
            elif isinstance(event, ErrorEvent):
                observed.error = payload(event)
        observed.reply = "".join(parts)
        observed.flow = self._seen.pop(handle.turn_id, None)
        await _settled(runtime, handle.session_id)
        return observed, handle.session_id


async def _settled(runtime: Runtime, session_id: str) -> None:
    """Wait until the turn released its session (the answer is stored), so the next exchange can start."""
    for _ in range(200):
        holder = await runtime.hot.acquire_session(session_id, "probe", lease_seconds=0.5)
        if holder is None:
            await runtime.hot.release_session(session_id, "probe")
            return
        await asyncio.sleep(0.01)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches(expected: Any, actual: Any) -> bool:
    """``expected`` is contained in ``actual``: a partial mapping, or an equal value (compared as text)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _matches(v, actual[k]) for k, v in expected.items())
    return str(expected) == str(actual)


def check(exchange: Exchange, seen: Observed) -> list[str]:
    """The expectations of ``exchange`` that ``seen`` breaks, each as a readable sentence."""
    e = exchange.expect
    failures: list[str] = []
    done = seen.done or {}
    flow_info = done.get("flow") or {}
    if "error" in e:
        code = (seen.error or {}).get("code")
        if not _matches(e["error"], code):
            failures.append(f"error: expected {e['error']!r}, got {code!r}")
    elif seen.error is not None:
        failures.append(f"the turn ended with error {seen.error.get('code')!r}: {seen.error.get('message')}")
    for text in _as_list(e.get("reply_contains", [])):
        if str(text) not in seen.reply:
            failures.append(f"reply does not contain {text!r}")
    for text in _as_list(e.get("reply_not_contains", [])):
        if str(text) in seen.reply:
            failures.append(f"reply contains {text!r}")
    if "source" in e and done.get("source") != e["source"]:
        failures.append(f"source: expected {e['source']!r}, got {done.get('source')!r}")
    if "flow" in e:
        running = flow_info.get("name") if flow_info.get("status") == "running" else None
        if running != e["flow"]:
            now = f"{flow_info.get('name')} {flow_info.get('status')}" if flow_info else "no flow"
            failures.append(f"running flow: expected {e['flow']!r}, got {running!r} ({now})")
    if "flow_ended" in e:
        status = flow_info.get("status")
        wanted = e["flow_ended"]
        ended = status not in (None, "running")
        if (wanted is True and not ended) or (wanted is not True and status != wanted):
            failures.append(f"flow_ended: expected {wanted!r}, flow status is {status!r}")
    reply = seen.flow
    for name, value in (e.get("slot") or {}).items():
        actual = reply.slots.get(name) if reply else None
        if not _matches(value, actual):
            failures.append(f"slot {name}: expected {value!r}, got {actual!r}")
    calls = reply.tool_calls if reply else []
    for wanted_call in _as_list(e.get("tool_called", [])):
        spec = wanted_call if isinstance(wanted_call, dict) else {"name": wanted_call}
        hit = [c for c in calls if c.name == spec.get("name") and _matches(spec.get("with", {}), c.args)]
        if not hit:
            made = ", ".join(f"{c.name}({c.args})" for c in calls) or "none"
            args = f" with {spec['with']}" if spec.get("with") else ""
            failures.append(f"tool {spec.get('name')!r} not called{args} (calls: {made})")
    for name in _as_list(e.get("tool_not_called", [])):
        if any(c.name == name for c in calls):
            failures.append(f"tool {name!r} was called")
    wanted_handoff = e.get("handoff")
    handoff = done.get("handoff")
    if isinstance(wanted_handoff, bool) and bool(handoff) != wanted_handoff:
        failures.append(f"handoff: expected {wanted_handoff!r}, got {handoff!r}")
    elif isinstance(wanted_handoff, str) and (handoff or {}).get("state") != wanted_handoff:
        failures.append(f"handoff: expected state {wanted_handoff!r}, got {handoff!r}")
    if "handoff_offered" in e and bool(done.get("handoff_offered")) != bool(e["handoff_offered"]):
        failures.append(f"handoff_offered: expected {e['handoff_offered']!r}, got {done.get('handoff_offered')!r}")
    return failures
