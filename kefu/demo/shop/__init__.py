"""The demo shop's merchant API: orders, parcels, products and returns, in memory, for the demo bot's tools.

``kefu serve`` mounts it under :data:`MOUNT_PATH` in demo mode; the demo tools find it through :data:`URL_ENV`,
send :data:`TOKEN_ENV` as a bearer token and name the user in :data:`USER_HEADER`.
"""

from __future__ import annotations

import hashlib
import hmac

from kefu.config import Settings
from kefu.errors import ConfigError
from kefu.identity import resolve_jwt_secret

MOUNT_PATH = "/demo/shop-api"
URL_ENV = "KEFU_DEMO_SHOP_URL"
TOKEN_ENV = "KEFU_DEMO_SHOP_TOKEN"
USER_HEADER = "X-Shop-User"


def shop_token(settings: Settings) -> str:
    """The bearer token of the mounted merchant API: ``KEFU_DEMO_SHOP_TOKEN``, else one derived from the JWT secret
    (so every worker of one server has the same without sharing anything)."""
    if settings.demo_shop_token is not None:
        return settings.demo_shop_token.get_secret_value()
    secret = resolve_jwt_secret(settings)  # always one in demo mode, the only mode that mounts the API
    if secret is None:
        raise ConfigError(f"the demo merchant API needs {TOKEN_ENV} or KEFU_JWT_SECRET")
    return hmac.new(secret.encode(), b"kefu demo shop api", hashlib.sha256).hexdigest()
