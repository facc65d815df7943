"""kefu's generic e-commerce layer under every bot's lexicon: what an empty bot directory gets, how a bot's own
files extend and override it, and that the flow router reads text through it too."""

from __future__ import annotations

from pathlib import Path

from kefu.content.problems import LoadReport
from kefu.flows.spec import load_flows
from kefu.text.analyzer import Analyzer
from kefu.text.lexicon import COMMERCE_DIR, COMMERCE_FILES, DictWord, Lexicon, layered, load_lexicon, read_lexicon


def test_the_shipped_layer_parses_without_a_problem() -> None:
    report = LoadReport()
    base = read_lexicon(COMMERCE_DIR, report, names=COMMERCE_FILES)
    assert report.problems == []
    assert len(base.synonyms) > 1000 and len(base.words) > 100 and "宝贝" in base.stopwords


def test_an_empty_bot_directory_reads_shoppers_words(tmp_path: Path) -> None:
    analyzer = Analyzer(load_lexicon(tmp_path))  # no dictionary, synonyms or stopwords of its own
    for query in ("邮费多少", "油费多少", "yunfei多少", "shipping fee多少"):
        assert analyzer.words(query)[0] == "运费", query
    assert analyzer.words("能开发漂吗") == analyzer.words("能开发票吗") == ["开", "发票"]
    assert "发票" in analyzer.words("fapiao")
    assert "退货" in analyzer.words("怎么退贷") and "退款" in analyzer.words("refund")
    assert analyzer.words("能用花呗吗")[-2:] == ["花呗", "分期"]  # a narrower word keeps itself, adds the broader
    assert analyzer.words("亲 宝贝什么时候发货") == ["多久", "发货"]  # forms of address are stopwords


def test_without_the_layer_the_same_words_stay_apart(tmp_path: Path) -> None:
    analyzer = Analyzer(load_lexicon(tmp_path, base=False))
    assert analyzer.words("油费多少") != analyzer.words("运费多少")


def test_a_bot_group_absorbs_the_base_group_of_its_canonical_word(tmp_path: Path) -> None:
    (tmp_path / "synonyms.txt").write_text("邮费, 运费\n", encoding="utf-8")
    analyzer = Analyzer(load_lexicon(tmp_path))
    assert analyzer.words("快递费多少") == analyzer.words("运费多少") == ["邮费", "多少钱"]


def test_a_term_the_bot_maps_keeps_the_bots_meaning(tmp_path: Path) -> None:
    (tmp_path / "synonyms.txt").write_text("积分, 券\n", encoding="utf-8")  # here 券 means points
    analyzer = Analyzer(load_lexicon(tmp_path))
    assert analyzer.words("券") == ["积分"]
    assert analyzer.words("优惠卷") == ["优惠券"]  # the rest of the base group is untouched


def test_a_base_stopword_the_bot_uses_is_a_word_again() -> None:
    base = Lexicon.build(stopwords=("宝贝", "亲爱的"))
    own = Lexicon.build(words=(DictWord("宝贝"),))
    merged = layered(base, own)
    assert merged.stopwords == ("亲爱的",)
    assert Analyzer(merged).words("宝贝 亲爱的") == ["宝贝"]


def test_the_flow_router_reads_text_through_the_layer(tmp_path: Path) -> None:
    flows = load_flows(tmp_path, LoadReport(), {})  # type: ignore[arg-type]
    assert ("邮费", "运费") in flows.lexicon.synonyms
