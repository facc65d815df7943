"""The demo bot's tool files end to end: the registry calls the demo shop through an in-process mount."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from kefu.bot.functions import model_functions
from kefu.config import DEMO_BOT_DIR, Settings
from kefu.content.problems import Problems
from kefu.demo.shop import MOUNT_PATH, shop_token
from kefu.demo.shop.api import create_shop_app
from kefu.demo.shop.data import ShopStore
from kefu.runtime import tool_env
from kefu.tools.base import ToolContext
from kefu.tools.registry import ToolRegistry

ALICE = ToolContext(user_id="visitor-alice", session_id="s-a", turn_id="t-1")
BOB = ToolContext(user_id="visitor-bob", session_id="s-b", turn_id="t-2")
DELIVERED, SHIPPED, PAID, OLD = "DD20261101001", "DD20261105002", "DD20261110003", "DD20261001004"
EXPECTED = {
    "find_orders": "read",
    "get_order": "read",
    "verify_phone": "read",
    "track_parcel": "read",
    "check_return_eligibility": "read",
    "create_return": "write",
    "change_address": "write",
    "get_product": "read",
}


@pytest.fixture
async def tools() -> AsyncIterator[ToolRegistry]:
    # Served like `kefu serve` does (under MOUNT_PATH), reached through an in-process mount instead of a socket.
    app = create_shop_app(ShopStore(), token="demo-token", prefix=MOUNT_PATH)
    env = {"KEFU_DEMO_SHOP_URL": f"http://shop.internal{MOUNT_PATH}", "KEFU_DEMO_SHOP_TOKEN": "demo-token"}
    mounts = {"http://shop.internal": httpx.ASGITransport(app=app)}
    problems = Problems()
    registry = ToolRegistry.load(DEMO_BOT_DIR, problems, env=env, mounts=mounts)
    assert problems.items == [], problems.report()
    yield registry
    await registry.aclose()


def test_demo_tools_have_the_agreed_names_and_risks(tools: ToolRegistry) -> None:
    assert tools.risks() == EXPECTED
    params = {f.name: set(f.parameters.get("properties", {})) for f in model_functions(tools)}
    assert params == {
        "find_orders": set(),
        "get_order": {"order_id"},
        "verify_phone": {"order_id", "phone_last4"},
        "track_parcel": {"order_id"},
        "check_return_eligibility": {"order_id"},
        "create_return": {"order_id", "reason"},
        "change_address": {"order_id", "address"},
        "get_product": {"sku"},
    }


async def test_demo_find_and_get_order(tools: ToolRegistry) -> None:
    found = await tools.call("find_orders", {"user_id": "someone-else"}, ALICE)
    assert found.ok and [o["order_id"] for o in found.data["orders"]] == [PAID, SHIPPED, DELIVERED, OLD]
    order = await tools.call("get_order", {"order_id": DELIVERED}, ALICE)
    assert order.ok and order.data["total"] == 399.0 and order.data["status"] == "delivered"
    missing = await tools.call("get_order", {"order_id": "DD404"}, ALICE)
    assert (missing.error, missing.status) == ("not_found", 404)


async def test_demo_verify_phone_and_track(tools: ToolRegistry) -> None:
    verified = await tools.call("verify_phone", {"order_id": PAID, "phone_last4": "1234"}, ALICE)
    assert verified.ok and verified.data == {"verified": True}
    wrong = await tools.call("verify_phone", {"order_id": PAID, "phone_last4": "12345"}, ALICE)
    assert wrong.error == "invalid_arguments"
    parcel = await tools.call("track_parcel", {"order_id": SHIPPED}, ALICE)
    assert parcel.ok and parcel.data["tracking_no"] == "SF1234567890" and len(parcel.data["events"]) == 4


async def test_demo_return_flow(tools: ToolRegistry) -> None:
    check = await tools.call("check_return_eligibility", {"order_id": DELIVERED}, ALICE)
    assert check.ok and check.data["eligible"] is True
    args = {"order_id": DELIVERED, "reason": "开衫有破洞"}
    assert (await tools.call("create_return", args, ALICE)).error == "not_confirmed"
    created = await tools.call("create_return", args, ALICE, confirmed=True)
    assert created.ok and created.status == 201 and created.data["refund_amount"] == 399.0
    again = await tools.call("create_return", args, ALICE, confirmed=True)
    assert (again.ok, again.error, again.status) == (False, "already_requested", 409)
    old = await tools.call("create_return", {"order_id": OLD, "reason": "x"}, ALICE, confirmed=True)
    assert old.error == "outside_window"
    bob = await tools.call("check_return_eligibility", {"order_id": DELIVERED}, BOB)
    assert bob.data["eligible"] is True  # Bob's copy of the order is untouched


async def test_demo_change_address(tools: ToolRegistry) -> None:
    new = "北京市朝阳区建国路88号"
    changed = await tools.call("change_address", {"order_id": PAID, "address": new}, ALICE, confirmed=True)
    assert changed.ok and changed.data == {"order_id": PAID, "address": new}
    shipped = await tools.call("change_address", {"order_id": SHIPPED, "address": new}, ALICE, confirmed=True)
    assert (shipped.error, shipped.status) == ("already_shipped", 409)


async def test_demo_get_product(tools: ToolRegistry) -> None:
    product = await tools.call("get_product", {"sku": "JN-STR-05"}, ALICE)
    assert product.ok and product.data["name"] == "水洗直筒牛仔裤"
    assert (await tools.call("get_product", {"sku": "NOPE"}, ALICE)).error == "not_found"


async def test_demo_tools_work_without_a_shop_token() -> None:
    app = create_shop_app(ShopStore(), prefix=MOUNT_PATH)
    mounts = {"http://shop.internal": httpx.ASGITransport(app=app)}
    problems = Problems()
    env = {"KEFU_DEMO_SHOP_URL": f"http://shop.internal{MOUNT_PATH}"}
    registry = ToolRegistry.load(DEMO_BOT_DIR, problems, env=env, mounts=mounts)
    try:
        assert problems.items == [], problems.report()  # the token is optional: no warning
        assert (await registry.call("get_product", {"sku": "SC-WOOL-03"}, ALICE)).ok
    finally:
        await registry.aclose()


async def test_demo_tools_without_url_are_not_configured() -> None:
    problems = Problems()
    registry = ToolRegistry.load(DEMO_BOT_DIR, problems, env={})
    try:
        assert [p.severity for p in problems.items] == ["warning"]
        assert "KEFU_DEMO_SHOP_URL is not set" in problems.items[0].message
        result = await registry.call("find_orders", {}, ALICE)
        assert (result.error, result.message) == ("not_configured", "set KEFU_DEMO_SHOP_URL")
    finally:
        await registry.aclose()


async def test_app_mounts_shop_only_in_demo_mode_and_only_for_its_token() -> None:
    from kefu.app import create_app

    for demo, status in ((True, 200), (False, 404)):
        settings = Settings(demo=demo, jwt_secret="x" * 32, _env_file=None)
        app = create_app(settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kefu.test") as client:
            orders = f"{MOUNT_PATH}/orders"
            token = {"Authorization": f"Bearer {shop_token(settings)}"} if demo else {}
            response = await client.get(f"{MOUNT_PATH}/products/KN-WOOL-01", headers=token)
            assert response.status_code == status
            if demo:
                # Anyone on the network reaches the mount: without the token, nobody's orders (nor anything else).
                for headers in ({}, {"Authorization": "Bearer guess"}):
                    refused = await client.get(orders, params={"user_id": "visitor-a"}, headers=headers)
                    assert refused.status_code == 401, refused.text
                mine = await client.get(orders, headers={**token, "X-Shop-User": "visitor-a"})
                assert mine.status_code == 200 and mine.json()["orders"]


def test_tools_get_the_token_of_the_mounted_shop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEFU_DEMO_SHOP_TOKEN", raising=False)
    settings = Settings(demo=True, jwt_secret="x" * 32, demo_shop_url="http://127.0.0.1:1/demo/shop-api")
    env = tool_env(settings)
    assert env["KEFU_DEMO_SHOP_TOKEN"] == shop_token(settings) and len(env["KEFU_DEMO_SHOP_TOKEN"]) >= 32
    # Every worker of one server derives the same; another secret gives another token.
    assert shop_token(settings) == shop_token(Settings(demo=True, jwt_secret="x" * 32))
    assert shop_token(settings) != shop_token(Settings(demo=True, jwt_secret="y" * 32))
    assert shop_token(Settings(demo=True, demo_shop_token="chosen")) == "chosen"
