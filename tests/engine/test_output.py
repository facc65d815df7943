"""The model's text on its way to the shopper: placeholders restored and flagged terms held back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kefu.content.problems import Problems
from kefu.engine.events import DeltaEvent, decode_event
from kefu.engine.output import ModelOutput, starred
from kefu.engine.writer import DeltaWriter
from kefu.moderation import Moderator, load_moderation
from kefu.pii import Pseudonyms

LEXICON = """
categories:
  abuse: {action: mask, where: [input, output]}
  politics: {action: block, where: [output], reply: 这个问题我不方便回答。}
  ads: {action: flag, where: [input, output]}
terms:
  abuse: [傻逼]
  politics: [禁词甲乙]
  ads: [加微信]
"""


def moderator(tmp_path: Path) -> Moderator:
    (tmp_path / "moderation.yaml").write_text(LEXICON, encoding="utf-8")
    problems = Problems()
    loaded, _ = load_moderation(tmp_path, problems)
    assert not problems.errors, problems.errors
    return loaded


class Log:
    def __init__(self) -> None:
        self.deltas: list[str] = []

    async def append(self, events: list[tuple[str, str]]) -> int:
        for name, data in events:
            event = decode_event(name, data)
            assert isinstance(event, DeltaEvent)
            self.deltas.append(event.text)
        return len(self.deltas)


async def stream(out: ModelOutput, writer: DeltaWriter, pieces: list[str]) -> None:
    for piece in pieces:
        out.write(piece)
        await asyncio.sleep(0)
    out.close()
    await writer.close()


def pieces_of(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 100])
async def test_a_blocked_term_never_reaches_the_log(tmp_path: Path, size: int) -> None:
    log = Log()
    writer = DeltaWriter(log.append, interval=0)
    writer.start()
    out = ModelOutput(writer, None, moderator(tmp_path))
    answer = "您好，关于这个问题：禁词甲乙是这样的，后面还有很多内容。"
    await stream(out, writer, pieces_of(answer, size))
    shown = "".join(log.deltas)
    assert "禁" not in shown and "禁词甲乙" not in writer.text
    assert out.blocked is not None and out.mark == "block:politics"
    assert answer.startswith(shown)  # what was shown is the clean beginning, nothing else


@pytest.mark.parametrize("size", [1, 4, 100])
async def test_masked_and_flagged_terms(tmp_path: Path, size: int) -> None:
    log = Log()
    writer = DeltaWriter(log.append, interval=0)
    writer.start()
    out = ModelOutput(writer, None, moderator(tmp_path))
    await stream(out, writer, pieces_of("别说傻逼这种话，有事加微信也不行哦", size))
    assert "".join(log.deltas) == "别说**这种话，有事加微信也不行哦"
    assert out.blocked is None and out.mark == "mask:abuse"
    assert {(h.category, h.action) for v in out.verdicts for h in v.hits} == {("abuse", "mask"), ("ads", "flag")}


async def test_only_an_ending_that_may_become_a_term_is_held(tmp_path: Path) -> None:
    log = Log()
    writer = DeltaWriter(log.append, interval=0)
    writer.start()
    out = ModelOutput(writer, None, moderator(tmp_path))
    out.write("好的，请不要")
    assert writer.text == "好的，请不要"  # nothing in it can begin a term: no delay at all
    out.write("加")
    assert writer.text == "好的，请不要"  # "加" may become "加微信"
    out.write("班")
    assert writer.text == "好的，请不要加班"
    out.write("傻 ")
    assert writer.text == "好的，请不要加班"
    out.close()
    await writer.close()
    assert writer.text == "好的，请不要加班傻 "


async def test_the_hold_back_is_bounded(tmp_path: Path) -> None:
    """Clean text streams out with at most the window held back, not the whole answer."""
    log = Log()
    writer = DeltaWriter(log.append, interval=0)
    writer.start()
    mod = moderator(tmp_path)
    out = ModelOutput(writer, None, mod)
    text = "这是一段很长的正常回答，" * 10
    for ch in text:
        out.write(ch)
    await asyncio.sleep(0.01)
    assert len(text) - len(writer.text) <= 2 * mod.window
    out.close()
    await writer.close()
    assert writer.text == text


async def test_placeholders_are_restored_before_the_check(tmp_path: Path) -> None:
    names = Pseudonyms()
    names.mask("13800138000")
    log = Log()
    writer = DeltaWriter(log.append, interval=0)
    writer.start()
    out = ModelOutput(writer, names, moderator(tmp_path))
    await stream(out, writer, ["已记下[手机", "号1]，稍后联系"])
    assert "".join(log.deltas) == "已记下13800138000，稍后联系"


def test_starred_hides_blocked_and_masked_terms_only(tmp_path: Path) -> None:
    verdict = moderator(tmp_path).check("傻逼 加微信 禁词甲乙", where="output")
    assert starred("傻逼 加微信 禁词甲乙", verdict) == "** 加微信 ****"
