"""The character n-gram TF-IDF space: graded similarity where word coverage is all or nothing."""

from __future__ import annotations

import numpy as np

from kefu.text.ngrams import NgramCounts, NgramSpace, grams


def _space(*docs: list[tuple[str, float]]) -> NgramSpace:
    counts = NgramCounts()
    for parts in docs:
        counts.add([(grams([text]), weight) for text, weight in parts])
    return NgramSpace(counts)


def test_grams_span_chinese_runs_and_stay_inside_other_words() -> None:
    assert grams(["退货", "运费"]) == ["退", "货", "运", "费", "退货", "货运", "运费", "退货运", "货运费"]
    assert " sh" in grams(["ship"]) and "p " in grams(["ship"])  # English words padded, so typos still share grams
    assert not any(" " in g.strip() for g in grams(["ship", "free"]))  # no gram crosses two English words


def test_the_same_text_scores_one_and_a_near_spelling_more_than_an_unrelated_text() -> None:
    space = _space([("退货运费", 1.0)], [("发票", 1.0)])
    same = space.similarity(grams(["退货运费"]))
    assert np.isclose(same[0], 1.0) and same[1] == 0.0
    near = space.similarity(grams(["退货", "邮费"]))  # shares 退 / 货 / 费 / 退货 with the first entry
    assert 0 < near[0] < 1 and near[1] == 0.0


def test_the_answer_counts_at_its_weight_and_unknown_grams_lower_the_cosine() -> None:
    heavy = _space([("发票", 1.0), ("电子发票", 1.0)], [("退款", 1.0)])
    light = _space([("发票", 1.0), ("电子发票", 0.1)], [("退款", 1.0)])
    query = grams(["电子"])
    assert heavy.similarity(query)[0] > light.similarity(query)[0] > 0
    assert heavy.similarity(grams(["发票", "冰箱"]))[0] < heavy.similarity(grams(["发票"]))[0]
    assert not heavy.similarity(grams(["冰箱"])).any()


def test_an_empty_space_answers_zeros() -> None:
    assert _space().similarity(grams(["运费"])).shape == (0,)
    assert not _space([]).similarity(grams(["运费"])).any()
