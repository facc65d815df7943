"""Where the provider's bearer token comes from: a static API key or an OAuth2 client-credentials grant."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable
from urllib.parse import quote_plus

import httpx
import orjson

from kefu.errors import UpstreamConnectError, UpstreamError, UpstreamProtocolError

if TYPE_CHECKING:
    from kefu.config import Settings


@runtime_checkable
class TokenSource(Protocol):
    """Gives the bearer token for the next upstream request (None: send no ``Authorization`` header)."""

    async def token(self) -> str | None:
        """The token to use now."""
        ...


class StaticKey:
    """A fixed API key (``KEFU_LLM_API_KEY``)."""

    def __init__(self, key: str | None) -> None:
        self._key = key

    async def token(self) -> str | None:
        """The key itself."""
        return self._key

    def __repr__(self) -> str:
        return f"StaticKey({'set' if self._key else 'unset'})"


class OAuth2ClientCredentials:
    """OAuth2 client-credentials grant (RFC 6749 §4.4) with a cached, shared token.

    The token is reused until ``refresh_margin`` seconds (default 5 minutes; at most half the lifetime for
    short-lived tokens) before it expires. Concurrent callers that find no valid token share one in-flight
    request. Rejected credentials raise a non-retryable :class:`UpstreamError`; network trouble and 5xx/429
    raise retryable ones.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        *,
        auth_method: Literal["basic", "post"] = "basic",
        refresh_margin: float = 300.0,
        default_expires_in: float = 3600.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._owns_client = http_client is None
        self._client = http_client or httpx.AsyncClient(timeout=timeout)
        self._auth_method = auth_method
        self._margin = refresh_margin
        self._default_expires_in = default_expires_in
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._inflight: asyncio.Task[str] | None = None

    async def token(self) -> str:
        """A valid access token, fetched only when the cached one is missing or due for refresh."""
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        task = self._inflight
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch())
            self._inflight = task
            task.add_done_callback(self._fetched)
        # shield: one caller giving up must not cancel the fetch the others wait for.
        return await asyncio.shield(task)

    def invalidate(self) -> None:
        """Forget the cached token (the upstream rejected it); the next call fetches a new one."""
        self._token = None
        self._refresh_at = 0.0

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_client:
            await self._client.aclose()

    def _fetched(self, task: asyncio.Task[str]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # mark retrieved even if every caller went away

    async def _fetch(self) -> str:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        headers = {"Accept": "application/json"}
        if self._auth_method == "basic":
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before the Basic encoding.
            pair = f"{quote_plus(self._client_id)}:{quote_plus(self._client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = self._client_id
            form["client_secret"] = self._client_secret
        started = self._clock()
        try:
            response = await self._client.post(self._url, data=form, headers=headers)
        except httpx.TransportError as exc:
            raise UpstreamConnectError(f"OAuth2 token endpoint unreachable: {exc!r}") from exc
        if response.status_code != 200:
            raise _token_error(response)
        try:
            body = orjson.loads(response.content)
            access_token = body["access_token"]
            expires_in = float(body.get("expires_in") or self._default_expires_in)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UpstreamProtocolError(
                "OAuth2 token endpoint answered without a usable access_token", retryable=False
            ) from exc
        if not isinstance(access_token, str) or not access_token:
            raise UpstreamProtocolError("OAuth2 token endpoint returned an empty token", retryable=False)
        self._token = access_token
        self._refresh_at = started + expires_in - min(self._margin, expires_in / 2)
        return access_token


def _token_error(response: httpx.Response) -> UpstreamError:
    status = response.status_code
    detail = response.text[:300]
    try:
        body = orjson.loads(response.content)
        if isinstance(body, dict) and body.get("error"):
            detail = f"{body['error']}: {body.get('error_description', '')}".rstrip(": ")
    except orjson.JSONDecodeError:
        pass
    retryable = status == 408 or status == 429 or status >= 500
    return UpstreamError(
        f"OAuth2 token request failed with HTTP {status}: {detail}",
        code="upstream_auth_unavailable" if retryable else "upstream_auth_failed",
        retryable=retryable,
        status_code=status,
    )


def token_source_from_settings(settings: Settings) -> TokenSource:
    """The token source the settings describe: OAuth2 when a token URL is set, else the static API key."""
    if settings.llm_oauth_token_url:
        secret = settings.llm_oauth_client_secret
        return OAuth2ClientCredentials(
            settings.llm_oauth_token_url,
            settings.llm_oauth_client_id or "",
            secret.get_secret_value() if secret is not None else "",
            scope=settings.llm_oauth_scope,
        )
    key = settings.llm_api_key
    return StaticKey(key.get_secret_value() if key is not None else None)
