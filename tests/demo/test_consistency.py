"""The bundled demo agrees with itself: the page, the FAQ, the handoff hours, the flows and the shop data.

Each test parses the files a new user reads and asserts on one fact they all state.
"""

from __future__ import annotations

import csv
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from kefu.demo.shop.data import PRODUCTS, seed_orders

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "kefu" / "web" / "index.html"
DEMO = ROOT / "kefu" / "demo"
HOURS = re.compile(r"(\d{1,2}):(\d{2})\s*[–—~-]\s*(\d{1,2}):(\d{2})")


class _Page(HTMLParser):
    """The product cards (name, price), every text node and the widget's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[dict[str, str]] = []
        self.texts: list[str] = []
        self.widget: dict[str, str] = {}
        self.meta: dict[str, str] = {}
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "li" and "card" in classes:
            self.cards.append({})
        elif self.cards and tag == "h3":
            self._in = "name"
        elif self.cards and tag == "p" and "price" in classes:
            self._in = "price"
        elif tag == "script" and a.get("src") == "/widget.js":
            self.widget = a
        elif tag == "meta" and "name" in a:
            self.meta[a["name"]] = a.get("content", "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h3", "p"):
            self._in = None

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if self._in and self.cards:
            card = self.cards[-1]
            card[self._in] = card.get(self._in, "") + data.strip()


@pytest.fixture(scope="module")
def page() -> _Page:
    parsed = _Page()
    parsed.feed(PAGE.read_text(encoding="utf-8"))
    return parsed


@pytest.fixture(scope="module")
def faq() -> dict[str, str]:
    with (DEMO / "kb" / "faq" / "shop.csv").open(encoding="utf-8") as f:
        return {row["id"]: row["answer"] for row in csv.DictReader(f)}


def _hours(text: str) -> set[tuple[int, int, int, int]]:
    return {(int(a), int(b), int(c), int(d)) for a, b, c, d in HOURS.findall(text)}


def test_every_product_on_the_page_is_in_the_shop_at_its_price(page: _Page) -> None:
    shop = {p.name: p.price for p in PRODUCTS}
    assert len(page.cards) == 6
    for card in page.cards:
        assert card["name"] in shop, f"page sells {card['name']!r}, which the demo shop does not have"
        assert float(card["price"].lstrip("¥")) == shop[card["name"]], card["name"]
    assert {c["name"] for c in page.cards} == set(shop)  # and the shop sells nothing the page hides


def test_demo_orders_are_products_of_the_shop() -> None:
    from datetime import UTC, datetime

    names = {p.name for p in PRODUCTS}
    for order in seed_orders(datetime.now(UTC)).values():
        assert {p.name for p, _ in order.items} <= names


def test_page_and_faq_describe_the_same_kind_of_shop(page: _Page) -> None:
    about = (DEMO / "kb" / "docs" / "about.md").read_text(encoding="utf-8")
    assert "服饰" in about and "服装" in about
    assert "服装" in page.meta["description"]
    # The size guide covers what the shop sells: tops, trousers and shoes.
    guide = (DEMO / "kb" / "docs" / "size-guide.md").read_text(encoding="utf-8")
    assert all(word in guide for word in ("T恤", "牛仔裤", "鞋码"))
    assert {"纯棉T恤", "水洗直筒牛仔裤", "轻跑运动鞋"} <= {c["name"] for c in page.cards}


def test_human_hours_are_the_same_everywhere(page: _Page, faq: dict[str, str]) -> None:
    handoff = yaml.safe_load((DEMO / "handoff.yaml").read_text(encoding="utf-8"))["hours"]
    assert handoff["weekdays"] == handoff["weekends"], "the page says 'every day'"
    expected = _hours(handoff["weekdays"])
    assert expected == {(9, 0, 21, 0)}
    human_flow = (DEMO / "flows" / "human.yaml").read_text(encoding="utf-8")
    promise = next(t for t in page.texts if "人工" in t and HOURS.search(t))
    for where, text in {
        "page subtitle": page.widget["data-kefu-subtitle"],
        "page promise": promise,
        "FAQ aftersale-contact": faq["aftersale-contact"].split("；")[0],  # the hotline has its own hours
        "human flow": human_flow,
    }.items():
        assert _hours(text) == expected, f"{where}: {text!r}"
    handoff_doc = (ROOT / "docs" / "handoff.md").read_text(encoding="utf-8")
    assert "22:00" not in handoff_doc


def test_return_shipping_policy_agrees(page: _Page, faq: dict[str, str]) -> None:
    promise = next(t for t in page.texts if "运费我们出" in t)
    # The shop pays only when it is at fault; the FAQ makes the buyer pay for a no-reason return.
    assert "质量问题" in promise.split("运费我们出")[0]
    assert "无理由退换货的运费由买家承担" in faq["return-fee"]
    assert "质量问题" in faq["return-fee"] and "由小铺承担" in faq["return-fee"]
    assert "7天内" in faq["return-7day"] and any("7 天无理由" in t for t in page.texts)
