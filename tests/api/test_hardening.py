"""Input hardening (issue 14) on a real ``kefu serve``: text that cannot be stored is refused before the model is
asked, unreadable bodies and resume points are 422s (never 400 or 500), every response carries security headers,
``/readyz`` tells strangers only ok/failing, and visitor tokens and resumes are rate-limited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_handoff_http import PASSWORD, add_agent
from tests.conftest import MODEL_ONLY_BOT, server_env
from tests.support import KefuServer, MockLLM, auth, chat

ADMIN = {"Authorization": "Bearer test-api-key"}
JSON = {"Content-Type": "application/json"}
SHOP_ORIGIN = "https://shop.example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, mock_llm: MockLLM) -> Iterator[KefuServer]:
    """Demo mode (visitor tokens, the mounted merchant API) with small limits of its own and an agent account."""
    workdir = tmp_path_factory.mktemp("kefu-hardening")
    env = server_env(
        mock_llm,
        KEFU_DEMO="1",
        KEFU_BOT_DIR=str(MODEL_ONLY_BOT),
        KEFU_DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'kefu.db'}",
        KEFU_RATE_LIMIT_VISITOR_TOKENS="3/minute",
        KEFU_RATE_LIMIT_RESUME="3/minute",
        KEFU_FRAME_ANCESTORS=f"'self' {SHOP_ORIGIN}",
    )
    kefu = KefuServer(env=env, workdir=workdir)
    add_agent(kefu, "hanna")
    yield kefu.start()
    kefu.stop()


@pytest.fixture
def http(server: KefuServer, fresh_mock: MockLLM) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def _error(response: httpx.Response, status: int, code: str, *mentions: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    for mention in mentions:
        assert mention in body["error"]["message"], body


def _session(http: httpx.Client, user: str) -> tuple[str, dict[str, object]]:
    events = chat(http, user, "原来的问题")
    session_id = events[0].data["session_id"]
    return session_id, http.get(f"/v1/sessions/{session_id}", headers=auth(user)).json()


# --- 1. text that cannot be stored is refused up front, naming the field --------------------------------------


# JSON as sent by a client that does not check its strings: NUL and lone surrogates as \\u escapes.
@pytest.mark.parametrize("text", ["hello\\u0000world", "hello \\ud800 world", "hello \\udfff"])
def test_chat_refuses_unstorable_text_before_calling_the_model(
    http: httpx.Client, mock_llm: MockLLM, text: str
) -> None:
    session_id, before = _session(http, "nul-user")
    calls = mock_llm.stats()["requests"]
    body = f'{{"message": "{text}", "session_id": "{session_id}"}}'.encode()
    response = http.post("/v1/chat", content=body, headers={**auth("nul-user"), **JSON})
    _error(response, 422, "invalid_request", "message")
    assert mock_llm.stats()["requests"] == calls  # the model was never asked
    assert http.get(f"/v1/sessions/{session_id}", headers=auth("nul-user")).json() == before  # nothing lost


def test_chat_refuses_a_nul_in_the_session_id(http: httpx.Client) -> None:
    response = http.post("/v1/chat", json={"message": "hi", "session_id": "s_\x00"}, headers=auth("nul-user"))
    _error(response, 422, "invalid_request", "session_id")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"messages": [{"role": "user", "content": "a\\u0000b"}]}', "content"),
        (b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "a\\ud83d"}]}]}', "text"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "user": "conv-\\udc00"}', "user"),
    ],
    ids=["nul-content", "surrogate-part", "surrogate-user-key"],
)
def test_completions_refuse_unstorable_text(http: httpx.Client, mock_llm: MockLLM, body: bytes, field: str) -> None:
    calls = mock_llm.stats()["requests"]
    response = http.post("/v1/chat/completions", content=body, headers={**auth("facade-user"), **JSON})
    _error(response, 422, "invalid_request", field)
    assert mock_llm.stats()["requests"] == calls


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": "运费\x00多少", "answer": "十元"}, "question"),
        ({"question": "运费多少", "answer": "十\ud800元"}, "answer"),
        ({"question": "运费多少", "answer": "十元", "similar_questions": ["ok", "邮费\x00"]}, "similar_questions.1"),
    ],
)
def test_admin_kb_refuses_unstorable_text(http: httpx.Client, body: dict[str, object], field: str) -> None:
    raw = json.dumps(body).encode()  # ensure_ascii: the surrogate travels as \\ud800
    response = http.post("/v1/admin/kb/entries", content=raw, headers={**ADMIN, **JSON})
    _error(response, 422, "invalid_request", field)
    listed = http.get("/v1/admin/kb/entries", headers=ADMIN).json()
    assert all("\x00" not in e["question"] for e in listed["entries"])


def _desk(http: httpx.Client) -> dict[str, str]:
    response = http.post("/desk/api/login", json={"name": "hanna", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


@pytest.mark.parametrize("path", ["messages", "notes"])
def test_desk_refuses_unstorable_agent_text(http: httpx.Client, path: str) -> None:
    session_id, _ = _session(http, "desk-shopper")
    url = f"/desk/api/conversations/{session_id}/{path}"
    _error(http.post(url, json={"text": "您好\x00"}, headers=_desk(http)), 422, "invalid_request", "text")
    raw = b'{"text": "\\ud800"}'
    _error(http.post(url, content=raw, headers={**_desk(http), **JSON}), 422, "invalid_request", "text")


def test_handoff_note_and_rating_comment_refuse_unstorable_text(http: httpx.Client) -> None:
    session_id, _ = _session(http, "handoff-shopper")
    note = http.post(f"/v1/sessions/{session_id}/handoff", json={"note": "急\x00"}, headers=auth("handoff-shopper"))
    _error(note, 422, "invalid_request", "note")
    assert http.get(f"/v1/sessions/{session_id}/handoff", headers=auth("handoff-shopper")).json()["state"] == "bot"
    rating = http.post(
        f"/v1/sessions/{session_id}/rating",
        content=b'{"score": 5, "comment": "\\udfff"}',
        headers={**auth("handoff-shopper"), **JSON},
    )
    _error(rating, 422, "invalid_request", "comment")


# --- 2. unreadable bodies, resume points, admin paging ------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"message": "caf\xe9"}',  # Latin-1, not UTF-8
        b'{"message": "hi", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"message": "hi", "session_id": 1' + b"0" * 5000 + b"}",
        b'{"message": ',
    ],
    ids=["invalid-utf8", "deep-nesting", "huge-integer", "truncated"],
)
def test_unreadable_bodies_are_422_not_400(http: httpx.Client, body: bytes) -> None:
    session_id, before = _session(http, "body-user")
    for path in ("/v1/chat", "/v1/chat/completions"):
        _error(http.post(path, content=body, headers={**auth("body-user"), **JSON}), 422, "invalid_request")
    assert http.get(f"/v1/sessions/{session_id}", headers=auth("body-user")).json() == before


@pytest.mark.parametrize(
    ("last_event_id", "after"),
    [("{turn}:²", None), ("{turn}:99999999999999999999999", None), ("{turn}:-1", None), (None, "99999999999999999")],
    ids=["unicode-digit", "huge-seq", "negative", "huge-after"],
)
def test_bad_resume_points_are_422(http: httpx.Client, last_event_id: str | None, after: str | None) -> None:
    # One user per case: each stays within the resume limit.
    user = f"resume-{len(last_event_id or '')}-{after}"
    turn = chat(http, user, "你好")[0].data["turn_id"]
    headers: dict[str, str | bytes] = {**auth(user)}
    if last_event_id:
        # Header bytes are Latin-1 on the wire: "²" arrives as a character that str.isdigit() accepts.
        headers["Last-Event-ID"] = last_event_id.format(turn=turn).encode("latin-1")
    params = {"after": after} if after else None
    response = http.get(f"/v1/chat/turns/{turn}/events", headers=headers, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] in ("invalid_last_event_id", "invalid_request")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/admin/kb/entries?offset=99999999999999999999",
        "/v1/admin/kb/entries?offset=9223372036854775808",
        "/v1/admin/kb/entries/a%00b",
        "/v1/admin/kb/search?q=%00",
        "/v1/admin/handoffs?status=open%00",
        "/v1/sessions/s_%00",
    ],
)
def test_admin_paging_and_nul_in_urls_are_4xx(http: httpx.Client, path: str) -> None:
    response = http.get(path, headers={**ADMIN, "X-Kefu-User": "url-user"})
    _error(response, 422, "invalid_request")


async def test_nul_in_a_header_is_refused_before_any_route(tmp_path: Path) -> None:
    from kefu.app import create_app
    from kefu.config import Settings

    # In process: a real HTTP parser would already refuse the header. No lifespan: nothing below the guard runs.
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'k.db'}", _env_file=None)  # type: ignore[call-arg]
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://kefu.test") as client:
        refused = await client.get("/healthz", headers={"X-Kefu-Session": b"s_\x00"})
        _error(refused, 422, "invalid_request", "x-kefu-session")
        assert refused.headers["x-content-type-options"] == "nosniff"
        assert (await client.get("/healthz", headers={"X-Kefu-Session": b"s_1"})).status_code == 200


# --- 4. security headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/v1/sessions/s_nope", "/widget.js", "/assets/favicon.svg", "/nope", "/demo/shop-api/products"],
)
def test_every_response_has_security_headers(http: httpx.Client, path: str) -> None:
    response = http.get(path, headers=auth("headers-user"))
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp


def test_pages_may_be_framed_by_the_configured_shop_and_the_desk_by_nobody(http: httpx.Client) -> None:
    for path in ("/", "/widget"):
        csp = http.get(path).headers["content-security-policy"]
        assert f"frame-ancestors 'self' {SHOP_ORIGIN}" in csp, csp
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    desk = http.get("/desk")
    assert "frame-ancestors 'none'" in desk.headers["content-security-policy"]
    assert desk.headers["x-frame-options"] == "DENY"
    assert http.get("/docs").status_code == 404  # Swagger UI would load scripts from a CDN
    assert http.get("/openapi.json").status_code == 200


# --- 5. /readyz -------------------------------------------------------------------------------------------


def test_readyz_shows_details_to_operators_only(http: httpx.Client, mock_llm: MockLLM) -> None:
    for headers in ({}, auth("curious"), {"Authorization": "Bearer wrong-key"}):
        public = http.get("/readyz", headers=headers)
        assert public.status_code == 200
        body = public.json()
        assert body == {"status": "ok", "checks": {n: {"ok": True} for n in ("database", "hot_state", "llm")}}
        assert str(mock_llm.port) not in public.text
    operator = http.get("/readyz", headers=ADMIN).json()
    assert (
        operator["checks"]["llm"]["model"] == "mock-chat"
        and str(mock_llm.port) in operator["checks"]["llm"]["provider"]
    )


def test_readyz_hides_why_a_dependency_fails(make_server) -> None:  # type: ignore[no-untyped-def]
    server: KefuServer = make_server(None)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        public = http.get("/readyz").json()
        assert public["checks"]["llm"] == {"ok": False} and public["status"] == "degraded"
        detail = http.get("/readyz", headers=ADMIN).json()["checks"]["llm"]
        assert "KEFU_LLM_API_KEY" in detail["detail"] and detail["base_url"]


# --- 6, 7. rate limits of their own ---------------------------------------------------------------------------


def test_visitor_tokens_are_rate_limited_per_ip(http: httpx.Client) -> None:
    statuses = []
    for _ in range(5):
        response = http.post("/v1/demo/token")
        statuses.append(response.status_code)
        if response.status_code == 429:
            _error(response, 429, "rate_limited", "visitor_token")
            assert int(response.headers["retry-after"]) >= 1
    assert statuses.count(200) <= 3 and statuses[-1] == 429, statuses


def test_resumes_are_rate_limited_per_user(http: httpx.Client) -> None:
    turn = chat(http, "hammer", "你好")[0].data["turn_id"]
    statuses = [
        http.get(f"/v1/chat/turns/{turn}/events", headers={**auth("hammer"), "Last-Event-ID": f"{turn}:1"}).status_code
        for _ in range(5)
    ]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429], statuses
    limited = http.get(f"/v1/chat/turns/{turn}/events", headers=auth("hammer"))
    _error(limited, 429, "rate_limited", "resume")
    assert int(limited.headers["retry-after"]) >= 1
    # Someone else's budget is their own.
    other = chat(http, "calm", "你好")[0].data["turn_id"]
    assert http.get(f"/v1/chat/turns/{other}/events", headers=auth("calm")).status_code == 200
