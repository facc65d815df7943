"""One language per conversation: ids, codes and fillers never switch it; a real sentence or any Chinese does."""

from __future__ import annotations

import pytest

from kefu.flows.texts import conversation_lang, decided_lang, detect_lang

FILLERS_AND_IDS = ["12ab", "DD20261105002", "1234", "ok", "OK", "SKU 8823", "thx", "ok thanks", "thank you", "yf"]


@pytest.mark.parametrize("text", [*FILLERS_AND_IDS, "kf rg", "🙂"])
def test_ids_codes_and_fillers_never_switch_a_chinese_conversation(text: str) -> None:
    assert detect_lang(text, default="zh") == "zh"
    assert conversation_lang(text, ["我的订单到哪了"]) == "zh"


@pytest.mark.parametrize("text", ["where is my order", "Do you ship to HK?", "how much is shipping", "I want a refund"])
def test_a_real_english_sentence_switches(text: str) -> None:
    assert detect_lang(text, default="zh") == "en"
    assert conversation_lang(text, ["运费多少"]) == "en"


@pytest.mark.parametrize("text", ["好", "我要refund", "Where is 我的 order?", "订单 DD20261105002 where"])
def test_a_message_with_chinese_is_chinese(text: str) -> None:
    assert detect_lang(text, default="en") == "zh"
    assert conversation_lang(text, ["where is my order"]) == "zh"


def test_an_english_conversation_stays_english_through_ids_and_fillers() -> None:
    earlier = ["where is my order", "DD20261105002"]
    assert conversation_lang("12ab", earlier) == "en"
    assert conversation_lang("ok", earlier) == "en"
    assert conversation_lang("1234", ["hello"]) == "en"


def test_the_first_message_decides_with_a_single_word_but_not_with_an_id() -> None:
    assert decided_lang("hello", settled=False) == "en"
    assert decided_lang("hello", settled=True) is None
    assert decided_lang("return policy", settled=False) == "en"
    assert decided_lang("return policy", settled=True) is None  # no sentence: a Chinese conversation stays
    assert decided_lang("qwzx plmok", settled=False) is None  # keyboard mashing is no language
    assert decided_lang("12ab", settled=False) is None
    assert conversation_lang("12ab") == "zh"  # nothing said yet: the bot's default
    assert conversation_lang("12ab", default="en") == "en"


def test_the_conversation_follows_a_clear_switch_back() -> None:
    assert conversation_lang("ok", ["where is my order", "好的，谢谢"]) == "zh"
    assert conversation_lang("ok", ["在吗", "can you help me with a return"]) == "en"
