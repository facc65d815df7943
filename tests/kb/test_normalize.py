"""Normalisation: full-width, case, punctuation, traditional characters; the conversion table itself."""

from __future__ import annotations

from kefu.text import pinyin
from kefu.text.normalize import normalize
from kefu.text.tradsimp import _SIMP, _TRAD, to_simplified


def test_normalize_folds_fullwidth_case_and_punctuation() -> None:
    assert normalize("ＡＢＣ１２３，退貨！") == "abc123 退货"
    assert normalize("  How much is SHIPPING???  ") == "how much is shipping"
    assert normalize("「运费」怎么算～") == "运费 怎么算"


def test_normalize_converts_traditional_to_simplified() -> None:
    assert normalize("運費怎麼算？發票呢") == "运费怎么算 发票呢"
    assert to_simplified("优惠券") == "优惠券"  # simplified text is left alone


def test_normalize_keeps_decimals_and_ranges_but_splits_hyphenated_words() -> None:
    assert normalize("7.5折 1-3天 pre-order c++") == "7.5折 1-3天 pre order c++"


def test_tradsimp_pairs_read_the_same() -> None:
    # A typo in the hand-written table would pair characters that sound different.
    known_exceptions = {("紮", "扎"), ("劵", "券")}
    mismatched = [
        (t, s)
        for t, s in zip(_TRAD, _SIMP, strict=True)
        if t != s and pinyin.syllable(t) != pinyin.syllable(s) and (t, s) not in known_exceptions
    ]
    assert mismatched == []
