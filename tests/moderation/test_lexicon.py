"""The sensitive-word lexicon: matching as people evade it, actions, where they apply, the file's problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from kefu.config import DEMO_BOT_DIR
from kefu.content.problems import Problems
from kefu.moderation import Moderator, load_moderation
from kefu.moderation.lexicon import Category


def build(**terms: list[str]) -> Moderator:
    actions = {"abuse": "mask", "fraud": "block", "ads": "flag", "bad_en": "mask"}
    categories = {name: Category(name, actions[name]) for name in terms}  # type: ignore[arg-type]
    return Moderator.build(categories, terms)


@pytest.mark.parametrize("text", ["你个傻逼", "傻 逼", "傻*逼", "傻\u200b逼", "傻。逼！", "ＳＢ傻逼", "傻逼"])
def test_evasions_still_match_and_map_back(text: str) -> None:
    moderator = build(abuse=["傻逼"])
    hits = moderator.scan(text)
    assert len(hits) == 1
    span = text[hits[0].start : hits[0].end]
    assert span[0] == "傻" and span[-1] == "逼"


def test_traditional_and_full_width_forms() -> None:
    moderator = build(fraud=["刷单返现"], bad_en=["idiot"])
    assert moderator.check("可以刷單返現嗎").action == "block"
    assert moderator.check("you ＩＤＩＯＴ!").action == "mask"


def test_english_terms_match_whole_words_only() -> None:
    moderator = build(bad_en=["ass"])
    assert moderator.scan("first class, pass, assemble") == []
    assert len(moderator.scan("what an ASS.")) == 1


def test_strongest_action_wins_and_masking_keeps_length() -> None:
    moderator = build(abuse=["傻逼"], ads=["加微信"], fraud=["套现"])
    verdict = moderator.check("傻逼 加微信")
    assert verdict.action == "mask" and verdict.text == "** 加微信" and verdict.mark == "mask:abuse"
    assert set(verdict.categories) == {"abuse", "ads"}
    blocked = moderator.check("加微信教你套现")
    assert blocked.action == "block" and blocked.mark == "block:fraud" and blocked.reply
    assert moderator.check("正常的问题：运费多少？").action == "allow"


def test_where_limits_a_category(tmp_path: Path) -> None:
    (tmp_path / "moderation.yaml").write_text(
        "categories:\n  only_out: {action: block, where: [output]}\nterms:\n  only_out: [禁词]\n", encoding="utf-8"
    )
    moderator, external = load_moderation(tmp_path, Problems())
    assert external is None
    assert moderator.check("禁词", where="input").action == "allow"
    assert moderator.check("禁词", where="output").action == "block"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("categories:\n  a: {action: explode}\n", "categories.a.action"),
        ("categories:\n  a: {action: mask}\nterms:\n  b: [x]\n", "terms.b: unknown category"),
        ("categories:\n  a: {action: mask}\nterms:\n  a: ['  ']\n", "terms.a.0: empty term"),
        ("categories:\n  a: {action: mask}\nfiles:\n  a: missing.txt\n", "files.a: missing.txt does not exist"),
        ("window: 0\n", "window"),
        ("- a list\n", "must be a mapping"),
        ("categories: [\n", "not valid YAML"),
    ],
)
def test_problems_are_reported_with_the_key(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "moderation.yaml").write_text(content, encoding="utf-8")
    problems = Problems()
    load_moderation(tmp_path, problems)
    assert any(expected in str(p) for p in problems.errors), problems.report()


def test_terms_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "words.txt").write_text("# comment\n套现\n\n洗钱  # inline\n", encoding="utf-8")
    (tmp_path / "moderation.yaml").write_text(
        "categories:\n  fraud: {action: block}\nfiles:\n  fraud: words.txt\n", encoding="utf-8"
    )
    problems = Problems()
    moderator, _ = load_moderation(tmp_path, problems)
    assert not problems.items
    assert moderator.check("教你洗钱").action == "block" and moderator.window == 2


def test_no_file_is_an_empty_lexicon(tmp_path: Path) -> None:
    moderator, _ = load_moderation(tmp_path, Problems())
    assert moderator.empty and moderator.check("傻逼").action == "allow"


def test_the_demo_shops_own_content_never_trips_its_lexicon() -> None:
    problems = Problems()
    moderator, _ = load_moderation(DEMO_BOT_DIR, problems)
    assert not problems.items and not moderator.empty
    checked = 0
    for path in DEMO_BOT_DIR.rglob("*"):
        if path.suffix not in (".yaml", ".csv", ".md", ".txt", ".json") or path.name == "moderation.yaml":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            hits = moderator.scan(line)
            assert not hits, f"{path}:{number}: {hits}"
            checked += 1
    assert checked > 500
