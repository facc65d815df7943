"""``kefu init DIR``: a bot directory that passes ``kefu bot check`` and its own conversation test."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from kefu.bot.loader import load_bot
from kefu.cli.init import TEMPLATE_DIR, template_files
from kefu.cli.main import app
from kefu.config import NEUTRAL_BOT_DIR
from tests.convtest.support import run_kefu_test


def init(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["init", *args])
    return result.exit_code, result.output


def test_init_scaffolds_every_part_of_a_bot_and_prints_next_steps(tmp_path: Path) -> None:
    bot = tmp_path / "shops" / "mybot"  # parents are created too
    code, output = init(str(bot))
    assert code == 0, output
    for part in (
        "system_prompt.md",
        "texts.yaml",
        "handoff.yaml",
        "moderation.yaml",
        "kb/faq/faq.csv",
        "flows/human.yaml",
        "flows/example.yaml.example",
        "tools/example.yaml.example",
        "tests/example.yaml",
    ):
        assert (bot / part).is_file(), part
    assert (bot / "kb" / "faq" / "faq.csv").read_text(encoding="utf-8").splitlines() == [
        "id,category,question,similar_questions,answer"
    ]
    assert "【店铺名称】" in (bot / "system_prompt.md").read_text(encoding="utf-8")
    for step in (f"kefu bot check {bot}", f"kefu test {bot / 'tests'}", f"KEFU_BOT_DIR={bot} kefu serve", "faq.csv"):
        assert step in output, step


def test_the_scaffold_passes_bot_check_without_a_warning(tmp_path: Path) -> None:
    assert init(str(tmp_path / "bot"))[0] == 0
    result = CliRunner().invoke(app, ["bot", "check", str(tmp_path / "bot")])
    assert result.exit_code == 0, result.output
    assert "1 flow(s), 0 tool(s)" in result.output and "warning" not in result.output


def test_the_scaffolds_conversation_test_passes(tmp_path: Path) -> None:
    bot = tmp_path / "mybot"
    assert init(str(bot))[0] == 0
    report = run_kefu_test(bot / "tests", "--json", cwd=tmp_path)  # no KEFU_* inherited: the file names its bot
    assert report.returncode == 0, report.explain()
    assert report.data["passed"] and len(report.steps) == 2


def test_the_commented_out_flow_and_tool_are_valid_once_renamed(tmp_path: Path) -> None:
    bot = tmp_path / "bot"
    assert init(str(bot))[0] == 0
    (bot / "flows" / "example.yaml.example").rename(bot / "flows" / "order_status.yaml")
    (bot / "tools" / "example.yaml.example").rename(bot / "tools" / "orders.yaml")
    loaded, problems = load_bot(bot, env={"SHOP_API_URL": "https://shop.example/api"}, allow_hosts=[])
    assert loaded is not None, problems.report()
    assert not problems.items
    assert set(loaded.flows.flows) == {"human", "order_status"} and loaded.tools.has("get_order")


def test_a_non_empty_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    code, output = init(str(tmp_path))
    assert code == 2
    assert "not empty" in output and "--force" in output
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_force_adds_the_missing_files_and_keeps_existing_ones(tmp_path: Path) -> None:
    (tmp_path / "system_prompt.md").write_text("我的提示词", encoding="utf-8")
    code, output = init(str(tmp_path), "--force")
    assert code == 0, output
    assert (tmp_path / "system_prompt.md").read_text(encoding="utf-8") == "我的提示词"
    assert "kept existing" in output and "system_prompt.md" in output
    assert all((tmp_path / relative).is_file() for relative in template_files())


def test_a_file_is_not_a_bot_directory(tmp_path: Path) -> None:
    target = tmp_path / "bot"
    target.write_text("x", encoding="utf-8")
    code, output = init(str(target))
    assert code == 2 and "is a file" in output
    assert target.read_text(encoding="utf-8") == "x"


def test_name_fills_the_shop_name_placeholder(tmp_path: Path) -> None:
    assert init(str(tmp_path / "bot"), "--name", "小铺")[0] == 0
    prompt = (tmp_path / "bot" / "system_prompt.md").read_text(encoding="utf-8")
    assert "「小铺」" in prompt and "【店铺名称】" not in prompt


def test_the_template_hands_over_like_the_neutral_bot(tmp_path: Path) -> None:
    # One "转人工" flow for both: a fix to one must reach the other.
    template = (TEMPLATE_DIR / "flows" / "human.yaml").read_text(encoding="utf-8")
    assert template == (NEUTRAL_BOT_DIR / "flows" / "human.yaml").read_text(encoding="utf-8")
    copy = tmp_path / "copy"
    shutil.copytree(TEMPLATE_DIR, copy)
    loaded, problems = load_bot(copy, env={}, allow_hosts=[], check_kb=True)
    assert loaded is not None and not problems.items, problems.report()
