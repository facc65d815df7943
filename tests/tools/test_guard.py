"""The address guard (SSRF) and URL building: internal addresses need the allow-list; arguments stay in place."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from kefu.config import Settings
from kefu.runtime import tool_allow_hosts
from kefu.tools.guard import AddressGuard, IPAddress, pin
from kefu.tools.http import build_request
from kefu.tools.spec import ToolDef
from tests.tools.backend import Backend


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://192.168.0.10/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
        "http://224.0.0.1/x",
    ],
)
async def test_guard_refuses_internal_addresses(url: str) -> None:
    assert await AddressGuard().check(httpx.URL(url)) is not None


async def test_guard_refuses_other_schemes() -> None:
    reason = await AddressGuard(["127.0.0.1"]).check(httpx.URL("file:///etc/passwd"))
    assert reason is not None and "scheme" in reason


async def test_guard_allows_public_address() -> None:
    assert await AddressGuard().check(httpx.URL("https://93.184.216.34/x")) is None


async def test_guard_allow_list_by_host_or_host_port() -> None:
    by_port = AddressGuard(["127.0.0.1:8000"])
    assert await by_port.check(httpx.URL("http://127.0.0.1:8000/x")) is None
    assert await by_port.check(httpx.URL("http://127.0.0.1:9000/x")) is not None
    assert await AddressGuard(["LOCALHOST"]).check(httpx.URL("http://localhost:1234/x")) is None


def test_build_request_encodes_arguments_in_the_path() -> None:
    tool = ToolDef(name="t", risk="read", url="{env.BASE}/orders/{order_id}", bind={"order_id": "user.id"})
    client = httpx.AsyncClient()
    request = build_request(tool, client, {"order_id": "../admin?x=1"}, {"BASE": "https://shop.example/api"})
    assert request.url.raw_path == b"/api/orders/..%2Fadmin%3Fx%3D1"
    assert request.url.host == "shop.example"


# --- the findings of issue 14: rebinding, failed lookups, the demo allow-list, dot segments ---


async def test_the_checked_address_is_the_one_called_not_a_second_dns_answer() -> None:
    """DNS rebinding: the first answer is public (checked), a second would be internal. Only one lookup happens,
    and the request goes to the checked address with the name kept for Host and TLS."""
    answers = [[ipaddress.ip_address("93.184.216.34")], [ipaddress.ip_address("127.0.0.1")]]
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return answers[len(asked) - 1]

    guard = AddressGuard(resolver=rebinding)
    client = httpx.AsyncClient()
    request = client.build_request("GET", "https://shop.example/api/orders")
    approval = await guard.approve(request.url)
    assert approval.refusal is None and approval.address == "93.184.216.34"
    pin(request, approval.address)
    assert asked == ["shop.example"]
    assert request.url.host == "93.184.216.34" and request.headers["Host"] == "shop.example"
    assert request.extensions["sni_hostname"] == "shop.example"
    await client.aclose()


async def test_a_pinned_request_reaches_the_pinned_address(backend: Backend) -> None:
    """The name in the URL does not even resolve: only the pinned address can have answered."""
    async with httpx.AsyncClient() as client:
        request = client.build_request("GET", f"http://merchant.invalid:{backend.port}/items/7")
        pin(request, "127.0.0.1")
        response = await client.send(request)
    assert response.status_code == 200
    assert (
        backend.seen[-1].path == "/items/7" and backend.seen[-1].headers["host"] == f"merchant.invalid:{backend.port}"
    )


async def test_a_failed_lookup_is_refused() -> None:
    async def broken(host: str, port: int) -> list[IPAddress]:
        raise OSError("Name or service not known")

    reason = await AddressGuard(resolver=broken).check(httpx.URL("https://shop.example/x"))
    assert reason is not None and "could not be resolved" in reason
    assert await AddressGuard().check(httpx.URL("http://no-such-host.invalid/x")) is not None


@pytest.mark.parametrize("url", ["http://2130706433/x", "http://0177.0.0.1/x", "http://0x7f.1/x", "http://127.1/x"])
async def test_other_spellings_of_loopback_are_refused(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return  # httpx will not even build it (run_http answers "refused: invalid URL")
    assert await AddressGuard().check(parsed) is not None


def test_demo_mode_allows_the_demo_shop_only() -> None:
    settings = Settings(demo=True, demo_shop_url="http://127.0.0.1:8000/demo/shop-api")
    hosts = tool_allow_hosts(settings)
    assert hosts == ["127.0.0.1:8000"]


async def test_demo_allow_list_does_not_open_other_loopback_services() -> None:
    guard = AddressGuard(tool_allow_hosts(Settings(demo=True, demo_shop_url="http://127.0.0.1:8000/shop")))
    assert await guard.check(httpx.URL("http://127.0.0.1:8000/shop/orders")) is None
    assert await guard.check(httpx.URL("http://127.0.0.1:6379/")) is not None  # Redis
    assert await guard.check(httpx.URL("http://127.0.0.1/")) is not None


@pytest.mark.parametrize(
    ("value", "raw"),
    [
        ("..", b"/api/orders/%2E%2E"),
        (".", b"/api/orders/%2E"),
        ("%2e%2e", b"/api/orders/%252e%252e"),
        ("a.b", b"/api/orders/a.b"),
    ],
)
def test_dot_segments_in_arguments_cannot_climb_the_path(value: str, raw: bytes) -> None:
    tool = ToolDef(name="t", risk="read", url="{env.BASE}/orders/{order_id}", bind={"order_id": "user.id"})
    client = httpx.AsyncClient()
    request = build_request(tool, client, {"order_id": value}, {"BASE": "https://shop.example/api"})
    assert request.url.raw_path == raw
