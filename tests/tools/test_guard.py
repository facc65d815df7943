"""The address guard (SSRF): which addresses count as internal, the allow-list, and lookups that fail closed."""

from __future__ import annotations

import ipaddress
import socket

import httpx
import pytest
from pydantic import ValidationError

from kefu.config import Settings
from kefu.errors import AddressRefused, ConfigError
from kefu.runtime import tool_allow_hosts
from kefu.tools.guard import AddressGuard, IPAddress, allow_list_entry, is_internal, screen


def fixed(*answers: str) -> tuple[AddressGuard, list[str]]:
    """A guard whose resolver answers ``answers`` for every name, and the names it was asked."""
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return [ipaddress.ip_address(a) for a in answers]

    return AddressGuard(resolver=resolver), asked


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.10",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:0:7f00:1",  # IPv4-translated
        "::127.0.0.1",  # IPv4-compatible
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 of the metadata address
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b:1::1",  # local-use NAT64
    ],
)
def test_internal_addresses(address: str) -> None:
    assert is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34", "64:ff9b::5db8:d822"]
)
def test_public_addresses(address: str) -> None:
    assert not is_internal(ipaddress.ip_address(address))


async def test_every_address_of_a_name_is_checked() -> None:
    guard, asked = fixed("93.184.216.34", "10.0.0.7")
    with pytest.raises(AddressRefused, match=r"shop\.example resolves to an internal address \(10\.0\.0\.7\)"):
        await guard.addresses("shop.example", 443)
    assert asked == ["shop.example"]


async def test_public_answers_are_returned_in_order() -> None:
    guard, _ = fixed("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")
    found = await guard.addresses("shop.example", 443)
    assert [str(ip) for ip in found] == ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]


# --- a lookup that fails is a refusal (fail closed), whatever the resolver raised ---


@pytest.mark.parametrize(
    "failure", [socket.gaierror(-2, "Name or service not known"), OSError("network down"), UnicodeError("label")]
)
async def test_a_failed_lookup_is_refused(failure: Exception) -> None:
    async def broken(host: str, port: int) -> list[IPAddress]:
        raise failure

    with pytest.raises(AddressRefused, match=r"^shop\.example could not be resolved$"):
        await AddressGuard(resolver=broken).addresses("shop.example", 443)


async def test_an_empty_answer_is_refused() -> None:
    guard, _ = fixed()
    with pytest.raises(AddressRefused, match="could not be resolved"):
        await guard.addresses("shop.example", 443)


@pytest.mark.parametrize("host", ["no-such-host.invalid", "a..b"])
async def test_names_the_system_cannot_resolve_are_refused(host: str) -> None:
    """``a..b`` makes getaddrinfo raise UnicodeError, not OSError: that must be a refusal too, not a crash."""
    with pytest.raises(AddressRefused, match="could not be resolved"):
        await AddressGuard().addresses(host, 80)


def test_screen_refuses_other_schemes_and_missing_hosts() -> None:
    with pytest.raises(AddressRefused, match="scheme 'file'"):
        screen(httpx.URL("file:///etc/passwd"))
    with pytest.raises(AddressRefused, match="no host"):
        screen(httpx.URL("http:///x"))
    screen(httpx.URL("https://shop.example/x"))  # no exception: may go ahead


# --- the allow-list: exact host:port pairs; a bare host means its ports 80 and 443 ---


@pytest.mark.parametrize(
    ("entry", "pairs"),
    [
        ("127.0.0.1:8000", [("127.0.0.1", 8000)]),
        (" Shop.Internal:80 ", [("shop.internal", 80)]),
        ("shop.internal", [("shop.internal", 80), ("shop.internal", 443)]),
        ("[::1]:8080", [("::1", 8080)]),
    ],
)
def test_allow_list_entries(entry: str, pairs: list[tuple[str, int]]) -> None:
    assert allow_list_entry(entry) == pairs


@pytest.mark.parametrize("entry", ["http://shop.internal", "shop.internal/api", "shop.internal:http", "u@shop:1"])
def test_allow_list_entries_that_are_not_host_or_host_port(entry: str) -> None:
    with pytest.raises(ConfigError, match="is not host or host:port"):
        allow_list_entry(entry)


def test_the_allow_list_setting_is_checked_when_settings_load() -> None:
    assert Settings(tools_allow_hosts="shop.internal:8080, [::1]:9000 ,bare").tools_allow_host_list == [
        "shop.internal:8080",
        "[::1]:9000",
        "bare",
    ]
    for bad in ("http://shop.internal:8080", "shop.internal/api", "shop.internal:http", "u@shop:1"):
        with pytest.raises(ValidationError, match="is not host or host:port"):
            Settings(tools_allow_hosts=f"ok:1,{bad}")


async def test_allow_list_is_per_port() -> None:
    async def loopback(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.1")]

    guard = AddressGuard(["127.0.0.1:8000", "shop.internal:9000", "bare.internal"], resolver=loopback)
    assert [str(ip) for ip in await guard.addresses("127.0.0.1", 8000)] == ["127.0.0.1"]
    assert await guard.addresses("shop.internal", 9000)  # by name
    assert await guard.addresses("other.name", 8000)  # by address: the same service, whatever the name
    assert await guard.addresses("bare.internal", 443)
    for host, port in [("127.0.0.1", 6379), ("shop.internal", 6379), ("bare.internal", 6379), ("other.name", 9000)]:
        with pytest.raises(AddressRefused, match="internal address"):
            await guard.addresses(host, port)


async def test_an_allowed_address_does_not_open_the_other_answers() -> None:
    async def mixed(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.0.0.9")]

    with pytest.raises(AddressRefused, match=r"10\.0\.0\.9"):
        await AddressGuard(["127.0.0.1:8000"], resolver=mixed).addresses("shop.example", 8000)


# --- demo mode allows exactly the demo shop's host:port ---


def test_demo_mode_allows_the_demo_shop_only() -> None:
    settings = Settings(demo=True, demo_shop_url="http://127.0.0.1:8000/demo/shop-api")
    assert tool_allow_hosts(settings) == ["127.0.0.1:8000"]


@pytest.mark.parametrize("shop", ["http://127.0.0.1:8000/shop", "http://localhost:8000/shop"])
async def test_demo_allow_list_does_not_open_other_loopback_services(shop: str) -> None:
    guard = AddressGuard(tool_allow_hosts(Settings(demo=True, demo_shop_url=shop)))
    host = httpx.URL(shop).host
    assert await guard.addresses(host, 8000)
    for port in (6379, 80, 443, 5432):  # Redis, anything on the standard ports, PostgreSQL
        with pytest.raises(AddressRefused, match="internal address"):
            await guard.addresses(host, port)
