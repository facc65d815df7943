"""Finding unanswered questions in one transcript: apologies, suggestions not taken, handoffs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kefu.bot.texts import CannedTexts
from kefu.report.query import HandoffFact, Msg
from kefu.report.unanswered import Classifier, find_unanswered, picked

T0 = datetime(2026, 12, 1, tzinfo=UTC)
CUSTOM = CannedTexts(apology="不好意思，这个问题我还不会回答。", suggest_intro="你可能想问：\n")


class Chat:
    def __init__(self) -> None:
        self.messages: list[Msg] = []

    def turn(self, text: str, source: str | None, answer: str = "好的") -> str:
        turn = f"t{len(self.messages)}"
        at = T0 + timedelta(minutes=len(self.messages))
        self.messages.append(Msg(len(self.messages), "s", turn, "user", text, None, at))
        if source is not None:
            self.messages.append(Msg(len(self.messages), "s", turn, "assistant", answer, source, at))
        return turn


def handoff(turn: str, reason: str, minute: int = 0) -> HandoffFact:
    return HandoffFact("s", turn, reason, "queued", None, None, T0 + timedelta(minutes=minute))


def test_the_bots_own_texts_are_recognised_and_the_defaults_too() -> None:
    chat = Chat()
    chat.turn("能开专票吗", "fallback", CUSTOM.apology)
    chat.turn("发票抬头能改吗", "fallback", CannedTexts().apology)  # said before the bot changed its texts
    chat.turn("发票多久开", "fallback", "你可能想问：\n- 发票怎么开？\n- 能开专票吗？")
    chat.turn("好的谢谢", "llm")
    found = find_unanswered(chat.messages, [], Classifier(CUSTOM))
    assert [(u.text, u.reasons) for u in found] == [
        ("能开专票吗", {"apology"}),
        ("发票抬头能改吗", {"apology"}),
        ("发票多久开", {"suggestion_not_taken"}),
    ]


def test_a_suggestion_is_taken_by_its_words_or_its_number() -> None:
    offered = ["运费怎么算？", "支持哪些支付方式？"]
    assert picked("运费怎么算", offered)
    assert picked("2", offered)
    assert picked("第一个", offered)
    assert not picked("3", offered)
    assert not picked("还是不对", offered)


def test_the_last_message_with_suggestions_is_not_taken() -> None:
    chat = Chat()
    chat.turn("会员积分怎么用", "fallback", CannedTexts().suggest_intro + "- 积分规则")
    assert [u.reasons for u in find_unanswered(chat.messages, [], Classifier())] == [{"suggestion_not_taken"}]


def test_handoffs_point_at_the_question() -> None:
    chat = Chat()
    chat.turn("可以改地址吗", "llm")
    chat.turn("?", "llm")  # too short to be a question
    asked = chat.turn("转人工", "human")
    relayed = chat.turn("我的订单还没到", "human")  # relayed to the person: not the bot's to answer
    model = chat.turn("能上门取件吗", "human")
    handoffs = [handoff(asked, "shopper_asked"), handoff(model, "model")]
    found = find_unanswered(chat.messages, handoffs, Classifier())
    assert [u.text for u in found] == ["可以改地址吗", "能上门取件吗"]
    assert relayed not in {u.turn_id for u in found}


def test_frustration_without_an_earlier_question_is_the_question() -> None:
    chat = Chat()
    turn = chat.turn("我要投诉，快递一周了还没到", "human")
    found = find_unanswered(chat.messages, [handoff(turn, "frustration")], Classifier())
    assert [(u.text, u.reasons) for u in found] == [("我要投诉，快递一周了还没到", {"handoff"})]


def test_a_flows_handoff_and_a_request_with_nothing_before_it_teach_nothing() -> None:
    chat = Chat()
    asked = chat.turn("人工", "human")
    flow = chat.turn("订单号 123", "flow")
    assert find_unanswered(chat.messages, [handoff(asked, "shopper_asked"), handoff(flow, "flow")], Classifier()) == []
