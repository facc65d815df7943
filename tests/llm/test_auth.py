"""Token sources: static keys and the OAuth2 client-credentials grant against the mock's token endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Literal

import pytest

from kefu.config import Settings
from kefu.errors import UpstreamConnectError, UpstreamError
from kefu.llm.auth import OAuth2ClientCredentials, StaticKey, TokenSource, token_source_from_settings
from tests.llm.conftest import Upstream
from tests.support import free_port

CLIENT_ID, CLIENT_SECRET = "kefu-mock", "kefu-mock-secret"


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


MakeSource = Callable[..., OAuth2ClientCredentials]


@pytest.fixture
async def make_source(upstream: Upstream) -> AsyncIterator[MakeSource]:
    made: list[OAuth2ClientCredentials] = []

    def make(
        secret: str = CLIENT_SECRET,
        clock: Callable[[], float] | None = None,
        auth_method: Literal["basic", "post"] = "basic",
        url: str | None = None,
    ) -> OAuth2ClientCredentials:
        source = OAuth2ClientCredentials(
            url or upstream.url + "/oauth/token",
            CLIENT_ID,
            secret,
            auth_method=auth_method,
            clock=clock or time.monotonic,
        )
        made.append(source)
        return source

    yield make
    for source in made:
        await source.aclose()


async def test_static_key_returns_its_key() -> None:
    assert await StaticKey("sk-1").token() == "sk-1"
    assert await StaticKey(None).token() is None
    assert isinstance(StaticKey("x"), TokenSource)


@pytest.mark.parametrize("method", ["basic", "post"])
async def test_oauth2_fetches_once_then_serves_from_cache(
    make_source: MakeSource, upstream: Upstream, method: Literal["basic", "post"]
) -> None:
    source = make_source(auth_method=method)
    first = await source.token()
    assert first.startswith("mock-token-")
    assert await source.token() == first
    assert upstream.stats()["oauth_tokens_issued"] == 1


async def test_oauth2_refreshes_five_minutes_before_expiry(make_source: MakeSource, upstream: Upstream) -> None:
    upstream.oauth(expires_in=3600)
    clock = Clock()
    source = make_source(clock=clock)
    first = await source.token()
    clock.now += 3600 - 300 - 0.5  # just over five minutes left: still cached
    assert await source.token() == first
    clock.now += 1.0  # under five minutes left: refresh
    second = await source.token()
    assert second != first
    assert upstream.stats()["oauth_tokens_issued"] == 2


async def test_oauth2_short_lived_token_refreshes_at_half_life(make_source: MakeSource, upstream: Upstream) -> None:
    upstream.oauth(expires_in=60)
    clock = Clock()
    source = make_source(clock=clock)
    first = await source.token()
    clock.now += 29
    assert await source.token() == first
    clock.now += 2
    assert await source.token() != first


async def test_oauth2_concurrent_callers_share_one_fetch(make_source: MakeSource, upstream: Upstream) -> None:
    upstream.oauth(delay=0.2)
    source = make_source()
    tokens = await asyncio.gather(*(source.token() for _ in range(20)))
    assert len(set(tokens)) == 1
    assert upstream.stats()["oauth_tokens_issued"] == 1


async def test_oauth2_cancelled_caller_does_not_cancel_shared_fetch(
    make_source: MakeSource, upstream: Upstream
) -> None:
    upstream.oauth(delay=0.2)
    source = make_source()
    quitter = asyncio.ensure_future(source.token())
    stayer = asyncio.ensure_future(source.token())
    await asyncio.sleep(0.05)
    quitter.cancel()
    assert (await stayer).startswith("mock-token-")
    assert upstream.stats()["oauth_tokens_issued"] == 1


async def test_oauth2_bad_credentials_are_final(make_source: MakeSource) -> None:
    with pytest.raises(UpstreamError) as info:
        await make_source(secret="wrong").token()
    assert info.value.retryable is False
    assert info.value.code == "upstream_auth_failed"
    assert "invalid_client" in info.value.message


async def test_oauth2_server_error_is_retryable_and_not_cached(make_source: MakeSource, upstream: Upstream) -> None:
    upstream.oauth(fail=503)
    source = make_source()
    with pytest.raises(UpstreamError) as info:
        await source.token()
    assert info.value.retryable is True and info.value.status_code == 503
    upstream.oauth(fail=None)
    assert (await source.token()).startswith("mock-token-")


async def test_oauth2_unreachable_endpoint_is_connect_error(make_source: MakeSource) -> None:
    source = make_source(url=f"http://127.0.0.1:{free_port()}/oauth/token")
    with pytest.raises(UpstreamConnectError) as info:
        await source.token()
    assert info.value.retryable


async def test_oauth2_invalidate_forces_a_new_token(make_source: MakeSource, upstream: Upstream) -> None:
    source = make_source()
    first = await source.token()
    source.invalidate()
    assert await source.token() != first
    assert upstream.stats()["oauth_tokens_issued"] == 2


async def test_token_source_from_settings_picks_oauth_or_key() -> None:
    oauth = token_source_from_settings(
        Settings(
            _env_file=None,
            llm_oauth_token_url="http://127.0.0.1:1/token",
            llm_oauth_client_id="id",
            llm_oauth_client_secret="secret",
        )
    )
    assert isinstance(oauth, OAuth2ClientCredentials)
    await oauth.aclose()
    key = token_source_from_settings(Settings(_env_file=None, llm_api_key="sk-9"))
    assert isinstance(key, StaticKey) and await key.token() == "sk-9"
