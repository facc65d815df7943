"""Fixtures for the provider tests: the mock upstream as a real process on loopback, and model factories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from kefu.llm.auth import StaticKey, TokenSource
from kefu.llm.base import ChatMessage, ChatRequest, ModelEvent
from kefu.llm.openai_compat import OpenAICompatModel
from tests.support import MockLLM, start_mock

MODEL = "deepseek-chat"
# Session mock defaults: instant and unpaced, so tests opt into timing per request.
MOCK_ARGS = ("--ttft", "0", "--tps", "0", "--tokens", "40", "--chunk-chars", "4")
API_KEY = "sk-mock-right"


Upstream = MockLLM  # the provider tests' name for it


def start_upstream(*args: str) -> MockLLM:
    """Start the mock on a free port and wait for ``/healthz``."""
    return start_mock(*args)


@pytest.fixture(scope="session")
def upstream_process() -> Iterator[Upstream]:
    up = start_upstream(*MOCK_ARGS)
    yield up
    up.stop()


@pytest.fixture(scope="session")
def keyed_process() -> Iterator[Upstream]:
    up = start_upstream(*MOCK_ARGS, "--api-key", API_KEY)
    yield up
    up.stop()


@pytest.fixture
def upstream(upstream_process: Upstream) -> Upstream:
    """The session mock, reset (script, counters, OAuth settings)."""
    upstream_process.reset()
    return upstream_process


@pytest.fixture
def keyed_upstream(keyed_process: Upstream) -> Upstream:
    """A mock that requires ``Bearer sk-mock-right`` or a token from its ``/oauth/token``."""
    keyed_process.reset()
    return keyed_process


@pytest.fixture
async def make_model(upstream: Upstream) -> AsyncIterator[Callable[..., OpenAICompatModel]]:
    """Build providers pointed at the session mock (closed after the test)."""
    made: list[OpenAICompatModel] = []

    def make(base_url: str | None = None, auth: TokenSource | None = None, **kwargs: Any) -> OpenAICompatModel:
        kwargs.setdefault("connect_timeout", 1.0)
        kwargs.setdefault("first_token_timeout", 2.0)
        kwargs.setdefault("idle_timeout", 2.0)
        model = OpenAICompatModel(base_url or upstream.url + "/v1", MODEL, auth or StaticKey("sk-test"), **kwargs)
        made.append(model)
        return model

    yield make
    for model in made:
        await model.aclose()


def ask(text: str, **kwargs: Any) -> ChatRequest:
    """A one-message request."""
    return ChatRequest(messages=(ChatMessage("user", text),), **kwargs)


async def collect(model: OpenAICompatModel, request: ChatRequest) -> list[ModelEvent]:
    """Every event of one stream."""
    return [event async for event in model.stream(request)]
