"""The skeleton the lexicon is matched on, and the way back to the original text."""

from __future__ import annotations

import pytest

from kefu.moderation.fold import Skeleton, fold, fold_char, invisible, word_class


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ＳＢ 傻*逼", "sb傻逼"),  # full width, case, separators
        ("刷單返現！", "刷单返现"),  # traditional → simplified
        ("傻\u200b\u2060逼\ufe0f", "傻逼"),  # zero-width space, word joiner, variation selector
        ("ﬁx 😀 it", "fixit"),  # a ligature becomes two letters; emoji go
        ("订单 DD2026", "订单dd2026"),
    ],
)
def test_fold(text: str, expected: str) -> None:
    assert fold(text) == expected


def test_origins_point_back_to_the_original_characters() -> None:
    text = "a ﬁ\u200b傻 逼"
    skeleton = Skeleton(text)
    assert skeleton.folded == "afi傻逼"
    assert [text[skeleton.origin(k)] for k in range(len(skeleton.folded))] == ["a", "ﬁ", "ﬁ", "傻", "逼"]


def test_an_unseen_character_is_folded_on_the_way() -> None:
    char = "\U0002a6a5"  # a rare CJK extension-B ideograph: not in the cache yet
    assert Skeleton(f"x{char}y").folded == f"x{fold_char(char)}y" and fold_char(char) == char


def test_classes() -> None:
    assert invisible("\u200b") and invisible("\u0301") and not invisible(" ") and not invisible("，")
    assert (word_class("a"), word_class("7"), word_class("傻"), word_class("é")) == ("a", "d", None, None)
