"""Who is asking: verify bearer credentials and mint end-user tokens.

Three kinds of callers (DESIGN.md, "Auth"):

* an end user with an HS256 JWT signed with ``KEFU_JWT_SECRET`` (``sub`` = user id, ``exp`` required);
* a server with an API key from ``KEFU_API_KEYS``, acting for the user named in ``X-Kefu-User``;
* in demo mode, an anonymous visitor holding a JWT that kefu minted itself (``sub`` = ``visitor-…``).

The user id is only ever taken from something kefu can verify, never from a cookie or the message.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jwt

from kefu.config import Settings
from kefu.errors import AuthError, ConfigError, Forbidden

# User ids end up in keys, logs and URLs: keep them to a safe alphabet.
_USER_ID = re.compile(r"^[A-Za-z0-9_.:@\-]{1,128}$")
_DEMO_SECRET_FILE = Path(".kefu") / "jwt-secret"
# Verified tokens remembered (LRU), so a client's repeated requests skip the signature check.
_VERIFIED_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller acting for ``user_id``."""

    user_id: str
    kind: Literal["user", "server", "visitor"]


def resolve_jwt_secret(settings: Settings) -> str | None:
    """The secret used for end-user JWTs.

    ``KEFU_JWT_SECRET`` when set. In demo mode without one, a random secret kept in ``.kefu/jwt-secret``
    (so visitor tokens survive a restart); otherwise None, and JWTs are refused.
    """
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    if not settings.demo:
        return None
    if _DEMO_SECRET_FILE.exists():
        return _DEMO_SECRET_FILE.read_text().strip()
    _DEMO_SECRET_FILE.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    _DEMO_SECRET_FILE.write_text(secret)
    _DEMO_SECRET_FILE.chmod(0o600)
    return secret


def check_user_id(user_id: str) -> str:
    """Return ``user_id`` if it is acceptable, else raise :class:`AuthError`."""
    if not _USER_ID.match(user_id):
        raise AuthError("user id must be 1-128 characters of letters, digits and _.:@-")
    return user_id


def mint_token(user_id: str, secret: str, *, ttl_seconds: int = 3600) -> str:
    """Sign an end-user token, as the host app would (``kefu token USER_ID`` uses this)."""
    if not secret:
        raise ConfigError("KEFU_JWT_SECRET is not set; cannot sign tokens")
    now = int(time.time())
    payload = {"sub": check_user_id(user_id), "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(payload, secret, algorithm="HS256")


class Authenticator:
    """Turns an ``Authorization`` header (and ``X-Kefu-User``) into an :class:`Identity`."""

    def __init__(
        self, *, jwt_secret: str | None, api_keys: frozenset[str], clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = jwt_secret
        self._clock = clock
        self._api_keys = tuple(k.encode() for k in api_keys)
        # token -> (identity, exp): only tokens that verified, kept until their ``exp`` (then verified again,
        # which raises ``token_expired``). A token that verified once stays valid until then: the secret is fixed
        # for the process, and ``nbf``/``iat`` only become more valid with time.
        self._verified: OrderedDict[str, tuple[Identity, float]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        """Build from settings (resolving the demo secret if needed)."""
        return cls(jwt_secret=resolve_jwt_secret(settings), api_keys=settings.api_key_set)

    @property
    def jwt_secret(self) -> str | None:
        """The JWT secret in use, if any."""
        return self._secret

    def authenticate(self, authorization: str | None, acting_user: str | None = None) -> Identity:
        """Verify ``Authorization: Bearer …``; raise :class:`AuthError` with a reason otherwise."""
        token = _bearer(authorization, "<token>")
        if self._is_api_key(token):
            if not acting_user:
                raise AuthError("server API keys must name the end user in the X-Kefu-User header")
            return Identity(user_id=check_user_id(acting_user), kind="server")
        return self._verify_jwt(token)

    def require_server(self, authorization: str | None) -> None:
        """Let server API keys through; :class:`Forbidden` for a valid end-user token, :class:`AuthError` else."""
        token = _bearer(authorization, "<API key>")
        if self._is_api_key(token):
            return
        self._verify_jwt(token)  # raises AuthError unless it is a valid end-user token
        raise Forbidden("admin endpoints need a server API key (KEFU_API_KEYS), not an end-user token")

    def _is_api_key(self, token: str) -> bool:
        # Constant-time compare against every key so timing does not reveal a prefix match.
        found = False
        raw = token.encode()
        for key in self._api_keys:
            found |= hmac.compare_digest(key, raw)
        return found

    def _verify_jwt(self, token: str) -> Identity:
        if self._secret is None:
            raise AuthError("end-user tokens are not accepted: KEFU_JWT_SECRET is not configured")
        cached = self._verified.get(token)
        if cached is not None:
            if self._clock() < cached[1]:
                self._verified.move_to_end(token)
                return cached[0]
            del self._verified[token]  # expired: the full check below says so
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired", code="token_expired") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}", code="invalid_token") from exc
        sub = claims.get("sub")
        if not isinstance(sub, str):
            raise AuthError("invalid token: 'sub' must be a string", code="invalid_token")
        kind: Literal["user", "visitor"] = "visitor" if sub.startswith("visitor-") else "user"
        identity = Identity(user_id=check_user_id(sub), kind=kind)
        exp = claims.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            self._verified[token] = (identity, float(exp))
            if len(self._verified) > _VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return identity


def _bearer(authorization: str | None, what: str) -> str:
    """The credential of ``Authorization: Bearer <credential>``; :class:`AuthError` naming ``what`` is expected."""
    if not authorization:
        raise AuthError(f"missing Authorization header (expected 'Bearer {what}')")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError(f"Authorization header must be 'Bearer {what}'")
    return token
