import time
from typing import Any

import jwt
import pytest

from kefu.errors import AuthError
from kefu.identity import Authenticator, mint_token

SECRET = "s" * 40


def _auth() -> Authenticator:
    return Authenticator(jwt_secret=SECRET, api_keys=frozenset({"key-1"}))


def test_authenticator_accepts_minted_token() -> None:
    identity = _auth().authenticate(f"Bearer {mint_token('user-1', SECRET)}")
    assert identity.user_id == "user-1" and identity.kind == "user"


def test_authenticator_rejects_expired_token() -> None:
    token = jwt.encode({"sub": "u", "exp": int(time.time()) - 10}, SECRET, algorithm="HS256")
    with pytest.raises(AuthError) as err:
        _auth().authenticate(f"Bearer {token}")
    assert err.value.code == "token_expired"


def test_authenticator_rejects_token_without_exp() -> None:
    token = jwt.encode({"sub": "u"}, SECRET, algorithm="HS256")
    with pytest.raises(AuthError):
        _auth().authenticate(f"Bearer {token}")


def test_authenticator_rejects_wrong_signature() -> None:
    with pytest.raises(AuthError):
        _auth().authenticate(f"Bearer {mint_token('u', 'other-secret-' * 4)}")


def test_authenticator_rejects_alg_none() -> None:
    token = jwt.encode({"sub": "u", "exp": int(time.time()) + 60}, None, algorithm="none")
    with pytest.raises(AuthError):
        _auth().authenticate(f"Bearer {token}")


def test_authenticator_api_key_needs_acting_user() -> None:
    with pytest.raises(AuthError):
        _auth().authenticate("Bearer key-1")
    identity = _auth().authenticate("Bearer key-1", "shop-user-9")
    assert identity.user_id == "shop-user-9" and identity.kind == "server"


def test_authenticator_rejects_missing_or_malformed_header() -> None:
    for header in (None, "", "Basic abc", "Bearer "):
        with pytest.raises(AuthError):
            _auth().authenticate(header)


def test_authenticator_rejects_unsafe_user_id() -> None:
    with pytest.raises(AuthError):
        _auth().authenticate("Bearer key-1", "../../etc")


def test_authenticator_without_secret_refuses_jwt() -> None:
    auth = Authenticator(jwt_secret=None, api_keys=frozenset())
    with pytest.raises(AuthError) as err:
        auth.authenticate(f"Bearer {mint_token('u', SECRET)}")
    assert "KEFU_JWT_SECRET" in err.value.message


def test_a_verified_token_is_remembered_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [float(int(time.time()))]  # the test's wall clock, driven by hand
    auth = Authenticator(jwt_secret=SECRET, api_keys=frozenset(), clock=lambda: now[0])
    real_decode = jwt.decode
    decodes = 0

    def decode_on_test_clock(*args: Any, **kwargs: Any) -> Any:
        # PyJWT checks ``exp`` against the real time; a signed leeway moves its check onto the test's clock.
        nonlocal decodes
        decodes += 1
        kwargs["leeway"] = time.time() - now[0]
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", decode_on_test_clock)
    token = jwt.encode({"sub": "u-cached", "exp": int(now[0]) + 60}, SECRET, algorithm="HS256")
    first = auth.authenticate(f"Bearer {token}")
    now[0] += 59
    assert auth.authenticate(f"Bearer {token}") == first
    assert decodes == 1  # the second answer came from the cache
    now[0] += 1  # exp reached
    with pytest.raises(AuthError) as err:
        auth.authenticate(f"Bearer {token}")
    assert err.value.code == "token_expired"
    assert decodes == 2


def test_rejected_tokens_are_not_remembered() -> None:
    auth = _auth()
    bad = mint_token("u", "other-secret-" * 4)
    for _ in range(2):
        with pytest.raises(AuthError):
            auth.authenticate(f"Bearer {bad}")
    good = mint_token("u", SECRET)
    assert auth.authenticate(f"Bearer {good}").user_id == "u"
    # A token differing from a remembered one (here: its signature) is checked in full.
    with pytest.raises(AuthError):
        auth.authenticate(f"Bearer {good[:-2]}{'AA' if not good.endswith('AA') else 'BB'}")
