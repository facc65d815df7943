"""A bare order number with no task running: offer what can be done with that order.

"DD20261105002" alone names an order but no task. The reply names the order and the flows that take an order
number (as suggestions a widget shows as buttons); the offer is kept in the session's flow state (so it survives
restarts and replicas) and the next message ("查物流", "退货") starts that flow with the order number filled.
"""

from __future__ import annotations

import re
from typing import Any

from kefu.flows.model import DEFAULT_ORDER_ID, Flow, FlowSet
from kefu.flows.slots import order_pattern
from kefu.flows.texts import Lang, builtin
from kefu.text.normalize import normalize

OFFER = "_offer"  # the pseudo-flow name an offer is stored and reported under (never a flow's name: [a-z]…)
VERSION = 1
# Words that may surround a bare order number without asking for anything ("订单号 DD…", "这单 DD…").
_AROUND = re.compile(
    r"我的|这个|这单|订单号码?|订单|单号|号码|是|的|就是|请|您|你|帮我|看看|麻烦|一下|[吧啊呀哦嗯呢哈~]"
    r"|\b(?:my|order|number|no|id|is|the|it's|its|this|one|please)\b"
)


def order_flows(flows: FlowSet) -> list[Flow]:
    """The flows that collect an order number (in load order)."""
    return [f for f in flows.flows.values() if any(s.type == "order_id" for s in f.slots.values())]


def bare_order_id(text: str, flows: FlowSet) -> str | None:
    """The order number when ``text`` is an order number and nothing else (a few words around it at most)."""
    patterns = {
        s.pattern or DEFAULT_ORDER_ID for f in order_flows(flows) for s in f.slots.values() if s.type == "order_id"
    }
    compact = normalize(text)
    for pattern in patterns:
        found = order_pattern(pattern).findall(compact)
        if len(set(found)) != 1:
            continue
        rest = _AROUND.sub(" ", compact.replace(found[0], " "))
        if not rest.strip():
            return str(found[0]).upper()
    return None


def label(flow: Flow, lang: Lang) -> str:
    """The flow's button text: its ``label``, else its first trigger example, else its name."""
    if flow.label is not None:
        return flow.label.get(lang)
    return flow.examples[0] if flow.examples else flow.name


def offer_state(order_id: str, lang: Lang) -> dict[str, Any]:
    """The snapshot kept while the offer waits for an answer."""
    return {"v": VERSION, "offer": {"order_id": order_id, "lang": lang}}


def offered(state: dict[str, Any] | None) -> tuple[str, Lang] | None:
    """``(order_id, lang)`` when ``state`` is an offer snapshot."""
    if not isinstance(state, dict) or state.get("v") != VERSION or not isinstance(state.get("offer"), dict):
        return None
    order_id = state["offer"].get("order_id")
    lang: Lang = "en" if state["offer"].get("lang") == "en" else "zh"
    return (order_id, lang) if isinstance(order_id, str) and order_id else None


def offer_text(order_id: str, choices: list[str], lang: Lang) -> str:
    """The reply that offers ``choices`` for the order."""
    return builtin("order_offer", lang, order_id=order_id, choices=" / ".join(choices))


def chosen(text: str, flows: list[Flow], lang: Lang) -> Flow | None:
    """The flow whose button text (or name) the message is."""
    said = normalize(text)
    for flow in flows:
        names = {normalize(label(flow, lang)), normalize(label(flow, "zh")), normalize(label(flow, "en")), flow.name}
        if said in names:
            return flow
    return None
