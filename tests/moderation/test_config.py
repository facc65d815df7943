"""``moderation.yaml``: what it builds, and every problem reported with its key path and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from kefu.content.problems import Problems
from kefu.moderation import ExternalModeration, Moderator, load_moderation
from kefu.obs.metrics import Metrics


def load(
    tmp_path: Path, content: str, *, env: dict[str, str] | None = None, metrics: Metrics | None = None
) -> tuple[Problems, Moderator, ExternalModeration | None]:
    (tmp_path / "moderation.yaml").write_text(content, encoding="utf-8")
    problems = Problems()
    moderator, external = load_moderation(tmp_path, problems, env=env, metrics=metrics)
    return problems, moderator, external


@pytest.mark.parametrize(
    ("content", "expected", "line"),
    [
        ("categories:\n  a: {action: explode}\n", "categories.a.action: Input should be", 2),
        ("categories:\n  a:\n    action: mask\n    where: [inside]\n", "categories.a.where.0", 4),
        ("categories:\n  a: {action: mask}\nterms:\n  b: [x]\n", "terms.b: unknown category", 4),
        ("categories:\n  a: {action: mask}\nterms:\n  a:\n    - ok\n    - '  '\n", "terms.a.1: empty term", 6),
        ("categories:\n  a: {action: mask}\nterms:\n  a: ['***']\n", "terms.a.0: empty term '***'", 4),
        ("categories:\n  a: {action: mask}\nfiles:\n  a: missing.txt\n", "files.a: missing.txt does not exist", 4),
        ("categories:\n  a: {action: mask}\nfiles:\n  a: ../../etc/passwd\n", "outside the bot directory", 4),
        ("categories:\n  a: {action: mask}\nfiles:\n  b: x.txt\n", "files.b: unknown category", 4),
        ("\nwindow: 0\n", "window: Input should be greater than or equal to 1", 2),
        ("window: yes\n", "window: Input should be a valid integer", 1),
        ("categories:\n  a: {action: mask}\nterms:\n  a: [加微信]\nwindow: 2\n", "window: 2 is shorter", 5),
        ("categories:\n  a b: {action: mask}\n", "categories.a b: a category name", 2),
        ("categorys: {}\n", "categorys: Extra inputs are not permitted", 1),
        ("external: {url: ftp://x}\n", "external.url", 1),
        ("- a list\n", "must be a mapping", 1),
        ("categories: [\n", "not valid YAML", 2),
        ("categories:\n  a: {action: mask}\n  a: {action: flag}\n", "duplicate key 'a'", 3),
    ],
)
def test_problems_are_reported_with_the_key_and_line(tmp_path: Path, content: str, expected: str, line: int) -> None:
    problems, moderator, external = load(tmp_path, content)
    found = [p for p in problems.errors if expected in p.message]
    assert found, problems.report()
    assert found[0].line == line and found[0].file == tmp_path / "moderation.yaml"
    assert moderator.empty and external is None


def test_warnings_leave_the_lexicon_usable(tmp_path: Path) -> None:
    problems, moderator, _ = load(
        tmp_path,
        "categories:\n  a: {action: mask, reply: 无用}\n  b: {action: flag}\nterms:\n  a: [傻逼, 傻 逼, 操]\n",
    )
    assert not problems.errors
    messages = [(p.message, p.line) for p in problems.items]
    assert any("only block uses a reply" in m and line == 2 for m, line in messages), messages
    assert any("categories.b: no terms" in m and line == 3 for m, line in messages), messages
    assert any("terms.a.1: '傻 逼' is already a term of a (terms.a.0)" in m and line == 5 for m, line in messages)
    assert any("one-character term '操'" in m for m, _ in messages), messages
    assert moderator.check("傻逼").action == "mask"


def test_terms_from_files_with_comments_and_their_problems_by_line(tmp_path: Path) -> None:
    (tmp_path / "moderation").mkdir()
    (tmp_path / "moderation" / "fraud.txt").write_text("# 诈骗\n套现\n\n洗钱  # inline\n", encoding="utf-8")
    (tmp_path / "moderation" / "more.txt").write_text("办假证\n***\n", encoding="utf-8")
    problems, moderator, _ = load(
        tmp_path,
        "categories:\n  fraud: {action: block, where: output}\n"
        "files:\n  fraud: [moderation/fraud.txt, moderation/more.txt]\n",
    )
    assert [(p.file, p.line) for p in problems.errors] == [(tmp_path / "moderation" / "more.txt", 2)]
    (tmp_path / "moderation" / "more.txt").write_text("办假证\n", encoding="utf-8")
    problems, moderator, _ = load(
        tmp_path,
        "categories:\n  fraud: {action: block, where: output}\n"
        "files:\n  fraud: [moderation/fraud.txt, moderation/more.txt]\n",
    )
    assert not problems.items
    assert moderator.check("教你洗钱", where="output").action == "block"
    assert moderator.check("办假证", where="input").action == "allow"
    assert moderator.window == 3 and moderator.term_count == 3


def test_the_whole_file(tmp_path: Path) -> None:
    problems, moderator, external = load(
        tmp_path,
        "window: 16\ndefault_reply: 不可以。\ncategories:\n  x: {action: block}\n  y: {action: mask, where: [output]}\n"
        "terms:\n  x: [暗号甲, 110]\n  y: [傻逼]\n"
        "external: {url: 'https://mod.test/check', timeout: 0.5, on_error: block, api_key_env: MOD_KEY}\n",
        env={"MOD_KEY": "k"},
        metrics=Metrics(),
    )
    assert not problems.items, problems.report()
    verdict = moderator.check("说暗号甲")
    assert verdict.reply == "不可以。" and moderator.window == 16
    assert moderator.check("110").action == "block"  # a number is a term too
    assert moderator.check("傻逼", where="input").action == "allow"
    assert isinstance(external, ExternalModeration)
    assert external.timeout == 0.5 and external.on_error == "block" and external.default_reply == "不可以。"


def test_a_missing_api_key_is_a_warning(tmp_path: Path) -> None:
    problems, _, external = load(tmp_path, "external: {url: 'https://mod.test/', api_key_env: NOPE}\n", env={})
    assert external is not None and not problems.errors
    assert [(p.message.split(":")[0], p.line) for p in problems.items] == [("external.api_key_env", 1)]


@pytest.mark.parametrize("content", [None, "", "# nothing yet\n"])
def test_no_file_or_an_empty_one_is_an_empty_lexicon(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / "moderation.yaml").write_text(content, encoding="utf-8")
    problems = Problems()
    moderator, external = load_moderation(tmp_path, problems)
    assert moderator.empty and external is None and not problems.items
    assert moderator.check("傻逼").action == "allow"
