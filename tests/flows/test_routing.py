"""Routing messages to the demo flows without a model (threshold: FlowSet.threshold, 0.55)."""

from __future__ import annotations

import pytest

from kefu.flows.interpreter import FlowInterpreter
from kefu.flows.model import FlowSet
from kefu.flows.router import FlowRouter

PHRASINGS = {
    "order_status": [
        "我的快递到哪了",
        "查下物流",
        "where is my order",
        "我的订单怎么还没到",
        "帮我看看快递到哪里了",
        "订单DD20261105002到哪了",
        "我买的耳机发货没有",
        "Where's my package?",
        "can you track my order",
        "查订单",
        "东西寄出了吗",
    ],
    "return_request": [
        "想退货",
        "我要退货",
        "这个耳机我不想要了能退吗",
        "申请退款",
        "质量有问题我要退",
        "帮我退一下这个订单",
        "I want to return this",
        "can I get a refund for my order",
        "衣服不合适想退",
        "鞋子坏了要退货",
    ],
    "change_address": [
        "地址填错了要改",
        "我要改收货地址",
        "收货地址写错了",
        "能帮我换个地址吗",
        "修改一下订单地址",
        "I need to change my address",
        "wrong address on my order",
        "地址错了",
        "把地址改成北京",
        "change the shipping address please",
    ],
    "human": [
        "转人工",
        "人工客服",
        "我要找真人",
        "talk to a human",
        "real person please",
        "给我转人工服务",
        "找人工",
        "能不能让人工来处理",
        "human agent",
        "接人工",
    ],
}
FAQ_QUESTIONS = [
    "运费多少",
    "你们几点上班",
    "怎么开发票",
    "退货运费谁出",
    "支持七天无理由退货吗",
    "退款多久到账",
    "怎么申请退货？",
    "退货地址是什么",
    "发货后几天能收到",
    "物流很久没有更新怎么办",
    "默认发什么快递",
    "优惠券怎么用",
    "how much is shipping",
    "what is your return policy",
    "how do I return an item",
    "你好",
]


@pytest.mark.parametrize(("flow", "text"), [(f, t) for f, texts in PHRASINGS.items() for t in texts])
def test_route_picks_the_demo_flow(demo_interpreter: FlowInterpreter, flow: str, text: str) -> None:
    match = demo_interpreter.route(text)
    assert match is not None and match.flow == flow, (text, match)
    assert match.score >= demo_interpreter.flows.threshold


@pytest.mark.parametrize("text", FAQ_QUESTIONS)
def test_route_leaves_faq_questions_alone(demo_interpreter: FlowInterpreter, text: str) -> None:
    assert demo_interpreter.route(text) is None


def test_route_ignores_empty_text(demo_interpreter: FlowInterpreter) -> None:
    assert demo_interpreter.route("   ") is None


def test_keyword_hits_only_whole_english_words(demo_flows: FlowSet) -> None:
    router = FlowRouter(demo_flows)
    assert router.route("talk to a human") is not None
    assert router.route("humanity is great") is None


def test_example_match_below_threshold_does_not_route(demo_flows: FlowSet) -> None:
    strict = FlowSet(demo_flows.flows, demo_flows.lexicon, threshold=0.99)
    router = FlowRouter(strict)
    assert router.scores("能帮我换个地址吗")[0].flow == "change_address"
    match = router.route("能帮我换个地址吗")
    assert match is None or match.via == "classifier"  # the example score no longer counts; the classifier may
    assert router.route("地址填错了要改") is not None  # keywords do not depend on the threshold
