"""The guarded transport: connections go to the addresses the guard checked, never to a second DNS answer."""

from __future__ import annotations

import ipaddress
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx
import pytest
import trustme
import uvicorn

from kefu.errors import AddressRefused, ConfigError
from kefu.tools.guard import AddressGuard, IPAddress, Resolver
from kefu.tools.transport import GuardedBackend, GuardedTransport
from tests.support import free_port
from tests.tools.backend import Backend
from tests.tools.conftest import REBINDING_NAME
from tests.tools.internal import ADDRESS, Internal

CANNED = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class Recording(httpcore.AsyncNetworkBackend):
    """Records the address of every connection and answers it with a canned response (no network)."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        return httpcore.AsyncMockStream([CANNED])


def answers(*rounds: list[str]) -> tuple[Resolver, list[str]]:
    """A resolver that gives the n-th round of answers on its n-th lookup (the last repeats), and the names asked."""
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return [ipaddress.ip_address(a) for a in rounds[min(len(asked), len(rounds)) - 1]]

    return resolver, asked


async def test_dns_rebinding_public_then_private_connects_only_to_the_checked_address() -> None:
    resolver, asked = answers(["93.184.216.34"], ["127.0.0.1"])
    network = Recording()
    transport = GuardedTransport(AddressGuard(resolver=resolver), inner=network)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("http://shop.example/orders")
        assert response.status_code == 200 and response.request.url.host == "shop.example"
        assert network.hosts == ["93.184.216.34"] and asked == ["shop.example"]
        # The next connection is checked again; the name now answers loopback, so it is never opened.
        with pytest.raises(AddressRefused, match=r"internal address \(127\.0\.0\.1\)"):
            await client.get("http://shop.example/orders")
    assert network.hosts == ["93.184.216.34"] and asked == ["shop.example", "shop.example"]


async def test_a_name_that_rebinds_after_the_check_reaches_the_checked_service_over_loopback(
    backend: Backend, internal: Internal, rebinding_dns: list[str]
) -> None:
    """The system resolver itself (what httpx would ask) answers the merchant's address first, then an internal
    service's: only the first answer is ever connected to."""
    transport = GuardedTransport(AddressGuard([f"127.0.0.1:{backend.port}"]))
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get(f"http://{REBINDING_NAME}:{backend.port}/items/7")
    assert response.status_code == 200 and response.json()["item"]["id"] == "7"
    assert backend.seen[-1].headers["host"] == f"{REBINDING_NAME}:{backend.port}"
    assert rebinding_dns == [REBINDING_NAME] and internal.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/x",
        "http://localhost/x",
        "http://LOCALHOST./x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://[::]/x",
        "http://0.0.0.0/x",
        "http://0/x",
        "http://2130706433/x",  # decimal 127.0.0.1
        "http://0x7f.1/x",  # hexadecimal, short form
        "http://127.1/x",
        "http://0177.1/x",  # octal, short form
        "http://[64:ff9b::a9fe:a9fe]/x",  # NAT64 of the metadata address
        "http://[2002:a9fe:a9fe::]/x",  # 6to4 of the metadata address
        "http://224.0.0.1/x",
    ],
)
async def test_internal_urls_are_refused_before_any_connection(url: str) -> None:
    network = Recording()
    async with httpx.AsyncClient(transport=GuardedTransport(AddressGuard(), inner=network)) as client:
        with pytest.raises(AddressRefused):
            await client.get(url)
    assert network.hosts == []


async def test_a_public_address_is_connected_to() -> None:
    network = Recording()
    async with httpx.AsyncClient(transport=GuardedTransport(AddressGuard(), inner=network)) as client:
        assert (await client.get("http://93.184.216.34/x")).text == "ok"
    assert network.hosts == ["93.184.216.34"]


async def test_each_redirect_hop_is_checked(backend: Backend, internal: Internal) -> None:
    """Tools do not follow redirects; were a client to, the hop to an internal address is still refused."""
    transport = GuardedTransport(AddressGuard([f"127.0.0.1:{backend.port}"]))
    async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
        with pytest.raises(AddressRefused, match=r"127\.0\.0\.2"):
            await client.get(f"{backend.url}/redirect", params={"to": f"http://{ADDRESS}:{backend.port}/"})
    assert backend.paths() == ["/redirect"] and internal.connections == 0


async def test_the_next_checked_address_is_tried_when_one_does_not_connect(backend: Backend) -> None:
    async def two(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.3"), ipaddress.ip_address("127.0.0.1")]  # nothing on 127.0.0.3

    guard = AddressGuard([f"shop.test:{backend.port}"], resolver=two)
    async with httpx.AsyncClient(transport=GuardedTransport(guard)) as client:
        response = await client.get(f"http://shop.test:{backend.port}/items/1")
    assert response.status_code == 200 and backend.seen[-1].headers["host"] == f"shop.test:{backend.port}"


def test_an_httpx_without_the_pool_hook_is_refused_rather_than_left_unguarded(monkeypatch: pytest.MonkeyPatch) -> None:
    def pool_elsewhere(self: httpx.AsyncHTTPTransport, **kwargs: Any) -> None:
        self._elsewhere = object()  # type: ignore[attr-defined]

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "__init__", pool_elsewhere)
    with pytest.raises(ConfigError, match="no connection pool to guard"):
        GuardedTransport(AddressGuard())


async def test_unix_sockets_are_refused() -> None:
    with pytest.raises(AddressRefused, match="unix sockets"):
        await GuardedBackend(AddressGuard()).connect_unix_socket("/var/run/docker.sock")


# --- TLS: the name is sent (SNI) and verified on every connection, also when names share an address ---


async def _echo_host(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    host = dict(scope["headers"]).get(b"host", b"")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": host})


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[int, trustme.CA]]:
    """An HTTPS server on 127.0.0.1 whose certificate is for ``a.test`` only; answers with the Host header."""
    ca = trustme.CA()
    port = free_port()
    with ca.issue_cert("a.test").private_key_and_cert_chain_pem.tempfile() as pem:
        config = uvicorn.Config(
            _echo_host, host="127.0.0.1", port=port, ssl_certfile=pem, ssl_keyfile=pem, log_level="warning"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "TLS server did not start"
            time.sleep(0.02)
    yield port, ca
    server.should_exit = True
    thread.join(10)


async def test_tls_checks_each_name_even_when_names_share_an_address(tls_server: tuple[int, trustme.CA]) -> None:
    """a.test and b.test both resolve to the server; its certificate is for a.test. A connection verified for
    a.test must not be reused for b.test (a pool keyed by address would): b.test fails its own certificate check."""
    port, ca = tls_server
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    resolver, _ = answers(["127.0.0.1"])
    guard = AddressGuard([f"127.0.0.1:{port}"], resolver=resolver)
    async with httpx.AsyncClient(transport=GuardedTransport(guard, verify=trust)) as client:
        first = await client.get(f"https://a.test:{port}/")
        assert (first.status_code, first.text) == (200, f"a.test:{port}")
        with pytest.raises(httpx.ConnectError, match="certificate"):
            await client.get(f"https://b.test:{port}/")
