"""Tool templates in URLs: argument values are percent-encoded and cannot change the path."""

from __future__ import annotations

import pytest

from kefu.errors import UnsafeArgument
from kefu.tools.template import climbs, render

ENV = {"BASE": "https://shop.example/api"}


@pytest.mark.parametrize(
    "value",
    [
        ".",
        "..",
        "../admin",
        "a/../../admin",
        "..\\admin",  # a backslash is a separator to some servers
        "%2e%2e",  # decoded by the server or a proxy in front of it
        "%2E%2E%2Fadmin",
        "%252e%252e",  # decoded twice
        "..;jsessionid=1",  # path parameters: "..;" is ".." to some servlet containers
        " .. ",
        "..%3Fx",  # a proxy that decodes %3F makes the rest a query: ".." is then a segment of its own
        "..%23",
        "..\r\n",  # control characters some servers drop
        "\uff0e\uff0e",  # full-width dots, folded to ".." by servers that NFKC-normalise paths
    ],
)
def test_dot_segments_are_found(value: str) -> None:
    assert climbs(value)


@pytest.mark.parametrize("value", ["a.b", "...", "v1.2", "a/b", "红 1", "", "DD20261101001", ".hidden"])
def test_values_that_do_not_climb(value: str) -> None:
    assert not climbs(value)


@pytest.mark.parametrize("value", ["..", "../admin", "%2e%2e", "..%2Fadmin"])
def test_a_url_argument_that_would_climb_is_refused(value: str) -> None:
    with pytest.raises(UnsafeArgument, match=r"^order_id: '\.' and '\.\.' cannot be part of a URL path$"):
        render("{env.BASE}/orders/{order_id}", {"order_id": value}, ENV, url=True)


@pytest.mark.parametrize(
    ("value", "filled"),
    [
        ("a/b?c=1#d", "https://shop.example/api/orders/a%2Fb%3Fc%3D1%23d"),
        ("100%", "https://shop.example/api/orders/100%25"),
        ("红 1", "https://shop.example/api/orders/%E7%BA%A2%201"),
        ("a.b", "https://shop.example/api/orders/a.b"),
    ],
)
def test_url_arguments_are_percent_encoded_but_env_values_are_not(value: str, filled: str) -> None:
    assert render("{env.BASE}/orders/{order_id}", {"order_id": value}, ENV, url=True) == filled


def test_outside_urls_values_are_inserted_as_they_are() -> None:
    assert render("Bearer {token} {env.BASE}", {"token": "../a b"}, ENV) == "Bearer ../a b https://shop.example/api"
