"""A stub tool caller with the demo shop's seed semantics, and a conversation driver that JSON-round-trips the
flow state between every turn (as Redis/SQL persistence would)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from kefu.flows.interpreter import FlowContext, FlowInterpreter, FlowReply
from kefu.flows.texts import Lang
from kefu.tools.base import Risk, ToolContext, ToolResult

TODAY = date(2026, 11, 12)
PHONE_LAST4 = "1234"
RISKS: dict[str, Risk] = {
    "find_orders": "read",
    "get_order": "read",
    "verify_phone": "read",
    "track_parcel": "read",
    "check_return_eligibility": "read",
    "create_return": "write",
    "change_address": "write",
}
SEED: dict[str, dict[str, Any]] = {
    "DD20261101001": {"status": "delivered", "status_text": "已签收", "total": 399.0, "delivered_days_ago": 3},
    "DD20261105002": {"status": "shipped", "status_text": "运输中", "total": 459.0},
    "DD20261110003": {"status": "paid", "status_text": "已付款，待发货", "total": 89.0},
    "DD20261001004": {"status": "delivered", "status_text": "已签收", "total": 149.0, "delivered_days_ago": 20},
}


@dataclass
class StubTools:
    """Implements :class:`kefu.tools.base.ToolCaller` over an in-memory copy of the demo seed.

    ``fail`` queues error codes per tool: the next calls of that tool fail with them, in order."""

    orders: dict[str, dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(SEED))
    calls: list[tuple[str, dict[str, Any], bool]] = field(default_factory=list)
    fail: dict[str, list[str]] = field(default_factory=dict)
    returns: list[str] = field(default_factory=list)

    def has(self, name: str) -> bool:
        return name in RISKS

    def risk(self, name: str) -> Risk | None:
        return RISKS.get(name)

    def names(self) -> list[str]:
        """Tools called so far, in order."""
        return [name for name, _, _ in self.calls]

    async def call(self, name: str, args: dict[str, Any], ctx: ToolContext, *, confirmed: bool = False) -> ToolResult:
        self.calls.append((name, dict(args), confirmed))
        queued = self.fail.get(name)
        if queued:
            return ToolResult(ok=False, error=queued.pop(0), elapsed_ms=1.0)
        if name not in RISKS:
            return ToolResult(ok=False, error="unknown_tool")
        if RISKS[name] == "write" and not confirmed:
            return ToolResult(ok=False, error="not_confirmed")
        if name == "find_orders":
            return ToolResult(ok=True, data={"orders": [{"order_id": k, **v} for k, v in self.orders.items()]})
        order = self.orders.get(str(args.get("order_id")))
        if order is None:
            return ToolResult(ok=False, error="not_found", status=404)
        oid = str(args["order_id"])
        match name:
            case "get_order":
                return ToolResult(ok=True, data={"order_id": oid, "address": "杭州市西湖区文三路1号", **order})
            case "verify_phone":
                return ToolResult(ok=True, data={"verified": args.get("phone_last4") == PHONE_LAST4})
            case "track_parcel":
                shipped = order["status"] in ("shipped", "delivered")
                latest = {"time": "2026-11-11 08:00", "location": "杭州", "description": "快件已到达杭州转运中心"}
                data = {"shipped": shipped, "carrier": "中通快递", "tracking_no": "ZT123456", "latest": latest}
                return ToolResult(ok=True, data={**data, "status_text": "in transit", "events": [latest]})
            case "check_return_eligibility":
                return ToolResult(ok=True, data=self._eligibility(oid, order))
            case "create_return":
                self.returns.append(oid)
                data = {"return_id": f"RT{len(self.returns):04d}", "status": "pending", "refund_amount": order["total"]}
                return ToolResult(ok=True, data=data)
            case "change_address":
                if order["status"] != "paid":
                    return ToolResult(ok=False, error="already_shipped", status=409)
                order["address"] = args["address"]
                return ToolResult(ok=True, data={"order_id": oid, "address": args["address"]})
        return ToolResult(ok=False, error="unknown_tool")

    def _eligibility(self, oid: str, order: dict[str, Any]) -> dict[str, Any]:
        if oid in self.returns:
            reason = "already_requested"
        elif order["status"] != "delivered":
            reason = "not_delivered"
        elif order["delivered_days_ago"] > 7:
            reason = "outside_window"
        else:
            reason = "ok"
        return {"eligible": reason == "ok", "reason": reason, "deadline": "2026-11-16"}


def context(lang: Lang = "zh", faq: Any = None) -> FlowContext:
    """A turn context for user ``u1`` with a fixed date."""
    return FlowContext(user_id="u1", session_id="s1", turn_id="t1", lang=lang, faq=faq, today=TODAY)


def _round_trip(state: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if state is None else json.loads(json.dumps(state, ensure_ascii=False))


@dataclass
class Chat:
    """Drives one conversation: ``start`` / ``say`` return each reply and keep the (round-tripped) state."""

    interpreter: FlowInterpreter
    ctx: FlowContext = field(default_factory=context)
    state: dict[str, Any] | None = None
    replies: list[FlowReply] = field(default_factory=list)

    def _keep(self, reply: FlowReply) -> FlowReply:
        assert reply.text.strip(), "a flow reply is never empty"
        self.state = _round_trip(reply.state)
        self.replies.append(reply)
        return reply

    async def start(self, flow: str, text: str, slots: dict[str, Any] | None = None) -> FlowReply:
        """Start ``flow`` from ``text``."""
        return self._keep(await self.interpreter.start(flow, text, self.ctx, slots=slots))

    async def say(self, text: str) -> FlowReply:
        """Send the next user message to the running flow."""
        assert self.state is not None, "no flow is running"
        return self._keep(await self.interpreter.handle(self.state, text, self.ctx))

    async def run(self, flow: str, *messages: str) -> FlowReply:
        """Start with the first message and send the rest; the last reply."""
        reply = await self.start(flow, messages[0])
        for message in messages[1:]:
            reply = await self.say(message)
        return reply
