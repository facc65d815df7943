"""Canned texts: one language per message, the bot's default language when one is missing, texts.yaml overrides."""

from __future__ import annotations

import shutil
from pathlib import Path

from kefu.bot.loader import load_bot
from kefu.bot.texts import KEYS, CannedTexts
from tests.conftest import MODEL_ONLY_BOT


def _bot(tmp_path: Path, texts: str) -> Path:
    path = tmp_path / "bot"
    shutil.copytree(MODEL_ONLY_BOT, path)
    (path / "texts.yaml").write_text(texts, encoding="utf-8")
    return path


def test_every_text_has_chinese_and_english_and_never_both_in_one() -> None:
    texts = CannedTexts()
    for key in KEYS:
        zh, en = texts.text(key, "zh"), texts.text(key, "en")
        assert zh and en and zh != en, key
        assert not any("a" <= c.lower() <= "z" for c in zh.replace("“转人工”", "")), (key, zh)
        assert not any("\u4e00" <= c <= "\u9fff" for c in en), (key, en)
    assert texts.text("smalltalk_greeting", "zh") == "在的，您好！请问有什么可以帮您？"
    assert texts.text("smalltalk_ack", "zh") == "好的，还有其他问题随时找我。"
    assert "转人工" in texts.text("smalltalk_robot", "zh")


def test_a_missing_language_falls_back_to_the_default_alone() -> None:
    only_zh = CannedTexts(apology={"zh": "抱歉，这个我不会。"})
    assert only_zh.text("apology", "zh") == "抱歉，这个我不会。"
    assert only_zh.text("apology", "en").startswith("Sorry")  # the built-in English stays
    plain = CannedTexts(apology="不好意思。")  # a plain string is the default language's text
    assert plain.apology == "不好意思。" and plain.text("apology", "en").startswith("Sorry")
    english_bot = CannedTexts(default_lang="en", apology="Sorry!")
    assert english_bot.text("apology") == "Sorry!" and english_bot.text("apology", "zh").startswith("抱歉")
    assert set(CannedTexts(apology={"zh": "甲", "en": "B"}).variants("apology")) == {"甲", "B"}


def test_texts_yaml_keeps_languages_apart(tmp_path: Path) -> None:
    yaml_text = (
        "default_lang: zh\n"
        "apology:\n  zh: 抱歉，这个问题我还不会。\n  en: Sorry, I can't answer that yet.\n"
        "smalltalk_thanks: 不用谢～\n"
    )
    bot, problems = load_bot(_bot(tmp_path, yaml_text), env={}, allow_hosts=[])
    assert bot is not None, problems.report()
    assert bot.texts.text("apology", "zh") == "抱歉，这个问题我还不会。"
    assert bot.texts.text("apology", "en") == "Sorry, I can't answer that yet."
    assert bot.texts.text("smalltalk_thanks", "zh") == "不用谢～"
    assert bot.texts.text("smalltalk_thanks", "en").startswith("You're welcome")


def test_texts_yaml_problems_are_reported(tmp_path: Path) -> None:
    bad = "default_lang: fr\napology: {zh: 抱歉, de: Entschuldigung}\nsmalltalk_weather: 晴\n"
    bot, problems = load_bot(_bot(tmp_path, bad), env={}, allow_hosts=[])
    report = problems.report()
    assert bot is None
    assert "default_lang must be one of zh, en" in report
    assert "text 'apology': languages must be zh / en" in report
    assert "unknown text 'smalltalk_weather'" in report


def test_the_texts_yaml_example_in_the_docs_loads(tmp_path: Path) -> None:
    from tests.docs.blocks import ROOT, all_blocks

    (example,) = [b for b in all_blocks({"yaml"}, [ROOT / "docs" / "kb.md"]) if b.code.startswith("default_lang:")]
    bot, problems = load_bot(_bot(tmp_path, example.code), env={}, allow_hosts=[])
    assert bot is not None, problems.report()
    assert bot.texts.text("apology", "en").startswith("Sorry, I can't answer that yet.")
    assert bot.texts.text("smalltalk_greeting", "en") == CannedTexts().text("smalltalk_greeting", "en")
