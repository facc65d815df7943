"""Texts: language detection, the safe template renderer, built-in texts; and the repair recognisers."""

from __future__ import annotations

import pytest

from kefu.flows.repair import is_cancel, is_correction, value_after_marker, yes_no
from kefu.flows.texts import BUILTIN, Text, builtin, detect_lang, lookup, placeholders, render

SCOPE = {
    "slots": {"order_id": "DD20261105002", "count": 2.0, "ok": True},
    "result": {"data": {"status_text": "运输中", "events": [{"time": "08:00"}], "nested": {"a": 1}}},
}


@pytest.mark.parametrize(
    ("text", "lang"),
    [("where is my order", "en"), ("我的订单到哪了", "zh"), ("DD20261105002", "zh"), ("1234", "zh"), ("ok", "zh")],
)
def test_detect_lang_reads_letters_versus_chinese(text: str, lang: str) -> None:
    assert detect_lang(text) == lang


def test_detect_lang_keeps_the_default_for_ids_and_digits() -> None:
    assert detect_lang("DD20261105002", default="en") == "en"
    assert detect_lang("1234", default="en") == "en"
    assert detect_lang("订单 order", default="en") == "zh"


def test_text_falls_back_to_chinese() -> None:
    assert Text("你好").get("en") == "你好"
    assert Text("你好", "hello").get("en") == "hello"


def test_render_fills_dotted_paths_over_dicts_and_lists() -> None:
    template = "订单 {slots.order_id}：{result.data.status_text}，{result.data.events.0.time}，{slots.count} 件"
    assert render(template, SCOPE) == "订单 DD20261105002：运输中，08:00，2 件"


@pytest.mark.parametrize(
    "template",
    [
        "{slots.order_id.__class__}",
        "{slots.__class__.__mro__}",
        "{slots.order_id!r}",
        "{slots.order_id:>40}",
        "{slots[order_id]}",
        "{unknown.path}",
        "{result.data.nested}",
        "{ }",
    ],
)
def test_render_never_evaluates_anything(template: str) -> None:
    assert render(template, SCOPE) == ""


def test_render_keeps_escaped_braces_and_booleans() -> None:
    assert render("{{x}} {slots.ok}", SCOPE) == "{x} true"


def test_placeholders_lists_paths() -> None:
    assert placeholders("{slots.a} {{not}} { result.ok }") == ["slots.a", "result.ok"]


def test_lookup_missing_is_none() -> None:
    assert lookup(SCOPE, "slots.missing") is None
    assert lookup(SCOPE, "result.data.events.5") is None


def test_builtin_texts_exist_in_both_languages() -> None:
    for text in BUILTIN.values():
        assert text.zh and text.en
    assert builtin("updated", "zh", value="5678") == "好的，已更新为 5678。"
    assert builtin("updated", "en", value="5678") == "OK, updated to 5678."


@pytest.mark.parametrize(
    "text", ["算了", "算了吧", "不用了", "不用了，谢谢", "取消", "cancel", "Never mind", "算了，不退了"]
)
def test_is_cancel_accepts_cancels(text: str) -> None:
    assert is_cancel(text)


@pytest.mark.parametrize("text", ["取消订单", "我要取消订单怎么操作", "不想要了", "1234", "cancel my order"])
def test_is_cancel_rejects_requests(text: str) -> None:
    assert not is_cancel(text)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("是", True),
        ("确认", True),
        ("好的", True),
        ("对", True),
        ("yes", True),
        ("OK!", True),
        ("好的，确认提交", True),
        ("不", False),
        ("不是", False),
        ("no", False),
        ("不确认", False),
        ("嗯……让我想想", None),
        ("是多少钱", None),
        ("nothing", None),
    ],
)
def test_yes_no_reads_plain_answers_only(text: str, answer: bool | None) -> None:
    assert yes_no(text) is answer


@pytest.mark.parametrize("text", ["不对,是5678", "手机号错了 应该是5678", "改成 DD20261110003", "actually it's 5678"])
def test_is_correction_spots_markers(text: str) -> None:
    assert is_correction(text)


def test_is_correction_ignores_plain_answers() -> None:
    assert not is_correction("5678")
    assert not is_correction("DD20261105002")


def test_value_after_marker_takes_the_new_value() -> None:
    assert value_after_marker("地址写错了，应该是杭州市滨江区江南大道8号。") == "杭州市滨江区江南大道8号"
    assert value_after_marker("地址错了") is None
