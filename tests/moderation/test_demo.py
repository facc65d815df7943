"""The demo shop's lexicon (kefu/demo/moderation.yaml): it catches what shoppers type, and never the shop's own
words nor ordinary shop talk."""

from __future__ import annotations

import ast
import json

import pytest

from kefu.config import DEMO_BOT_DIR
from kefu.content.problems import Problems
from kefu.handoff.config import load_handoff_config
from kefu.moderation import Moderator, load_moderation


@pytest.fixture(scope="module")
def demo() -> Moderator:
    problems = Problems()
    moderator, external = load_moderation(DEMO_BOT_DIR, problems)
    assert not problems.items, problems.report()
    assert external is None and not moderator.empty
    return moderator


SHOPPERS_WORDS = {"eval.jsonl"}  # the knowledge base's evaluation questions: what shoppers ask, not the shop's words


def shop_lines() -> list[tuple[str, str]]:
    """Every line of the demo's content (FAQ, documents, dictionary, flows, tools, texts, conversation tests,
    prompt, handoff texts) and every string of its merchant data (product names the model repeats)."""
    lines = []
    for path in sorted(DEMO_BOT_DIR.rglob("*")):
        if path.name in SHOPPERS_WORDS or path.name == "moderation.yaml":
            continue
        if path.suffix in (".yaml", ".csv", ".md", ".txt", ".jsonl", ".json"):
            text = path.read_text(encoding="utf-8")
            lines += [(f"{path}:{n}", line) for n, line in enumerate(text.splitlines(), 1)]
    data = DEMO_BOT_DIR / "shop" / "data.py"
    for node in ast.walk(ast.parse(data.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            lines.append((f"{data}:{node.lineno}", node.value))
    return lines


def test_the_demo_shops_own_content_never_trips_its_lexicon(demo: Moderator) -> None:
    lines = shop_lines()
    assert len(lines) > 1000
    tripped = [(where, line, demo.scan(line)) for where, line in lines if demo.scan(line)]
    assert not tripped, tripped[:5]
    for folder in ("kb", "flows", "tests"):  # the parts the brief names are all in there
        assert any(f"/{folder}/" in where for where, _ in lines), folder


@pytest.mark.parametrize(
    "text",
    [
        "我想加VIP会员有什么好处",
        "想买个送给他妈的生日礼物",
        "有没有去死皮的磨砂膏",
        "垃圾袋是赠品吗",
        "我的支付密码是不是6位数",
        "银行卡密码忘了怎么付款",
        "这个操作怎么弄",
        "S B两个码有什么区别",
        "first class shipping, pass",
        "你真傻。。。。。逼我买了两件",
        "可以用微信支付吗？微信付款有优惠吗",
        "客服电话多少？能私下问一下吗",
        "发票怎么开？公司抬头可以吗",
        "退款多久到账，能不能退回到花呗",
        "能开增值税专用发票吗",
    ],
)
def test_ordinary_shop_talk_is_left_alone(demo: Moderator, text: str) -> None:
    assert demo.check(text).action == "allow", demo.scan(text)
    assert demo.check(text, where="output").action == "allow"


@pytest.mark.parametrize(
    ("text", "action", "category", "shown"),
    [
        ("你们客服是傻 逼吗，东西坏了没人管", "mask", "abuse", "你们客服是* *吗，东西坏了没人管"),
        ("什么垃圾东西！！", "mask", "abuse", "什么****！！"),
        ("FUCK 又没发货", "mask", "abuse", "**** 又没发货"),
        ("草 泥 马，还不发货", "mask", "abuse", "* * *，还不发货"),
        ("亲 加V 私聊，便宜20", "flag", "contact_diversion", "亲 加V 私聊，便宜20"),
        ("加我薇信吧", "allow", None, "加我薇信吧"),  # homophones: list them if they matter to you
        ("有QQ群吗", "flag", "contact_diversion", "有QQ群吗"),
        ("能不能帮我刷單返現", "block", "fraud", "能不能帮我刷單返現"),
        ("可以代-开-发-票吗", "block", "fraud", "可以代-开-发-票吗"),
    ],
)
def test_what_shoppers_type(demo: Moderator, text: str, action: str, category: str | None, shown: str) -> None:
    verdict = demo.check(text)
    assert (verdict.action, verdict.text) == (action, shown)
    assert verdict.mark == (f"{action}:{category}" if category else None)
    if action == "block":
        assert verdict.reply is not None and "官方页面" in verdict.reply


def test_asking_for_a_person_is_never_starred(demo: Moderator) -> None:
    """Frustration and back-to-bot phrases route a conversation (handoff.yaml): moderation must leave them whole."""
    config = load_handoff_config(DEMO_BOT_DIR / "handoff.yaml", Problems())
    phrases = [*config.frustration, *config.back_to_bot, "转人工", "人工客服", "垃圾机器人，我要投诉"]
    assert [p for p in phrases if demo.scan(p)] == []


def test_the_evaluation_questions_are_answered_normally(demo: Moderator) -> None:
    """Real shopper questions: at most flagged for review ("客服能加微信吗"), never starred or refused."""
    questions = [
        json.loads(line)["query"]
        for line in (DEMO_BOT_DIR / "kb" / "eval.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    assert len(questions) > 100
    actions = {q: demo.check(q).action for q in questions}
    assert set(actions.values()) <= {"allow", "flag"}, [q for q, a in actions.items() if a not in ("allow", "flag")]
    assert actions["客服能加微信吗"] == "flag"
