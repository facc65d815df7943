"""Small talk: without a model the bot answers it from its texts, in the shopper's language; with one, the model
does. A complaint about the bot gets the apology that offers a person."""

from __future__ import annotations

import pytest

from kefu.bot.texts import CannedTexts
from kefu.engine.events import DoneEvent
from kefu.engine.service import TurnHandle
from kefu.flows.texts import Lang
from tests.engine.conftest import ALICE, Engine, Replica
from tests.engine.fakes import FakeModel, Script, texts

DEFAULT = CannedTexts()


async def _ask(
    engine: Engine, replica: Replica, message: str, session_id: str | None = None
) -> tuple[str, DoneEvent, TurnHandle]:
    handle = await replica.chat.start_turn(ALICE, message, session_id)
    events = await engine.follow_all(replica, handle)
    done = events[-1].event
    assert isinstance(done, DoneEvent)
    return texts(events), done, handle


@pytest.mark.parametrize(
    ("message", "key", "lang"),
    [
        ("在吗", "smalltalk_greeting", "zh"),
        ("亲 在不在", "smalltalk_greeting", "zh"),
        ("谢谢", "smalltalk_thanks", "zh"),
        ("好的", "smalltalk_ack", "zh"),
        ("拜拜", "smalltalk_bye", "zh"),
        ("你是机器人吗", "smalltalk_robot", "zh"),
        ("hello", "smalltalk_greeting", "en"),
        ("are you a bot?", "smalltalk_robot", "en"),
    ],
)
async def test_small_talk_without_a_model_is_answered_from_the_texts(
    engine: Engine, message: str, key: str, lang: Lang
) -> None:
    said, done, handle = await _ask(engine, engine.replica(None), message)
    assert said == DEFAULT.text(key, lang)
    assert said != DEFAULT.text("apology", lang)
    assert (done.source, done.handoff_offered) == ("smalltalk", False)
    [answer] = await engine.answers(handle.session_id)
    assert (answer.content, answer.source, answer.status) == (said, "smalltalk", "complete")


async def test_thanks_after_an_english_conversation_is_answered_in_english(engine: Engine) -> None:
    replica = engine.replica(None)
    _, _, first = await _ask(engine, replica, "hello")
    said, _, _ = await _ask(engine, replica, "ok", first.session_id)
    assert said == DEFAULT.text("smalltalk_ack", "en")


async def test_a_complaint_about_the_bot_offers_a_person(engine: Engine) -> None:
    said, done, _ = await _ask(engine, engine.replica(None), "答非所问")
    assert said == DEFAULT.text("apology", "zh")
    assert (done.source, done.handoff_offered) == ("fallback", True)


async def test_with_a_model_small_talk_is_the_models(engine: Engine) -> None:
    model = FakeModel(Script(["不客气", "～"], finish="stop"))
    said, done, _ = await _ask(engine, engine.replica(model), "谢谢")
    assert (said, done.source) == ("不客气～", "llm")
    assert model.calls == 1


async def test_a_greeting_that_opens_a_question_is_not_small_talk(engine: Engine) -> None:
    model = FakeModel(Script(["七天无理由退货"], finish="stop"))
    said, done, _ = await _ask(engine, engine.replica(model), "你好，请问你们的退货政策是什么")
    assert (said, done.source, model.calls) == ("七天无理由退货", "llm", 1)
