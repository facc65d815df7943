"""Ranking of the obvious cases on the demo shop, confidence bands, validity windows, pinyin rewriting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from kefu.kb.confidence import Thresholds, decide
from kefu.kb.entries import make_entry
from kefu.text.analyzer import Analyzer
from kefu.text.index import Index, Match, Weights
from kefu.text.lexicon import Lexicon

Ask = Callable[[str], tuple[list[Match], str]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("运费怎么算？", "ship-fee"),  # the question itself
        ("退货运废谁出", "return-fee"),  # homophone typo (废 for 费)
        ("ＹＦ多少", "ship-fee"),  # full-width pinyin initials
        ("fp抬头写错了", "invoice-change"),  # pinyin initials mixed with Chinese
        ("yhq能叠加吗", "coupon-stack"),
        ("how to cancel an order", "order-cancel"),  # English
        ("refund takes how long", "refund-time"),
        ("退貨運費誰出", "return-fee"),  # traditional characters
        ("shunfeng可以吗", "ship-courier"),  # full pinyin of a word in the index
    ],
)
def test_ranking_obvious_cases_answer_directly(ask: Ask, query: str, expected: str) -> None:
    matches, confidence = ask(query)
    assert matches[0].entry.id == expected
    assert confidence == "high"


def test_ranking_one_keyword_is_medium_with_suggestions(ask: Ask, demo_index: Index) -> None:
    matches, confidence = ask("优惠券")
    assert confidence == "medium"
    _, suggestions = decide(matches, Thresholds())
    assert len(suggestions) == 3 and all("优惠券" in m.entry.question for m in suggestions)


@pytest.mark.parametrize("query", ["xkcd qwerty", "你们卖冰箱吗", "？？？", ""])
def test_ranking_gibberish_and_off_topic_are_low(ask: Ask, query: str) -> None:
    _, confidence = ask(query)
    assert confidence == "low"


def test_ranking_reports_which_field_matched(ask: Ask) -> None:
    matches, _ = ask("邮费多少钱")
    assert (matches[0].entry.id, matches[0].field, matches[0].text) == ("ship-fee", "similar", "邮费多少钱")
    assert matches[0].score > 0.8


def test_confidence_needs_a_margin_over_the_runner_up() -> None:
    def match(entry_id: str, score: float) -> Match:
        return Match(make_entry({"id": entry_id, "question": entry_id, "answer": "a"}), score, "question", entry_id)

    t = Thresholds(high=0.5, medium=0.3, margin=0.05)
    assert decide([match("a", 0.9), match("b", 0.5)], t)[0] == "high"
    assert decide([match("a", 0.9), match("b", 0.88)], t)[0] == "medium"
    assert decide([match("a", 0.9), match("b", 0.8), match("c", 0.87)], t)[0] == "medium"  # c is the runner-up
    assert decide([match("a", 0.35)], t)[0] == "medium"
    assert decide([match("a", 0.2)], t) == ("low", [])
    with pytest.raises(ValueError):
        Thresholds(direct=1.5)


def test_index_skips_entries_outside_their_validity_window() -> None:
    now = datetime(2025, 11, 5, tzinfo=UTC)
    entries = [
        make_entry(
            {"id": "sale", "question": "双十一活动有什么优惠？", "answer": "满300减50", "valid_to": "2025-11-11"}
        ),
        make_entry({"id": "old", "question": "618活动有什么优惠？", "answer": "已结束", "valid_to": "2025-06-18"}),
    ]
    index = Index(entries, Analyzer(Lexicon.build()), Weights())
    assert [m.entry.id for m in index.search("活动优惠", limit=5, now=now)] == ["sale"]
    later = now + timedelta(days=30)
    assert index.search("活动优惠", limit=5, now=later) == []


def test_index_reads_unknown_pinyin_initials_as_the_word_they_spell() -> None:
    entries = [make_entry({"id": "pts", "question": "积分怎么用？", "answer": "100积分抵1元"})]
    index = Index(entries, Analyzer(Lexicon.build()), Weights())
    assert index.query_terms("jf怎么用").words == ("积分", "用")
    assert index.query_terms("english words").words == ("english", "word")


def test_index_reads_full_pinyin_that_the_stemmer_shortened() -> None:
    # "haoping" ends in "ing": the English stemmer reads it as "haop", which must still spell 好评.
    entries = [make_entry({"id": "rv", "question": "好评返现怎么领？", "answer": "晒图好评返现5元"})]
    index = Index(entries, Analyzer(Lexicon.build()), Weights())
    assert index.query_terms("haoping返现").words[0] == "好评"


def test_ranking_a_not_a_question_is_not_a_negation(ask: Ask) -> None:
    matches, _ = ask("发不发海外")
    assert matches[0].entry.id == "ship-overseas"
    matches, _ = ask("怎么还不发货")  # a real negation: not the overseas entry's "发不发海外"
    assert matches[0].entry.id != "ship-overseas"


def test_remembered_results_never_outlive_a_validity_boundary() -> None:
    now = datetime(2025, 11, 1, tzinfo=UTC)
    entries = [
        make_entry({"id": "always", "question": "会员有什么优惠？", "answer": "会员9折"}),
        make_entry(
            {"id": "soon", "question": "双十二活动有什么优惠？", "answer": "满200减30", "valid_from": "2025-12-01"}
        ),
    ]
    index = Index(entries, Analyzer(Lexicon.build()), Weights())
    before = [m.entry.id for m in index.search("双十二优惠", limit=5, now=now)]
    assert "soon" not in before
    assert [m.entry.id for m in index.search("双十二优惠", limit=5, now=now + timedelta(days=3))] == before
    after = [m.entry.id for m in index.search("双十二优惠", limit=5, now=datetime(2025, 12, 2, tzinfo=UTC))]
    assert after[0] == "soon"
    assert [m.entry.id for m in index.search("双十二优惠", limit=5, now=now)] == before  # earlier times again


def test_a_repeated_question_is_answered_from_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    index = Index(
        [make_entry({"id": "fee", "question": "运费多少？", "answer": "满99包邮"})],
        Analyzer(Lexicon.build()),
        Weights(),
    )
    now = datetime(2025, 11, 1, tzinfo=UTC)
    first = index.search("运费多少", limit=5, now=now)
    calls: list[str] = []
    search = index._search
    monkeypatch.setattr(index, "_search", lambda *a, **k: calls.append("search") or search(*a, **k))
    assert index.search("运费多少？", limit=5, now=now) == first  # same terms: no new search
    assert index.search("运费多少", limit=1, now=now) == first[:1]  # another limit is another result
    assert calls == ["search"]
