"""The demo shop's merchant API: orders, parcels, products and returns, in memory, for the demo bot's tools.

``kefu serve`` mounts it under :data:`MOUNT_PATH` in demo mode; the demo tools find it through
:data:`URL_ENV` and send :data:`TOKEN_ENV` as a bearer token when it is set (the API checks it only when set).
"""

from __future__ import annotations

MOUNT_PATH = "/demo/shop-api"
URL_ENV = "KEFU_DEMO_SHOP_URL"
TOKEN_ENV = "KEFU_DEMO_SHOP_TOKEN"
