"""Over HTTP with no model: an English shopper gets English FAQ answers, suggestions and apology; a Chinese
conversation stays Chinese through "12ab"."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from kefu.bot.texts import CannedTexts
from tests.support import KefuServer, answer_text, chat

BILINGUAL_BOT = Path(__file__).resolve().parents[1] / "bots" / "bilingual"
TEXTS = CannedTexts()


@pytest.fixture
def client(make_server: Callable[..., KefuServer]) -> Iterator[httpx.Client]:
    server = make_server(None, KEFU_BOT_DIR=str(BILINGUAL_BOT))
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def _turn(client: httpx.Client, user: str, text: str, session: str | None = None) -> tuple[str, dict, str]:
    events = chat(client, user, text, session)
    done = events[-1]
    assert done.event == "done", events
    return answer_text(events), done.data, events[0].data["session_id"]


def test_english_questions_get_english_answers_suggestions_and_apology(client: httpx.Client) -> None:
    text, done, session = _turn(client, "en-shopper", "who pays for return shipping")
    assert (text, done["source"]) == ("We pay return shipping for quality problems.", "faq")
    text, done, _ = _turn(client, "en-shopper", "about returns", session)
    assert done["source"] == "fallback"
    assert set(done["suggestions"]) == {"Who pays for return shipping?", "What is the return address?"}
    assert text.startswith(TEXTS.text("suggest_intro", "en")) and "退货" not in text
    text, done, _ = _turn(client, "en-shopper", "12ab", session)  # an id: still an English conversation
    assert text == TEXTS.text("apology", "en") and done["handoff_offered"] is True


def test_a_missing_english_version_falls_back_to_chinese_alone(client: httpx.Client) -> None:
    text, done, _ = _turn(client, "en-shopper-2", "how do I get an invoice")
    assert done["source"] == "faq" and text == "下单时勾选开发票即可。"


def test_a_chinese_conversation_stays_chinese_through_an_id(client: httpx.Client) -> None:
    text, done, session = _turn(client, "zh-shopper", "退货邮费谁承担")
    assert (text, done["source"]) == ("质量问题的退货运费由我们承担。", "faq")
    text, done, _ = _turn(client, "zh-shopper", "12ab", session)
    assert text == TEXTS.text("apology", "zh")
    assert not any("a" <= c.lower() <= "z" for c in text.replace("“转人工”", ""))
    text, done, _ = _turn(client, "zh-shopper", "退货", session)
    assert set(done["suggestions"]) == {"退货运费谁出？", "退货地址是什么？"}
    assert text.startswith(TEXTS.text("suggest_intro", "zh"))


def test_admin_api_entries_carry_translations(client: httpx.Client) -> None:
    admin = {"Authorization": "Bearer test-api-key"}
    body = {
        "id": "pets",
        "question": "可以带宠物去门店吗？",
        "similar_questions": ["can i bring my dog to the store"],
        "answer": "小铺没有门店。",
        "questions": {"en": "Can I bring a pet to the store?"},
        "answers": {"en": "We have no physical store."},
    }
    created = client.post("/v1/admin/kb/entries", json=body, headers=admin)
    assert created.status_code == 201, created.text
    entry = client.get("/v1/admin/kb/entries/pets", headers=admin).json()
    assert entry["questions"] == body["questions"] and entry["answers"] == body["answers"]
    text, done, _ = _turn(client, "en-shopper-3", "can i bring my dog to the store")
    assert (text, done["source"]) == ("We have no physical store.", "faq")
    bad = client.post("/v1/admin/kb/entries", json={**body, "id": "x", "answers": {"english": "x"}}, headers=admin)
    assert bad.status_code == 422 and "language code" in bad.text
