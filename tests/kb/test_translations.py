"""FAQ entries in other languages: the same shape from CSV, JSONL and Markdown, stored in SQL, picked by language."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kefu.content.problems import LoadReport
from kefu.kb.entries import EntryError, Translation, entry_json, make_entry
from kefu.kb.loaders import load_faq_file
from kefu.kb.service import KbConfig, KnowledgeBase
from kefu.kb.store import KbStore
from kefu.store.sql import create_engine_for

EXPECTED = Translation("en", "How much is shipping?", "Free over ¥99, otherwise ¥8.")


def _load(path: Path) -> list:
    report = LoadReport()
    entries = load_faq_file(path, report, origin="bot")
    assert not report.problems, report.problems
    return entries


def test_csv_columns_question_en_and_answer_en(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text(
        "id,question,question_en,similar_questions,答案,答案_en\n"
        'fee,运费怎么算？,How much is shipping?,邮费多少,满99元包邮，否则8元。,"Free over ¥99, otherwise ¥8."\n'
        "plain,怎么开发票？,,能开发票吗,下单时勾选开发票。,\n",
        encoding="utf-8",
    )
    fee, plain = _load(path)
    assert fee.answer == "满99元包邮，否则8元。" and fee.translations == (EXPECTED,)
    assert fee.similar == ("邮费多少",)  # translations are shown, not searched
    assert plain.translations == ()


def test_jsonl_questions_and_answers_objects(tmp_path: Path) -> None:
    path = tmp_path / "faq.jsonl"
    row = {
        "id": "fee",
        "question": "运费怎么算？",
        "answer": "满99元包邮，否则8元。",
        "questions": {"en": EXPECTED.question},
        "answers": {"en": EXPECTED.answer},
    }
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    (entry,) = _load(path)
    assert entry.translations == (EXPECTED,)


def test_markdown_question_en_line_and_en_section(tmp_path: Path) -> None:
    path = tmp_path / "faq.md"
    path.write_text(
        "# 配送\n\n## 运费怎么算？\nid: fee\nquestion_en: How much is shipping?\n相似问法: 邮费多少\n\n"
        "满99元包邮，否则8元。\n\n### en\nFree over ¥99, otherwise ¥8.\n\n"
        "## 怎么开发票？\n下单时勾选开发票。\n### 注意\n电子发票。\n",
        encoding="utf-8",
    )
    fee, invoice = _load(path)
    assert fee.answer == "满99元包邮，否则8元。" and fee.translations == (EXPECTED,)
    assert fee.category == "配送" and fee.similar == ("邮费多少",)
    assert invoice.translations == () and "### 注意" in invoice.answer  # other headings stay in the answer


def test_an_entry_answers_in_the_language_asked_else_the_default_alone() -> None:
    entry = make_entry({"question": "运费？", "answer": "8元", "answer_en": "8 yuan"})
    assert entry.answer_in("en") == "8 yuan" and entry.answer_in("zh") == "8元" and entry.answer_in(None) == "8元"
    assert entry.answer_in("ja") == "8元"
    assert entry.question_in("en") == "运费？"  # no English question: the default one
    assert entry_json(entry)["answers"] == {"en": "8 yuan"} and entry_json(entry)["questions"] == {}
    assert make_entry({"question": "运费？", "answer": "8元"}).content_key() != entry.content_key()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"answers": {"english": "x"}}, "not a two-letter language code"),
        ({"answers": "x"}, "answers must be an object"),
        ({"answers": {"en": 3}}, "answer_en must be text"),
    ],
)
def test_bad_translations_are_refused(row: dict, message: str) -> None:
    with pytest.raises(EntryError, match=message):
        make_entry({"question": "运费？", "answer": "8元", **row})


async def test_translations_survive_sql_and_search_picks_the_language(database_url: str, tmp_path: Path) -> None:
    bot = tmp_path / "bot"
    (bot / "kb" / "faq").mkdir(parents=True)
    (bot / "kb" / "faq" / "faq.csv").write_text(
        "id,question,question_en,similar_questions,answer,answer_en\n"
        "fee,运费怎么算？,How much is shipping?,邮费多少|shipping cost,满99元包邮。,Free shipping over ¥99.\n"
        "fee-remote,偏远地区运费怎么算？,,偏远地区邮费多少,偏远地区满199元包邮。,\n",
        encoding="utf-8",
    )
    kb = KnowledgeBase(KbStore(create_engine_for(database_url)), KbConfig(bot_dir=bot))
    try:
        await kb.start()
        stored = await kb.store.get("fee")
        assert stored is not None and stored.translations == (
            Translation("en", "How much is shipping?", "Free shipping over ¥99."),
        )
        english = await kb.search("shipping cost", lang="en")
        assert english.direct is not None and english.direct.text == "Free shipping over ¥99."
        assert english.direct.title == "How much is shipping?"
        chinese = await kb.search("邮费多少", lang="zh")
        assert chinese.direct is not None and chinese.direct.text == "满99元包邮。"
        assert (await kb.search("邮费多少")).direct.text == "满99元包邮。"  # type: ignore[union-attr]
        remote = await kb.search("偏远地区邮费多少", lang="en")
        assert remote.direct is not None and remote.direct.text == "偏远地区满199元包邮。"  # no English: default alone
    finally:
        await kb.aclose()
