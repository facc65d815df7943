"""The loaded bot carries its moderation lexicon (and external hook); an invalid ``moderation.yaml`` stops it."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from kefu.bot.loader import load_bot
from kefu.config import DEMO_BOT_DIR
from tests.conftest import MODEL_ONLY_BOT


def bot_dir(tmp_path: Path, moderation: str | None) -> Path:
    path = tmp_path / "bot"
    shutil.copytree(MODEL_ONLY_BOT, path)
    if moderation is not None:
        (path / "moderation.yaml").write_text(moderation, encoding="utf-8")
    return path


def test_a_bot_without_the_file_has_an_empty_moderator(tmp_path: Path) -> None:
    bot, problems = load_bot(bot_dir(tmp_path, None), env={}, allow_hosts=[])
    assert bot is not None and bot.moderator.empty and bot.external_moderation is None, problems.report()


async def test_the_lexicon_and_the_hook_are_on_the_bot_and_closed_with_it(tmp_path: Path) -> None:
    shutil.copy(DEMO_BOT_DIR / "moderation.yaml", tmp_path / "demo.yaml")
    text = (tmp_path / "demo.yaml").read_text(encoding="utf-8")
    text += "external: {url: 'http://mod.test/check', on_error: block, api_key_env: MOD_KEY}\n"
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(200, json={"action": "flag", "category": "ads"})

    bot, problems = load_bot(
        bot_dir(tmp_path, text),
        env={"MOD_KEY": "k1"},
        allow_hosts=[],
        mounts={"http://mod.test": httpx.MockTransport(answer)},
    )
    assert bot is not None, problems.report()
    assert bot.moderator.check("能不能帮我刷单返现").action == "block"
    assert bot.external_moderation is not None
    assert (await bot.external_moderation.check("你好", where="input")).mark == "flag:ads"
    assert seen == ["Bearer k1"]  # the key from the environment the bot was loaded with
    await bot.aclose()


def test_an_invalid_file_refuses_the_bot_with_file_and_line(tmp_path: Path) -> None:
    bot, problems = load_bot(
        bot_dir(tmp_path, "categories:\n  a: {action: mask}\nterms:\n  a: [傻逼]\n  b: [x]\n"), env={}, allow_hosts=[]
    )
    assert bot is None
    assert [(p.file.name, p.line) for p in problems.errors if isinstance(p.file, Path)] == [("moderation.yaml", 5)]
