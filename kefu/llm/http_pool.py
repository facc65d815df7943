"""Pooled aiohttp sessions for one upstream: keep-alive connections, opened as load needs them.

aiohttp reads a stream for roughly a third of the CPU httpx/httpcore spend per chunk at 10–100 concurrent
streams (``benchmarks/overhead.py``; docs/benchmarks.md §1), which is why the hot path uses it.
"""

from __future__ import annotations

import math
import os
import ssl

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

# One logical pool per upstream, split into sessions of at most this many connections (a session per shard is
# cheap, and it bounds the work any one connector does when many requests start or end at once).
CONNECTIONS_PER_SHARD = 32


def default_ssl_context() -> ssl.SSLContext:
    """Verify against ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set, else certifi's bundle (as httpx does)."""
    cafile = os.environ.get("SSL_CERT_FILE")
    capath = os.environ.get("SSL_CERT_DIR")
    if cafile or capath:
        return ssl.create_default_context(cafile=cafile or None, capath=capath or None)
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def env_proxy(url: URL) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy ``HTTP(S)_PROXY`` / ``NO_PROXY`` choose for ``url`` (httpx's default behaviour), if any."""
    try:
        return get_env_proxy_for_url(url)
    except LookupError:
        return None, None


class SessionPool:
    """Up to ``max_connections`` connections to one upstream, in sessions of at most 32.

    ``acquire`` picks a session with a free slot (opening another while under the limit); ``release`` returns
    the slot. Sessions are created inside the running loop, on first use.
    """

    __slots__ = ("_connect_timeout", "_max_shards", "_owned", "_per_shard", "_ssl", "busy", "sessions")

    def __init__(
        self, *, max_connections: int, connect_timeout: float, session: aiohttp.ClientSession | None = None
    ) -> None:
        self._connect_timeout = connect_timeout
        self._max_shards = max(1, math.ceil(max_connections / CONNECTIONS_PER_SHARD))
        self._per_shard = max(1, math.ceil(max_connections / self._max_shards))
        self._owned = session is None
        # Built now, not on the first request (it costs tens of milliseconds); sessions need a running loop.
        self._ssl = default_ssl_context() if self._owned else None
        self.sessions: list[aiohttp.ClientSession] = [session] if session is not None else []
        self.busy: list[int] = [0] if session is not None else []

    def acquire(self) -> int:
        """The index of the session to use (its slot counted as taken)."""
        busy = self.busy
        index = -1
        if not self._owned:
            index = 0
        else:
            for i, in_flight in enumerate(busy):
                if in_flight < self._per_shard:
                    index = i
                    break
            else:
                if len(busy) < self._max_shards:
                    self.sessions.append(self._new_session())
                    busy.append(0)
                    index = len(busy) - 1
                else:
                    index = busy.index(min(busy))
        busy[index] += 1
        return index

    def release(self, index: int) -> None:
        """Give back the slot taken by :meth:`acquire`."""
        self.busy[index] -= 1

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._per_shard, ssl=self._ssl or True)
        return aiohttp.ClientSession(
            connector=connector,
            # Reads are bounded by the stream's watchdog; only the TCP/TLS connect has its own limit.
            timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_read=None, sock_connect=self._connect_timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,  # the proxy is looked up once (env_proxy), not on every request
            auto_decompress=True,  # only costs anything when the upstream ignores Accept-Encoding: identity
            raise_for_status=False,
        )

    async def aclose(self) -> None:
        """Close the sessions this pool opened."""
        if self._owned:
            for session in self.sessions:
                await session.close()
            self.sessions.clear()
            self.busy.clear()
