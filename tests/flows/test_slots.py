"""Slot types: answers, values found in passing, model-supplied values, and digit normalisation."""

from __future__ import annotations

from typing import Any

import pytest

from kefu.flows.model import Option, SlotSpec, SlotType
from kefu.flows.slots import display, extract, parse_answer, validate
from kefu.flows.texts import Text
from kefu.text.numerals import chinese_number, normalize_digits
from tests.flows.support import TODAY

ASK = Text("?")
REASONS = (
    Option("unwanted", Text("不想要了", "no longer wanted"), ("不喜欢",)),
    Option("quality", Text("质量问题", "quality issue"), ("坏了", "broken")),
    Option("other", Text("其他", "other")),
)


def slot(kind: SlotType, **extra: Any) -> SlotSpec:
    return SlotSpec(name=kind, type=kind, prompt=ASK, **extra)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("１２３４", "1234"),
        ("一二三四", "1234"),
        ("1 2 3 4", "1234"),
        ("138-1234-5678", "13812345678"),
        ("买了一件", "买了一件"),
    ],
)
def test_normalize_digits_folds_fullwidth_chinese_and_separators(text: str, expected: str) -> None:
    assert normalize_digits(text) == expected


@pytest.mark.parametrize(("text", "value"), [("十", 10), ("二十三", 23), ("一百零五", 105), ("两万", 20000), ("五", 5)])
def test_chinese_number_reads_units(text: str, value: int) -> None:
    assert chinese_number(text) == value


def test_chinese_number_rejects_other_text() -> None:
    assert chinese_number("三件") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DD20261105002 到哪了", "DD20261105002"),
        ("订单号是dd20261105002", "DD20261105002"),
        ("DD 2026-1105-002", "DD20261105002"),
        ("ＤＤ２０２６１１０５００２", "DD20261105002"),
        ("my order is 20261105002", "20261105002"),
        ("改成 DD20261110003", "DD20261110003"),
        ("我的订单到哪了", None),
        ("DD123", None),
        ("DD20261105002 和 DD20261110003", None),
    ],
)
def test_order_id_is_found_and_normalised(text: str, expected: str | None) -> None:
    assert extract(slot("order_id"), text, TODAY) == expected


def test_order_id_uses_the_slot_pattern() -> None:
    custom = slot("order_id", pattern=r"SO-?\d{4}")
    assert extract(custom, "单号 so-1234 查一下", TODAY) == "SO1234"
    assert extract(custom, "DD20261105002", TODAY) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的手机尾号是 1 2 3 4", "1234"),
        ("１２３４", "1234"),
        ("一二三四", "1234"),
        ("幺二三四", "1234"),
        ("手机号 13800001234", "1234"),
        ("12345", None),
        ("123", None),
        ("DD20261105002", None),
    ],
)
def test_phone_last4_takes_exactly_four_digits(text: str, expected: str | None) -> None:
    assert parse_answer(slot("phone_last4"), text, TODAY) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("138-0000-1234", "13800001234"),
        ("+86 138 0000 1234", "13800001234"),
        ("12800001234", None),
        ("1380000123", None),
    ],
)
def test_phone_is_a_mainland_mobile_number(text: str, expected: str | None) -> None:
    assert parse_answer(slot("phone"), text, TODAY) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("3", 3), ("三件", 3), ("二十", 20), ("2.5", 2.5), ("100", None), ("0", None)]
)
def test_number_respects_min_and_max(text: str, expected: float | None) -> None:
    assert parse_answer(slot("number", minimum=1, maximum=99), text, TODAY) == expected


def test_integer_number_rejects_fractions() -> None:
    assert parse_answer(slot("number", integer=True), "2.5", TODAY) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("质量问题", "quality"),
        ("衣服坏了", "quality"),
        ("it arrived broken", "quality"),
        ("1", "unwanted"),
        ("3", "other"),
    ],
)
def test_choice_matches_labels_synonyms_and_numbers(text: str, expected: str) -> None:
    assert parse_answer(slot("choice", options=REASONS), text, TODAY) == expected


def test_choice_in_passing_ignores_bare_numbers_and_partial_words() -> None:
    choice = slot("choice", options=REASONS)
    assert extract(choice, "2", TODAY) is None
    assert extract(choice, "another thing", TODAY) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-05", "2026-11-05"),
        ("2026年11月5日", "2026-11-05"),
        ("11月5日", "2026-11-05"),
        ("十一月五号", "2026-11-05"),
        ("今天", "2026-11-12"),
        ("明天下午", "2026-11-13"),
        ("yesterday", "2026-11-11"),
        ("2月30日", None),
        ("下周", None),
    ],
)
def test_date_reads_iso_chinese_and_relative_days(text: str, expected: str | None) -> None:
    assert parse_answer(slot("date"), text, TODAY) == expected


def test_text_checks_length_and_collapses_spaces() -> None:
    address = slot("text", min_length=6, max_length=20)
    assert parse_answer(address, "  杭州市  西湖区文三路 ", TODAY) == "杭州市 西湖区文三路"
    assert parse_answer(address, "杭州", TODAY) is None
    assert parse_answer(address, "杭" * 21, TODAY) is None


def test_text_and_free_text_are_never_taken_in_passing() -> None:
    assert extract(slot("text"), "我想改地址为杭州市西湖区", TODAY) is None
    assert extract(slot("free_text"), "随便什么", TODAY) is None
    assert parse_answer(slot("free_text"), " 随便 什么 ", TODAY) == "随便 什么"


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("order_id", "dd-2026 1105002", "DD20261105002"),
        ("order_id", "not an id", None),
        ("phone_last4", "１２３４", "1234"),
        ("phone_last4", 12345, None),
        ("phone", "+8613800001234", "13800001234"),
        ("date", "2026-11-05", "2026-11-05"),
        ("text", {"nested": 1}, None),
    ],
)
def test_validate_normalises_model_values(kind: SlotType, value: Any, expected: Any) -> None:
    assert validate(slot(kind), value, TODAY) == expected


def test_validate_number_and_choice_values() -> None:
    assert validate(slot("number", maximum=10), 7, TODAY) == 7
    assert validate(slot("number", maximum=10), 11, TODAY) is None
    assert validate(slot("number"), True, TODAY) is None
    assert validate(slot("choice", options=REASONS), "quality", TODAY) == "quality"
    assert validate(slot("choice", options=REASONS), "质量问题", TODAY) == "quality"
    assert validate(slot("choice", options=REASONS), "refund now", TODAY) is None


def test_display_shows_choice_labels_in_the_language() -> None:
    choice = slot("choice", options=REASONS)
    assert display(choice, "quality", "zh") == "质量问题"
    assert display(choice, "quality", "en") == "quality issue"
    assert display(slot("number"), 3.0, "zh") == "3"


@pytest.mark.parametrize(("value", "expected"), [("7", 7), ("七", 7), ("2026-11-13", None), ("3 件", None)])
def test_validate_number_takes_only_a_whole_number(value: str, expected: int | None) -> None:
    assert validate(slot("number"), value, TODAY) == expected
