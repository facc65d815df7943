"""The address guard (SSRF) and URL building: internal addresses need the allow-list; arguments stay in place."""

from __future__ import annotations

import httpx
import pytest

from kefu.tools.guard import AddressGuard
from kefu.tools.http import build_request
from kefu.tools.spec import ToolDef


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
