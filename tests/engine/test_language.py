"""The model hears which language the conversation is in when it is not the bot's own."""

from __future__ import annotations

from tests.engine.conftest import ALICE, Engine
from tests.engine.fakes import FakeModel, Script


async def test_the_model_is_told_to_answer_in_the_conversations_language(engine: Engine) -> None:
    model = FakeModel(Script(["Sure"], finish="stop"), Script(["好的"], finish="stop"))
    replica = engine.replica(model)
    for message in ("what is your return policy for shoes", "你们鞋子的退货政策是什么"):
        handle = await replica.chat.start_turn(ALICE, message)
        await engine.follow_all(replica, handle)
    english, chinese = (r.messages[0].content for r in model.requests)
    assert english.endswith("answer in English.")  # the bot's default language is Chinese
    assert "English" not in chinese and "请用中文回答" not in chinese
