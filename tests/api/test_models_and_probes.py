"""``GET /v1/models`` (OpenAI SDKs list models first) and ``HEAD /healthz``/``/readyz`` (load balancers)."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support import KefuServer, token_for

ADMIN = {"Authorization": "Bearer test-api-key"}


def test_models_lists_the_configured_model_for_the_sdk(shared_server: KefuServer) -> None:
    sdk = openai.OpenAI(base_url=f"{shared_server.url}/v1", api_key=token_for("models-user"), max_retries=0)
    listed = sdk.models.list()
    assert [m.id for m in listed.data] == ["mock-chat", "kefu"]
    assert all(m.object == "model" and m.owned_by == "kefu" for m in listed.data)
    assert sdk.models.retrieve("kefu").id == "kefu"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("gpt-nothing")


def test_models_takes_an_api_key_without_acting_user_and_refuses_strangers(shared_server: KefuServer) -> None:
    with httpx.Client(base_url=shared_server.url, timeout=10) as http:
        body = http.get("/v1/models", headers=ADMIN).json()
        assert body["object"] == "list" and body["data"][0]["id"] == "mock-chat"
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            refused = http.get("/v1/models", headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] in ("unauthorized", "invalid_token")


def test_health_probes_answer_head(shared_server: KefuServer) -> None:
    with httpx.Client(base_url=shared_server.url, timeout=10) as http:
        for path in ("/healthz", "/readyz"):
            head = http.head(path)
            assert head.status_code == 200, path
            assert head.content == b""
        assert "head" not in http.get("/openapi.json").json()["paths"]["/healthz"]
