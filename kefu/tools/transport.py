"""The HTTP transport of tools: every connection it opens goes to an address the guard checked.

The check sits where httpcore opens a TCP connection (its network backend), so it covers every connection the
client makes (a retry, a redirect if one is ever followed) and there is no second DNS lookup to rebind. The pool
still keys connections by the URL's host, and TLS sends and verifies that host: a connection checked and verified
for one name is never reused for another name that shares its address.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import httpcore
import httpx

from kefu.errors import AddressRefused, ConfigError
from kefu.tools.guard import AddressGuard


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to the addresses the guard returns for the host, trying them in order, through
    ``inner`` (default: httpcore's anyio backend; tests pass one that records where connections go)."""

    def __init__(self, guard: AddressGuard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for ip in await self._guard.addresses(host, port):
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # e.g. an IPv6 address on a host without IPv6: the next checked address may work
        assert failure is not None  # addresses() returns at least one address or raises
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request and error mapping, TLS, pooling) with connections opened by
    :class:`GuardedBackend`. It never goes through an HTTP proxy, which would resolve names past the guard."""

    def __init__(
        self,
        guard: AddressGuard,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        super().__init__(verify=verify, limits=limits)
        # httpx has no public way to give its pool a network backend; its pool attribute is the one hook there is.
        # Should a new httpx keep its pool elsewhere, replacing the attribute would silently leave connections
        # unguarded: refuse to start instead.
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise ConfigError(f"httpx {httpx.__version__}: its transport has no connection pool to guard")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(guard, inner),
        )
