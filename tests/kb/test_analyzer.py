"""Tokenizer: the business dictionary keeps words whole, synonyms map, stopwords drop; lexicon files."""

from __future__ import annotations

from pathlib import Path

from kefu.content.problems import LoadReport
from kefu.text.analyzer import Analyzer, pinyin_keys, stem
from kefu.text.lexicon import DictWord, Lexicon, load_lexicon


def test_analyzer_business_dictionary_keeps_words_whole() -> None:
    plain = Analyzer(Lexicon.build())
    business = Analyzer(Lexicon.build(words=(DictWord("退货"), DictWord("运费"), DictWord("七天无理由"))))
    # jieba alone reads 退货运费 as 退 / 货运费 and splits the policy name.
    assert plain.words("退货运费谁出") != ["退货", "运费", "谁", "出"]
    assert business.words("退货运费谁出") == ["退货", "运费", "谁", "出"]
    assert business.words("支持七天无理由吗") == ["支持", "七天无理由"]


def test_analyzer_maps_synonyms_including_english_phrases_and_initials() -> None:
    analyzer = Analyzer(Lexicon.build(synonyms=(("邮费", "运费"), ("yf", "运费"), ("shipping fee", "运费"))))
    assert analyzer.words("邮费多少") == analyzer.words("运费多少") == ["运费", "多少"]
    assert analyzer.words("YF多少") == ["运费", "多少"]
    assert analyzer.words("what is the shipping fee") == ["运费"]


def test_analyzer_drops_stopwords_and_plural_s() -> None:
    analyzer = Analyzer(Lexicon.build(stopwords=("小铺",)))
    assert analyzer.words("亲，请问一下小铺怎么退货呀？") == ["退货"]
    assert analyzer.words("how do refunds work") == ["refund", "work"]
    assert analyzer.words("does it") == []  # "does" is a stopword, not the plural of "doe"


def test_analyzer_reads_a_not_a_questions_as_the_plain_word() -> None:
    analyzer = Analyzer(Lexicon.build(words=(DictWord("包邮"), DictWord("掉色"))))
    assert analyzer.words("包不包邮") == analyzer.words("包邮吗") == ["包邮"]
    assert analyzer.words("发不发海外") == ["发", "海外"]  # not "发 / 不 / 发": no negation in a yes-no question
    assert analyzer.words("掉不掉色") == ["掉色"]
    assert analyzer.words("赠品要不要退") == ["赠品", "退"]
    assert analyzer.words("尺码不合适") == ["尺码", "不", "合适"]  # a real negation stays


def test_stem_folds_english_inflections_alike() -> None:
    assert stem("shipping") == stem("shipped") == stem("ships") == stem("ship") == "ship"
    assert stem("receive") == stem("received") == stem("receiving")
    assert stem("orders") == stem("ordered") == "order"
    assert stem("deliveries") == "delivery"
    assert stem("yunfei") == "yunfei" and stem("use") == "use" and stem("运费") == "运费"


def test_analyzer_grams_cover_characters_and_pinyin() -> None:
    terms = Analyzer(Lexicon.build()).terms("运废多少")
    assert "运废" in terms.chars
    assert "yun_fei" in terms.sounds  # the homophone typo reads like 运费


def test_pinyin_keys_give_initials_and_full_pinyin() -> None:
    assert pinyin_keys("运费") == ("yf", "yunfei")
    assert pinyin_keys("顺丰速运") == ("sfsy", "shunfengsuyun")
    assert pinyin_keys("运") is None and pinyin_keys("abc") is None


def test_lexicon_files_load_and_report_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "dictionary.txt").write_text("# comment\n小铺 100 nz\n杭州仓\n", encoding="utf-8")
    (tmp_path / "synonyms.txt").write_text(
        "运费, 邮费, yf\n退款, 退钱 => 退款\nlonely\n邮费, 快递费\n", encoding="utf-8"
    )
    (tmp_path / "stopwords.txt").write_text("亲亲\n", encoding="utf-8")
    report = LoadReport()
    lexicon = load_lexicon(tmp_path, report, base=False)  # the bot's files alone (tests/text: the layer under them)
    assert lexicon.words == (DictWord("小铺", 100, "nz"), DictWord("杭州仓"))
    assert ("邮费", "运费") in lexicon.synonyms and ("退钱", "退款") in lexicon.synonyms
    assert ("快递费", "运费") in lexicon.synonyms  # joined the group 邮费 already belongs to
    assert lexicon.stopwords == ("亲亲",)
    assert [(p.line, p.skipped) for p in report.problems] == [(3, True), (4, False)]
    assert lexicon.fingerprint and lexicon.fingerprint != Lexicon.build().fingerprint
