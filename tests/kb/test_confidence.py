"""Confidence that transfers: the certainty model, the score-only rule it replaces (direct = 0), and a new shop's
FAQ with no similar questions and no lexicon of its own answering shoppers' words directly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kefu.kb.confidence import Thresholds, certainty, decide
from kefu.kb.entries import Entry, make_entry
from kefu.kb.service import KB_WEIGHTS
from kefu.text.analyzer import Analyzer
from kefu.text.index import Index, Match, Weights
from kefu.text.lexicon import load_lexicon

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def match(entry_id: str, score: float, cover: tuple[float, float] = (1.0, 1.0), words: int = 2) -> Match[Entry]:
    entry = make_entry({"id": entry_id, "question": entry_id, "answer": "a"})
    return Match(entry, score, "question", entry_id, cover=cover, words=words)


def test_certainty_grows_with_the_lead_and_with_what_the_entry_covers() -> None:
    alone = certainty([match("a", 0.5), match("b", 0.1)])
    assert certainty([match("a", 0.5), match("b", 0.4)]) < alone
    assert certainty([match("a", 0.5, cover=(0.4, 0.5)), match("b", 0.1)]) < alone
    assert certainty([]) == 0.0 and 0 < alone < 1


def test_a_top_score_with_a_lead_is_not_enough_when_the_entry_misses_the_query_words() -> None:
    matches = [match("a", 0.45, cover=(0.3, 0.3)), match("b", 0.3)]
    assert decide(matches, Thresholds())[0] == "medium"
    assert decide(matches, Thresholds(high=0.44, direct=0.0))[0] == "high"  # the score-only rule would answer


def _shop(tmp_path: Path) -> Index[Entry]:
    rows = [
        ("fee", "运费怎么收？", "满59元包邮，不满收6元运费。"),
        ("refund", "退款多久到账？", "审核通过后1到3个工作日原路退回。"),
        ("invoice", "可以开发票吗？", "确认收货后在订单详情申请开票。"),
        ("store", "有线下门店吗？", "杭州有3家门店。"),
    ]
    entries = [make_entry({"id": i, "question": q, "answer": a}) for i, q, a in rows]
    return Index(entries, Analyzer(load_lexicon(tmp_path)), Weights())  # an empty bot directory: the base layer


def test_a_new_shop_answers_shoppers_words_directly_and_not_what_it_lacks(tmp_path: Path) -> None:
    index = _shop(tmp_path)

    def ask(query: str) -> tuple[str | None, str]:
        matches = index.search(query, limit=10, now=NOW)
        confidence, _ = decide(matches, Thresholds())
        return (matches[0].entry.id if matches else None), confidence

    assert ask("邮费多少钱") == ("fee", "high")
    assert ask("退钱要几天") == ("refund", "high")
    assert ask("能开fapiao吗") == ("invoice", "high")
    assert ask("有实体店吗") == ("store", "high")
    assert ask("你们卖冰箱吗")[1] != "high"


def test_cover_is_the_share_of_the_query_the_entry_mentions(tmp_path: Path) -> None:
    index = _shop(tmp_path)
    full = index.search("运费怎么收", limit=1, now=NOW)[0]
    partial = index.search("运费险怎么收", limit=1, now=NOW)[0]
    assert full.cover == (1.0, 1.0) and full.words == 2  # 运费, 收
    assert partial.entry.id == "fee" and partial.cover[0] < 1.0


def test_a_lead_the_n_gram_share_alone_makes_is_no_direct_answer() -> None:
    # Four coupon questions all contain the shopper's one word: the n-gram share prefers the shortest, but word
    # coverage ties, so the shopper is asked which one they mean.
    tied = [
        Match(make_entry({"id": i, "question": i, "answer": "a"}), s, "question", i, words=1, lexical=1.0, ngram=n)
        for i, s, n in (("use", 0.9, 0.8), ("expired", 0.8, 0.5))
    ]
    assert decide(tied, Thresholds(direct=0.0))[0] == "medium"
    ahead = [tied[0], Match(tied[1].entry, 0.8, "question", "expired", words=1, lexical=0.7, ngram=0.5)]
    assert decide(ahead, Thresholds(direct=0.0))[0] == "high"


def test_the_knowledge_base_weights_find_a_colloquial_question_word_coverage_misses(tmp_path: Path) -> None:
    rows = [
        ("fee", "运费怎么收？", "满59元包邮，不满收6元运费。"),
        ("damaged", "收到的水果坏了怎么办？", "拍照联系客服，坏果包赔，烂果、压坏、发霉都算。"),
        ("store", "有线下门店吗？", "杭州有3家门店。"),
    ]
    entries = [make_entry({"id": i, "question": q, "answer": a}) for i, q, a in rows]
    analyzer = Analyzer(load_lexicon(tmp_path))
    with_ngrams = Index(entries, analyzer, KB_WEIGHTS).search("芒果烂了好几个", limit=3, now=NOW)
    assert with_ngrams[0].entry.id == "damaged" and with_ngrams[0].ngram > 0
    assert with_ngrams[0].lexical is not None and with_ngrams[0].score != with_ngrams[0].lexical
