"""The OpenAI-compatible facade, driven by the official ``openai`` SDK."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support import KefuServer, MockLLM, token_for


def _sdk(server_url: str, user: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key=token_for(user), max_retries=0)


def test_completions_non_stream_answers_and_keeps_history(shared_server: KefuServer, fresh_mock: MockLLM) -> None:
    sdk = _sdk(shared_server.url, "sdk-user")
    first = sdk.chat.completions.create(model="kefu", messages=[{"role": "user", "content": "我想退货"}], user="conv-1")
    text = first.choices[0].message.content
    assert text and "退货" in text
    assert first.choices[0].finish_reason == "stop"
    assert first.model == "mock-chat"
    assert first.usage is not None and first.usage.completion_tokens > 0
    sdk.chat.completions.create(model="kefu", messages=[{"role": "user", "content": "怎么寄回？"}], user="conv-1")
    sent = fresh_mock.stats()["last_request"]["body"]["messages"]
    assert [m["content"] for m in sent[1:]] == ["我想退货", text, "怎么寄回？"]


def test_completions_stream_matches_stored_answer(shared_server: KefuServer, fresh_mock: MockLLM) -> None:
    sdk = _sdk(shared_server.url, "sdk-user2")
    raw = sdk.chat.completions.with_raw_response.create(
        model="kefu",
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    session_id = raw.headers["x-kefu-session"]
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    stored = httpx.get(
        f"{shared_server.url}/v1/sessions/{session_id}",
        headers={"Authorization": f"Bearer {token_for('sdk-user2')}"},
    ).json()["messages"]
    assert stored[-1]["content"] == text


def test_completions_stream_broken_upstream_raises_in_sdk(shared_server: KefuServer, fresh_mock: MockLLM) -> None:
    fresh_mock.script({"fail": "cut", "after_chunks": 2})
    sdk = _sdk(shared_server.url, "sdk-user3")
    stream = sdk.chat.completions.create(model="kefu", messages=[{"role": "user", "content": "hi"}], stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_completions_upstream_down_answers_with_fallback(shared_server: KefuServer, fresh_mock: MockLLM) -> None:
    fresh_mock.script({"fail": "503"}, {"fail": "503"}, {"fail": "503"})
    sdk = _sdk(shared_server.url, "sdk-user4")
    reply = sdk.chat.completions.create(model="kefu", messages=[{"role": "user", "content": "讲个笑话吧"}])
    assert reply.choices[0].message.content and "人工" in reply.choices[0].message.content


def test_completions_require_a_user_message(shared_server: KefuServer) -> None:
    sdk = _sdk(shared_server.url, "sdk-user5")
    with pytest.raises(openai.UnprocessableEntityError):
        sdk.chat.completions.create(model="kefu", messages=[{"role": "system", "content": "x"}])


def test_completions_reject_bad_token(shared_server: KefuServer) -> None:
    sdk = openai.OpenAI(base_url=f"{shared_server.url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(model="kefu", messages=[{"role": "user", "content": "x"}])
