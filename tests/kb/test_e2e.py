"""Through a real ``kefu serve`` with NO model: FAQ answers, suggestions, apology; admin API changes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from kefu.config import DEMO_BOT_DIR
from tests.conftest import server_env
from tests.support import KefuServer, answer_text, auth, chat

ADMIN = {"Authorization": "Bearer test-api-key"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KefuServer]:
    """One kefu server on the demo shop with no model configured, for the whole module."""
    workdir = tmp_path_factory.mktemp("kb-e2e")
    database = f"sqlite+aiosqlite:///{workdir / 'kefu.db'}"
    env = server_env(None, KEFU_DATABASE_URL=database, KEFU_BOT_DIR=str(DEMO_BOT_DIR))
    server = KefuServer(env=env, workdir=workdir).start()
    yield server
    server.stop()


@pytest.fixture
def client(server: KefuServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def test_e2e_faq_question_is_answered_from_the_faq_without_a_model(client: httpx.Client) -> None:
    events = chat(client, "shopper-1", "运费怎么算？")
    done = events[-1]
    assert done.event == "done", done.data
    assert done.data["source"] == "faq" and done.data["model"] is None
    assert done.data["sources"] == [{"id": "ship-fee", "title": "运费怎么算？"}]
    assert answer_text(events).startswith("全场实付满99元包邮")


def test_e2e_vague_question_gets_suggestions(client: httpx.Client) -> None:
    events = chat(client, "shopper-2", "优惠券")
    done = events[-1]
    assert done.event == "done" and done.data["source"] == "fallback"
    suggestions = done.data["suggestions"]
    assert 1 < len(suggestions) <= 3 and all("优惠券" in s for s in suggestions)
    text = answer_text(events)
    assert text.startswith("您是不是想问") and all(s in text for s in suggestions)


def test_e2e_gibberish_gets_the_apology_offering_a_human(client: httpx.Client) -> None:
    events = chat(client, "shopper-3", "qwzx plmok")
    done = events[-1]
    assert done.event == "done" and done.data["source"] == "fallback"
    assert done.data.get("handoff_offered") is True and "suggestions" not in done.data
    assert "转人工" in answer_text(events)


def test_admin_kb_requires_an_api_key(client: httpx.Client) -> None:
    assert client.get("/v1/admin/kb/entries").status_code == 401
    assert client.get("/v1/admin/kb/entries", headers={"Authorization": "Bearer nope"}).status_code == 401
    forbidden = client.get("/v1/admin/kb/entries", headers=auth("shopper-4"))  # a valid end-user JWT
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    page = client.get("/v1/admin/kb/entries", headers=ADMIN, params={"kind": "faq", "limit": 5})
    assert page.status_code == 200
    assert page.json()["total"] >= 60 and len(page.json()["entries"]) == 5


def test_admin_kb_changes_are_searchable_without_restart(client: httpx.Client) -> None:
    body = {"id": "pets", "question": "可以带宠物去门店吗？", "answer": "小铺没有门店，欢迎在线选购宠物用品。"}
    created = client.post("/v1/admin/kb/entries", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    first_version = created.json()["version"]
    assert client.post("/v1/admin/kb/entries", json=body, headers=ADMIN).status_code == 409
    events = chat(client, "shopper-5", "可以带宠物去门店吗")
    assert events[-1].data["source"] == "faq" and answer_text(events) == body["answer"]

    updated = client.put("/v1/admin/kb/entries/pets", json={**body, "id": None} | {"answer": "不可以。"}, headers=ADMIN)
    assert updated.status_code == 422  # "id" is not a field of an update
    updated = client.put(
        "/v1/admin/kb/entries/pets", json={"question": body["question"], "answer": "不可以。"}, headers=ADMIN
    )
    assert updated.status_code == 200 and updated.json()["version"] != first_version
    assert answer_text(chat(client, "shopper-5", "可以带宠物去门店吗")) == "不可以。"
    hits = client.get("/v1/admin/kb/search", params={"q": "宠物"}, headers=ADMIN).json()["hits"]
    assert hits[0]["id"] == "pets" and hits[0]["field"] in ("question", "answer")

    assert client.delete("/v1/admin/kb/entries/pets", headers=ADMIN).status_code == 204
    assert client.delete("/v1/admin/kb/entries/pets", headers=ADMIN).status_code == 404
    assert client.get("/v1/admin/kb/entries/pets", headers=ADMIN).status_code == 404
    gone = chat(client, "shopper-5", "可以带宠物去门店吗")  # the demo's "有实体店吗？" may answer it now
    assert answer_text(gone) != "不可以。" and gone[-1].data["source"] in ("faq", "fallback")
    hits = client.get("/v1/admin/kb/search", params={"q": "宠物"}, headers=ADMIN).json()["hits"]
    assert all(h["id"] != "pets" for h in hits)


def test_admin_kb_validity_dates_read_like_the_files(client: httpx.Client) -> None:
    body = {"question": "去年双十一的活动？", "answer": "已结束。", "valid_to": "2020-11-11"}
    created = client.post("/v1/admin/kb/entries", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    assert created.json()["entry"]["valid_to"] == "2020-11-12T00:00:00+00:00"  # the whole last day counts
    hits = client.get("/v1/admin/kb/search", params={"q": "去年双十一的活动"}, headers=ADMIN).json()["hits"]
    assert all(h["id"] != created.json()["entry"]["id"] for h in hits)  # expired: never found


def test_admin_kb_rejects_invalid_entries(client: httpx.Client) -> None:
    blank = client.post("/v1/admin/kb/entries", json={"question": " ", "answer": "x"}, headers=ADMIN)
    assert blank.status_code == 422 and "question is empty" in blank.json()["error"]["message"]
    missing = client.put("/v1/admin/kb/entries/nope", json={"question": "q", "answer": "a"}, headers=ADMIN)
    assert missing.status_code == 404
