"""Seed data and the in-memory store of the demo shop.

Every user gets a private copy of the same four orders the first time they ask, so any visitor can try every
flow (track, return, change an address) without seeing anyone else's changes. Dates are relative to when the
store was created (process start), so "delivered 3 days ago" stays true.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

CHINA = timezone(timedelta(hours=8))
RETURN_WINDOW = timedelta(days=7)
PHONE_ON_FILE = "13800001234"
MAX_USERS = 10_000  # oldest visitors' copies are dropped beyond this

Status = Literal["paid", "shipped", "delivered"]
STATUS_TEXT: dict[str, str] = {"paid": "已付款，待发货", "shipped": "运输中", "delivered": "已签收"}
ReturnCheck = Literal["ok", "not_delivered", "outside_window", "already_requested"]


@dataclass(frozen=True, slots=True)
class Product:
    """A catalog entry."""

    sku: str
    name: str
    price: float
    stock: int
    description: str


# An apparel shop: the same catalog the demo page (kefu/web/index.html) shows and the FAQ (kefu/demo/kb) describes;
# tests/demo/test_consistency.py keeps them in step.
PRODUCTS: tuple[Product, ...] = (
    Product("KN-WOOL-01", "羊毛开衫", 399.0, 56, "100% 美利奴羊毛，V 领，米白/燕麦/藏青，S–XXL"),
    Product("SH-RUN-02", "轻跑运动鞋", 459.0, 12, "透气网面，尺码 36-44"),
    Product("SC-WOOL-03", "羊毛围巾", 89.0, 230, "羊毛混纺，180×30cm，燕麦/炭灰"),
    Product("TS-COT-01", "纯棉T恤", 99.0, 0, "100% 新疆长绒棉，白/黑/灰（暂时缺货）"),
    Product("JN-STR-05", "水洗直筒牛仔裤", 259.0, 8, "微弹牛仔布，尺码 26-34"),
    Product("DJ-LITE-06", "轻薄羽绒服", 599.0, 40, "白鸭绒含绒量 90%，可收纳"),
)


@dataclass(slots=True)
class Event:
    """One tracking event."""

    time: datetime
    location: str
    description: str


@dataclass(slots=True)
class Order:
    """One order with its parcel."""

    order_id: str
    status: Status
    items: list[tuple[Product, int]]
    address: str
    created_at: datetime
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    carrier: str | None = None
    tracking_no: str | None = None
    events: list[Event] = field(default_factory=list)  # newest first
    return_id: str | None = None

    @property
    def total(self) -> float:
        """The order's total price."""
        return round(sum(p.price * qty for p, qty in self.items), 2)

    @property
    def items_summary(self) -> str:
        """``羊毛开衫 ×1``, items joined with ``、``."""
        return "、".join(f"{p.name} ×{qty}" for p, qty in self.items)


def _product(sku: str) -> Product:
    return next(p for p in PRODUCTS if p.sku == sku)


def seed_orders(now: datetime) -> dict[str, Order]:
    """The demo orders, dated relative to ``now`` (see docs/tools.md, "Demo shop seed data")."""
    at = now.astimezone(CHINA).replace(microsecond=0)
    address = "上海市浦东新区世纪大道100号"

    def ago(days: float, hour: int = 0) -> datetime:
        return at - timedelta(days=days, hours=hour)

    orders = [
        Order("DD20261101001", "delivered", [(_product("KN-WOOL-01"), 1)], address, ago(6), ago(5), ago(3),
              "顺丰速运", "SF1122334455", [
                  Event(ago(3), "上海市浦东新区", "已签收，签收人：本人"),
                  Event(ago(3, 4), "上海市浦东新区", "快递员正在派件"),
                  Event(ago(4), "上海转运中心", "已到达上海转运中心"),
                  Event(ago(5), "深圳市南山区", "顺丰已揽收"),
              ]),
        Order("DD20261105002", "shipped", [(_product("SH-RUN-02"), 1)], address, ago(3), ago(2), None,
              "顺丰速运", "SF1234567890", [
                  Event(ago(0, 3), "上海转运中心", "已到达上海转运中心，准备派送"),
                  Event(ago(1), "杭州转运中心", "已离开杭州转运中心，发往上海"),
                  Event(ago(1, 10), "深圳转运中心", "已离开深圳转运中心"),
                  Event(ago(2), "深圳市南山区", "顺丰已揽收"),
              ]),
        Order("DD20261110003", "paid", [(_product("SC-WOOL-03"), 2)], address, ago(0, 5)),
        Order("DD20261001004", "delivered", [(_product("TS-COT-01"), 2)], address, ago(24), ago(23), ago(20),
              "中通快递", "ZT7766554433", [
                  Event(ago(20), "上海市浦东新区", "已签收，放至驿站"),
                  Event(ago(21), "上海转运中心", "已到达上海转运中心"),
                  Event(ago(23), "广州市白云区", "中通已揽收"),
              ]),
    ]  # fmt: skip
    return {o.order_id: o for o in orders}


class ShopStore:
    """The shop's state for this process: per-user copies of the seed orders and their return requests."""

    def __init__(self, now: datetime | None = None, *, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.now = now or self.clock()
        self._seed = seed_orders(self.now)
        self._users: OrderedDict[str, dict[str, Order]] = OrderedDict()
        self._returns = 0
        self.phone_on_file = PHONE_ON_FILE
        self.products = PRODUCTS

    def orders(self, user_id: str) -> dict[str, Order]:
        """The user's orders (created from the seed on first use)."""
        orders = self._users.get(user_id)
        if orders is None:
            orders = self._users[user_id] = copy.deepcopy(self._seed)
            while len(self._users) > MAX_USERS:
                self._users.popitem(last=False)
        else:
            self._users.move_to_end(user_id)
        return orders

    def order(self, user_id: str, order_id: str) -> Order | None:
        """One of the user's orders; None for an unknown order or someone else's (indistinguishable)."""
        return self.orders(user_id).get(order_id)

    @staticmethod
    def product(sku: str) -> Product | None:
        """A catalog entry by SKU."""
        return next((p for p in PRODUCTS if p.sku == sku), None)

    def return_check(self, order: Order) -> tuple[ReturnCheck, datetime | None]:
        """Whether the order can be returned now, and until when."""
        if order.status != "delivered" or order.delivered_at is None:
            return "not_delivered", None
        deadline = order.delivered_at + RETURN_WINDOW
        if order.return_id is not None:
            return "already_requested", deadline
        if self.clock() > deadline:
            return "outside_window", deadline
        return "ok", deadline

    def create_return(self, order: Order) -> tuple[ReturnCheck, str | None]:
        """Open a return request; the check result and the new return id (None when refused)."""
        check, _ = self.return_check(order)
        if check != "ok":
            return check, None
        self._returns += 1
        order.return_id = f"RT{order.order_id[2:]}{self._returns:03d}"
        return check, order.return_id
