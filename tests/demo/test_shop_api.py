"""The demo merchant API over httpx.ASGITransport: every endpoint, per-user copies and the business rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from kefu.demo.shop.api import create_shop_app
from kefu.demo.shop.data import ShopStore

DELIVERED, SHIPPED, PAID, OLD = "DD20261101001", "DD20261105002", "DD20261110003", "DD20261001004"
# The user the caller (kefu's tool layer) acts for.
U1, U2 = {"X-Shop-User": "u1"}, {"X-Shop-User": "u2"}


@pytest.fixture
async def shop() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_shop_app(ShopStore()))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        yield client


async def test_shop_lists_the_seed_orders_newest_first(shop: httpx.AsyncClient) -> None:
    orders = (await shop.get("/orders", headers=U1)).json()["orders"]
    assert [o["order_id"] for o in orders] == [PAID, SHIPPED, DELIVERED, OLD]
    first = orders[2]
    assert first["status"] == "delivered" and first["status_text"] == "已签收"
    assert first["items_summary"] == "羊毛开衫 ×1"


async def test_shop_order_detail(shop: httpx.AsyncClient) -> None:
    order = (await shop.get(f"/orders/{DELIVERED}", headers=U1)).json()
    assert order["items"] == [{"sku": "KN-WOOL-01", "name": "羊毛开衫", "qty": 1, "price": 399.0}]
    assert order["total"] == 399.0 and order["address"] == "上海市浦东新区世纪大道100号"
    delivered = datetime.fromisoformat(order["delivered_at"])
    assert timedelta(days=2.9) < datetime.now(UTC) - delivered < timedelta(days=3.1)
    assert "13800001234" not in str(order)


async def test_shop_unknown_order_is_404(shop: httpx.AsyncClient) -> None:
    response = await shop.get("/orders/DD000", headers=U1)
    assert (response.status_code, response.json()) == (404, {"error": "not_found"})


async def test_shop_verify_phone(shop: httpx.AsyncClient) -> None:
    url = f"/orders/{PAID}/verify-phone"
    assert (await shop.post(url, json={"phone_last4": "1234"}, headers=U1)).json() == {"verified": True}
    assert (await shop.post(url, json={"phone_last4": "9999"}, headers=U1)).json() == {"verified": False}
    bad = await shop.post(url, json={"phone_last4": "12a"}, headers=U1)
    assert bad.status_code == 422 and "phone_last4" in bad.text


async def test_shop_parcel_in_transit_and_not_shipped(shop: httpx.AsyncClient) -> None:
    parcel = (await shop.get(f"/orders/{SHIPPED}/parcel", headers=U1)).json()
    assert parcel["shipped"] and parcel["carrier"] == "顺丰速运" and parcel["tracking_no"] == "SF1234567890"
    assert len(parcel["events"]) == 4 and parcel["latest"] == parcel["events"][0]
    assert parcel["events"][0]["time"] > parcel["events"][-1]["time"]
    pending = (await shop.get(f"/orders/{PAID}/parcel", headers=U1)).json()
    assert pending["shipped"] is False and pending["events"] == [] and pending["latest"] is None


async def test_shop_return_eligibility_follows_the_7_day_window(shop: httpx.AsyncClient) -> None:
    async def check(order_id: str) -> dict[str, object]:
        response = await shop.get(f"/orders/{order_id}/return-eligibility", headers=U1)
        data: dict[str, object] = response.json()
        return data

    ok = await check(DELIVERED)
    assert ok["eligible"] is True and ok["reason"] == "ok" and ok["deadline"]
    assert (await check(OLD))["reason"] == "outside_window"
    assert (await check(SHIPPED))["reason"] == "not_delivered"


async def test_shop_return_window_moves_with_the_clock() -> None:
    later = datetime.now(UTC) + timedelta(days=5)
    store = ShopStore(datetime.now(UTC), clock=lambda: later)
    order = store.order("u1", DELIVERED)
    assert order is not None and store.return_check(order)[0] == "outside_window"


async def test_shop_create_return_then_already_requested(shop: httpx.AsyncClient) -> None:
    body = {"order_id": DELIVERED, "reason": "不想要了"}
    created = await shop.post("/returns", json=body, headers=U1)
    assert created.status_code == 201
    assert created.json()["refund_amount"] == 399.0 and created.json()["return_id"].startswith("RT")
    again = await shop.post("/returns", json=body, headers=U1)
    assert (again.status_code, again.json()) == (409, {"error": "already_requested"})
    check = await shop.get(f"/orders/{DELIVERED}/return-eligibility", headers=U1)
    assert check.json()["reason"] == "already_requested"


@pytest.mark.parametrize(("order_id", "code"), [(OLD, "outside_window"), (SHIPPED, "not_delivered")])
async def test_shop_create_return_refused(shop: httpx.AsyncClient, order_id: str, code: str) -> None:
    response = await shop.post("/returns", json={"order_id": order_id, "reason": "x"}, headers=U1)
    assert (response.status_code, response.json()) == (409, {"error": code})


async def test_shop_change_address_only_before_shipping(shop: httpx.AsyncClient) -> None:
    new = "北京市朝阳区建国路88号"
    changed = await shop.patch(f"/orders/{PAID}/address", json={"address": new}, headers=U1)
    assert changed.json() == {"order_id": PAID, "address": new}
    assert (await shop.get(f"/orders/{PAID}", headers=U1)).json()["address"] == new
    refused = await shop.patch(f"/orders/{SHIPPED}/address", json={"address": new}, headers=U1)
    assert (refused.status_code, refused.json()) == (409, {"error": "already_shipped"})


async def test_shop_users_have_separate_copies(shop: httpx.AsyncClient) -> None:
    await shop.patch(f"/orders/{PAID}/address", json={"address": "北京市朝阳区建国路88号"}, headers=U1)
    await shop.post("/returns", json={"order_id": DELIVERED, "reason": "x"}, headers=U1)
    other = (await shop.get(f"/orders/{PAID}", headers=U2)).json()
    assert other["address"] == "上海市浦东新区世纪大道100号"
    check = await shop.get(f"/orders/{DELIVERED}/return-eligibility", headers=U2)
    assert check.json()["eligible"] is True


async def test_shop_products(shop: httpx.AsyncClient) -> None:
    products = (await shop.get("/products")).json()["products"]
    assert 5 <= len(products) <= 8 and {"sku", "name", "price", "stock"} <= set(products[0])
    one = (await shop.get("/products/KN-WOOL-01")).json()
    assert one["name"] == "羊毛开衫" and one["price"] == 399.0
    assert (await shop.get("/products/NOPE")).status_code == 404


async def test_shop_missing_user_is_422(shop: httpx.AsyncClient) -> None:
    response = await shop.get("/orders")
    assert response.status_code == 422 and "x-shop-user" in response.text.lower()


async def test_shop_never_takes_the_user_from_the_query_or_the_body(shop: httpx.AsyncClient) -> None:
    # u2 asks for u1's orders by naming u1 where the old API read the user from.
    assert (await shop.get("/orders", params={"user_id": "u1"})).status_code == 422
    await shop.patch(f"/orders/{PAID}/address", json={"address": "北京市朝阳区建国路88号"}, headers=U1)
    as_u2 = await shop.get(f"/orders/{PAID}", params={"user_id": "u1"}, headers=U2)
    assert as_u2.json()["address"] == "上海市浦东新区世纪大道100号"
    body = {"user_id": "u1", "order_id": DELIVERED, "reason": "x"}
    assert (await shop.post("/returns", json=body, headers=U2)).status_code == 201
    check = await shop.get(f"/orders/{DELIVERED}/return-eligibility", headers=U1)
    assert check.json()["eligible"] is True  # u1's order was not touched


async def test_shop_token_checked_when_set() -> None:
    transport = httpx.ASGITransport(app=create_shop_app(ShopStore(), token="s3cret"))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        assert (await client.get("/products")).status_code == 401
        assert (await client.get("/products", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await client.get("/products", headers={"Authorization": "Bearer s3cret"})).status_code == 200


async def test_refused_return_shows_the_deadline_as_a_shopper_reads_it() -> None:
    now = datetime(2026, 12, 20, 4, 0, tzinfo=UTC)
    store = ShopStore(now, clock=lambda: now)
    transport = httpx.ASGITransport(app=create_shop_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        data = (await client.get(f"/orders/{OLD}/return-eligibility", headers=U1)).json()
    # Delivered 20 days before 12:00 China time on 12-20 → 11-30; the window ends 7 days later.
    assert data["reason"] == "outside_window"
    assert data["deadline"] == "2026-12-07"  # China-time date, no "T04:00:00+08:00" for the shopper to read


async def test_no_deadline_for_an_undelivered_order(shop: httpx.AsyncClient) -> None:
    data = (await shop.get(f"/orders/{SHIPPED}/return-eligibility", headers=U1)).json()
    assert data["deadline"] is None
