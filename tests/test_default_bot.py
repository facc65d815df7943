"""Which bot runs when none is configured: the demo shop in demo mode, else the neutral bot (never demo content)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from kefu.bot.loader import load_bot
from kefu.config import DEMO_BOT_DIR, NEUTRAL_BOT_DIR, Settings
from kefu.kb.botdir import content_files
from tests.convtest.support import run_kefu_test
from tests.support import KefuServer, MockLLM, answer_text, auth, chat

SHIPPING = "运费多少？"
DEMO_SHIPPING_ANSWER = "满99元包邮"  # in the demo shop's FAQ answer to it (kefu/demo/kb/faq/shop.csv)


def test_the_demo_faq_answer_is_what_the_server_tests_look_for() -> None:
    assert DEMO_SHIPPING_ANSWER in (DEMO_BOT_DIR / "kb" / "faq" / "shop.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("demo", "env", "expected"),
    [
        (False, None, NEUTRAL_BOT_DIR),
        (True, None, DEMO_BOT_DIR),
        (False, "chosen", None),
        (True, "chosen", None),
    ],
)
def test_settings_pick_the_bot_by_mode_unless_one_is_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, demo: bool, env: str | None, expected: Path | None
) -> None:
    monkeypatch.delenv("KEFU_BOT_DIR", raising=False)
    monkeypatch.setenv("KEFU_DEMO", "1" if demo else "0")
    if env is not None:
        monkeypatch.setenv("KEFU_BOT_DIR", str(tmp_path))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.bot_dir == (expected or tmp_path)
    assert settings.bot_dir_chosen is (env is not None)
    assert settings.neutral_bot is (expected == NEUTRAL_BOT_DIR)


def test_the_neutral_bot_has_no_shop_content() -> None:
    bot, problems = load_bot(NEUTRAL_BOT_DIR, env={}, allow_hosts=[], check_kb=True)
    assert bot is not None and not problems.items, problems.report()
    assert content_files(NEUTRAL_BOT_DIR) == []  # no FAQ, no documents
    assert bot.tools.specs() == [] and set(bot.flows.flows) == {"human"}
    assert bot.handoff.hours is None  # no business hours of some shop
    assert "小铺" not in bot.system_prompt and "99" not in bot.system_prompt


def test_kefu_test_uses_the_bot_whose_tests_folder_holds_the_files(tmp_path: Path) -> None:
    bot = tmp_path / "mybot"
    shutil.copytree(NEUTRAL_BOT_DIR, bot)
    (bot / "tests").mkdir()
    (bot / "tests" / "human.yaml").write_text(  # names no bot: KEFU_BOT_DIR is unset, so the enclosing bot
        "merchant: none\nconversations:\n  - turns:\n      - user: 转人工\n"
        "        expect: {flow_ended: handoff, reply_contains: 已为您登记转人工}\n",
        encoding="utf-8",
    )
    (bot / "flows" / "human.yaml").write_text(
        (bot / "flows" / "human.yaml")
        .read_text(encoding="utf-8")
        .replace("已为您登记转人工", "已为您登记转人工（mybot）"),
        encoding="utf-8",
    )
    report = run_kefu_test(bot / "tests", "--json", cwd=tmp_path)
    assert report.returncode == 0, report.explain()
    assert "（mybot）" in report.steps[0]["reply"]


def ask_shipping(server: KefuServer, user: str) -> tuple[str, str]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        events = chat(http, user, SHIPPING)
    return answer_text(events), events[-1].data["source"]


def test_a_server_without_a_bot_dir_answers_with_the_neutral_bot_and_warns(
    make_server: Callable[..., KefuServer], fresh_mock: MockLLM
) -> None:
    server = make_server(fresh_mock, KEFU_BOT_DIR="")  # empty = unset
    text, source = ask_shipping(server, "neutral-1")
    assert source == "llm" and DEMO_SHIPPING_ANSWER not in text
    sent = fresh_mock.stats()["last_request"]["body"]["messages"]
    system = "\n".join(m["content"] for m in sent if m["role"] == "system")
    assert "你没有这家店的任何资料" in system and "小铺" not in system and DEMO_SHIPPING_ANSWER not in system
    with httpx.Client(base_url=server.url, timeout=30) as http:
        handed = chat(http, "neutral-2", "转人工")
    assert handed[-1].data["source"] == "flow" and "已为您登记转人工" in answer_text(handed)
    output = server.stop()
    assert "bot_neutral" in output and "kefu init" in output


def test_demo_mode_without_a_bot_dir_keeps_the_demo_shop(make_server: Callable[..., KefuServer]) -> None:
    server = make_server(None, KEFU_DEMO="1", KEFU_BOT_DIR="")
    text, source = ask_shipping(server, "demo-1")
    assert source == "faq" and DEMO_SHIPPING_ANSWER in text
    assert "bot_neutral" not in server.stop()


def test_a_chosen_bot_dir_is_used_and_not_warned_about(make_server: Callable[..., KefuServer]) -> None:
    server = make_server(None, KEFU_BOT_DIR=str(DEMO_BOT_DIR))  # non-demo mode with the demo bot chosen
    with httpx.Client(base_url=server.url, timeout=30) as http:
        response = http.post("/v1/chat", json={"message": SHIPPING}, headers=auth("chosen-1"))
    assert DEMO_SHIPPING_ANSWER in response.text
    assert "bot_neutral" not in server.stop()
