"""The demo shop's merchant API, what the demo bot's tools call: an app of its own (FastAPI), which ``kefu serve``
mounts under :data:`~kefu.demo.shop.MOUNT_PATH` in demo mode.

The caller is kefu's tool layer, never a browser: it proves itself with ``Authorization: Bearer <token>`` (always
required where kefu mounts the API, see :func:`kefu.demo.shop.shop_token`) and names the user it acts for in the
``X-Shop-User`` header, filled from the verified identity of the turn (the tools' ``bind: user.id``). No user id in
a query or a body is read. Someone else's order answers 404 like an order that does not exist.

Errors are ``{"error": code}``; a bad token, a malformed request or an unknown path get the error body of kefu's
own API (``{"error": {"code", "message"}}``).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import Scope

from kefu.demo.shop import USER_HEADER
from kefu.demo.shop.data import CHINA, STATUS_TEXT, Order, Product, ShopStore
from kefu.errors import AuthError, KefuError

# The user the caller acts for; only the bearer token makes it believable.
UserId = Annotated[str, Header(alias=USER_HEADER, min_length=1, max_length=200)]


class VerifyPhone(BaseModel):
    """Body of ``POST /orders/{order_id}/verify-phone``."""

    phone_last4: str = Field(pattern=r"^\d{4}$")


class NewReturn(BaseModel):
    """Body of ``POST /returns``."""

    order_id: str = Field(min_length=1, max_length=40)
    reason: str = Field(min_length=1, max_length=500)


class NewAddress(BaseModel):
    """Body of ``PATCH /orders/{order_id}/address``."""

    address: str = Field(min_length=5, max_length=200)


def _error(status: int, code: str) -> JSONResponse:
    return JSONResponse({"error": code}, status_code=status)


def _time(value: datetime | None) -> str | None:
    return value.astimezone(CHINA).isoformat() if value else None


def _day(value: datetime | None) -> str | None:
    """A deadline as the shopper reads it: the China-time date (2026-12-03), not a timestamp."""
    return value.astimezone(CHINA).date().isoformat() if value else None


def _product(p: Product) -> dict[str, Any]:
    return {"sku": p.sku, "name": p.name, "price": p.price, "stock": p.stock, "description": p.description}


def _order(o: Order) -> dict[str, Any]:
    return {
        "order_id": o.order_id,
        "status": o.status,
        "status_text": STATUS_TEXT[o.status],
        "items": [{"sku": p.sku, "name": p.name, "qty": qty, "price": p.price} for p, qty in o.items],
        "total": o.total,
        "address": o.address,
        "created_at": _time(o.created_at),
        "shipped_at": _time(o.shipped_at),
        "delivered_at": _time(o.delivered_at),
    }


def create_shop_router(store: ShopStore, token: str | None = None) -> APIRouter:
    """The API over ``store``. With ``token`` set, every request needs ``Authorization: Bearer <token>`` (without
    one, only for in-process use: tests and ``kefu test``)."""

    async def check_token(authorization: Annotated[str | None, Header()] = None) -> None:
        if token and not secrets.compare_digest((authorization or "").encode(), f"Bearer {token}".encode()):
            raise AuthError("the demo shop API needs its bearer token")

    router = APIRouter(tags=["demo shop"], dependencies=[Depends(check_token)])

    @router.get("/orders", summary="The user's orders, newest first")
    async def list_orders(user_id: UserId) -> dict[str, Any]:
        orders = sorted(store.orders(user_id).values(), key=lambda o: o.created_at, reverse=True)
        return {
            "orders": [
                {
                    "order_id": o.order_id,
                    "status": o.status,
                    "status_text": STATUS_TEXT[o.status],
                    "created_at": _time(o.created_at),
                    "items_summary": o.items_summary,
                }
                for o in orders
            ]
        }

    @router.get("/orders/{order_id}", summary="One order")
    async def get_order(order_id: str, user_id: UserId) -> Any:
        order = store.order(user_id, order_id)
        return _order(order) if order else _error(404, "not_found")

    @router.post("/orders/{order_id}/verify-phone", summary="Does the phone number on file end with these digits?")
    async def verify_phone(order_id: str, body: VerifyPhone, user_id: UserId) -> Any:
        order = store.order(user_id, order_id)
        if order is None:
            return _error(404, "not_found")
        return {"verified": store.phone_on_file.endswith(body.phone_last4)}

    @router.get("/orders/{order_id}/parcel", summary="Carrier, tracking number and tracking events")
    async def parcel(order_id: str, user_id: UserId) -> Any:
        order = store.order(user_id, order_id)
        if order is None:
            return _error(404, "not_found")
        events = [
            {
                "time": _time(e.time),
                "time_text": e.time.astimezone(CHINA).strftime("%m-%d %H:%M"),  # for replies to shoppers
                "location": e.location,
                "description": e.description,
            }
            for e in order.events
        ]
        shipped = order.shipped_at is not None
        return {
            "shipped": shipped,
            "carrier": order.carrier,
            "tracking_no": order.tracking_no,
            "status_text": STATUS_TEXT[order.status] if shipped else "商家备货中，尚未发货",
            "latest": events[0] if events else None,
            "events": events,
        }

    @router.get("/orders/{order_id}/return-eligibility", summary="Can this order be returned now?")
    async def return_eligibility(order_id: str, user_id: UserId) -> Any:
        order = store.order(user_id, order_id)
        if order is None:
            return _error(404, "not_found")
        reason, deadline = store.return_check(order)
        return {"eligible": reason == "ok", "reason": reason, "deadline": _day(deadline)}

    @router.post("/returns", status_code=201, summary="Open a return request")
    async def create_return(body: NewReturn, user_id: UserId) -> Any:
        order = store.order(user_id, body.order_id)
        if order is None:
            return _error(404, "not_found")
        reason, return_id = store.create_return(order)
        if return_id is None:
            return _error(409, reason)
        return {
            "return_id": return_id,
            "status": "submitted",
            "status_text": "已提交，等待审核",
            "refund_amount": order.total,
        }

    @router.patch("/orders/{order_id}/address", summary="Change the delivery address before shipping")
    async def change_address(order_id: str, body: NewAddress, user_id: UserId) -> Any:
        order = store.order(user_id, order_id)
        if order is None:
            return _error(404, "not_found")
        if order.status != "paid":
            return _error(409, "already_shipped")
        order.address = body.address.strip()
        return {"order_id": order.order_id, "address": order.address}

    @router.get("/products", summary="The catalog")
    async def products() -> dict[str, Any]:
        return {"products": [_product(p) for p in store.products]}

    @router.get("/products/{sku}", summary="One product")
    async def product(sku: str) -> Any:
        found = store.product(sku)
        return _product(found) if found else _error(404, "not_found")

    return router


def _failure(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    """Errors outside the shop's own ``{"error": code}`` answers, shaped as kefu's API shapes them."""

    async def kefu_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KefuError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        return _failure(exc.status, exc.code, exc.message, headers)

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
        return _failure(422, "invalid_request", "; ".join(parts) or "malformed request body")

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _failure(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    app.add_exception_handler(KefuError, kefu_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def create_shop_app(
    store: ShopStore | None = None, *, token: str | None = None, prefix: str = "", docs: bool = True
) -> FastAPI:
    """The shop API as an app of its own under ``prefix``: mounted by ``kefu serve`` in demo mode (``docs=False``:
    no OpenAPI pages of its own), served in process for tests and ``httpx.ASGITransport`` mounts."""
    if docs:
        app = FastAPI(title="kefu demo shop")
    else:
        app = FastAPI(title="kefu demo shop", openapi_url=None, docs_url=None, redoc_url=None)
    _install_error_handlers(app)
    app.include_router(create_shop_router(store or ShopStore(), token), prefix=prefix)
    return app


class _ShopMount(Mount):
    """The mounted shop. Its bare prefix (``…/shop-api/``) stays the main app's 404 (no shop route answers it),
    so ``…/shop-api`` is not redirected there either."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is Match.FULL and scope["path"] == child["root_path"] + "/":
            return Match.NONE, {}
        return match, child


def shop_mount(path: str, store: ShopStore, token: str) -> Mount:
    """The shop app mounted at ``path``, for the main app's routes (``kefu serve`` in demo mode): reachable from
    the network, so it always checks ``token``."""
    return _ShopMount(path, app=create_shop_app(store, token=token, docs=False))
