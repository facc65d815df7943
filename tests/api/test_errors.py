"""Bad input gets a clear JSON error and changes nothing already stored."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from tests.support import JWT_SECRET, answer_text, auth, chat


@pytest.fixture
def existing(client: httpx.Client) -> tuple[str, dict]:  # type: ignore[type-arg]
    events = chat(client, "owner", "原始问题")
    session_id = events[0].data["session_id"]
    before = client.get(f"/v1/sessions/{session_id}", headers=auth("owner")).json()
    assert answer_text(events)
    return session_id, before


def _assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"message": ""}, 422, "empty_message"),
        ({"message": "   \n\t"}, 422, "empty_message"),
        ({"message": "长" * 4001}, 413, "message_too_long"),
        ({"session_id": None}, 422, "invalid_request"),
        ({"message": 42}, 422, "invalid_request"),
    ],
)
def test_chat_rejects_bad_body_without_touching_session(
    client: httpx.Client,
    existing: tuple[str, dict],
    payload: dict,
    status: int,
    code: str,  # type: ignore[type-arg]
) -> None:
    session_id, before = existing
    response = client.post("/v1/chat", json={**payload, "session_id": session_id}, headers=auth("owner"))
    _assert_error(response, status, code)
    assert client.get(f"/v1/sessions/{session_id}", headers=auth("owner")).json() == before


def test_chat_rejects_malformed_json(client: httpx.Client) -> None:
    response = client.post(
        "/v1/chat", content=b'{"message": "hi"', headers={**auth("owner"), "Content-Type": "application/json"}
    )
    _assert_error(response, 422, "invalid_request")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer not-a-jwt",
        "Bearer " + jwt.encode({"sub": "owner", "exp": int(time.time()) - 5}, JWT_SECRET, algorithm="HS256"),
        "Bearer " + jwt.encode({"sub": "owner", "exp": int(time.time()) + 60}, "wrong" * 10, algorithm="HS256"),
        "Bearer test-api-key",  # an API key without X-Kefu-User
    ],
)
def test_chat_rejects_missing_or_invalid_credentials(
    client: httpx.Client,
    existing: tuple[str, dict],
    header: str | None,  # type: ignore[type-arg]
) -> None:
    session_id, before = existing
    headers = {"Authorization": header} if header else {}
    response = client.post("/v1/chat", json={"message": "hi", "session_id": session_id}, headers=headers)
    _assert_error(response, 401)
    assert response.headers.get("www-authenticate") == "Bearer"
    assert client.get(f"/v1/sessions/{session_id}", headers=auth("owner")).json() == before


def test_chat_unknown_session_is_404(client: httpx.Client) -> None:
    response = client.post("/v1/chat", json={"message": "hi", "session_id": "s_doesnotexist"}, headers=auth("owner"))
    _assert_error(response, 404, "not_found")


def test_foreign_session_is_404_everywhere(client: httpx.Client, existing: tuple[str, dict]) -> None:  # type: ignore[type-arg]
    session_id, before = existing
    turn_id = before["messages"][0]["turn_id"]
    thief = auth("mallory")
    _assert_error(client.get(f"/v1/sessions/{session_id}", headers=thief), 404)
    _assert_error(client.delete(f"/v1/sessions/{session_id}", headers=thief), 404)
    _assert_error(client.post("/v1/chat", json={"message": "hi", "session_id": session_id}, headers=thief), 404)
    _assert_error(client.get(f"/v1/chat/turns/{turn_id}/events?after=0", headers=thief), 404)
    _assert_error(client.post(f"/v1/chat/turns/{turn_id}/cancel", headers=thief), 404)
    # the same user id through an API key is the same user: the session is visible
    server_headers = {"Authorization": "Bearer test-api-key", "X-Kefu-User": "owner"}
    assert client.get(f"/v1/sessions/{session_id}", headers=server_headers).json() == before
    assert client.get(f"/v1/sessions/{session_id}", headers=auth("owner")).json() == before


def test_delete_session_then_404(client: httpx.Client, existing: tuple[str, dict]) -> None:  # type: ignore[type-arg]
    session_id, _ = existing
    assert client.delete(f"/v1/sessions/{session_id}", headers=auth("owner")).status_code == 204
    _assert_error(client.get(f"/v1/sessions/{session_id}", headers=auth("owner")), 404)


def test_bad_last_event_id_is_422(client: httpx.Client, existing: tuple[str, dict]) -> None:  # type: ignore[type-arg]
    _, before = existing
    turn_id = before["messages"][0]["turn_id"]
    headers = {**auth("owner"), "Last-Event-ID": "other-turn:3"}
    _assert_error(client.get(f"/v1/chat/turns/{turn_id}/events", headers=headers), 422, "invalid_last_event_id")
