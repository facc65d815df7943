"""One error tree for all of kefu.

::

    KefuError
    ├── ConfigError            settings or bot content unusable
    ├── AuthError              missing / invalid / expired credentials        → 401
    ├── NotFound               unknown session or turn, or someone else's     → 404
    ├── Conflict               a turn already runs in this session            → 409
    ├── InvalidInput           a request that breaks a rule (blank message)   → 422
    │   └── MessageTooLong                                                    → 413
    ├── RateLimited                                                           → 429
    ├── ToolError              a business API call that is not made as asked (the tool answers ``ok=False``)
    │   ├── AddressRefused     its address is not allowed (the SSRF guard)
    │   └── UnsafeArgument     an argument would change the URL's path (``.``, ``..``)
    └── UpstreamError          the model provider failed (``retryable`` says whether trying again may help)
        ├── UpstreamNotConfigured
        ├── UpstreamConnectError
        ├── UpstreamTimeout
        │   ├── FirstTokenTimeout
        │   └── IdleTimeout
        ├── UpstreamStatusError   an HTTP error status from the provider
        └── UpstreamProtocolError the stream broke or made no sense (e.g. ended without ``[DONE]``)

The HTTP layer maps ``KefuError.status`` and ``KefuError.code`` to responses; nothing else knows HTTP.
"""

from __future__ import annotations


class KefuError(Exception):
    """Base of every error kefu raises on purpose."""

    code: str = "internal_error"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(KefuError):
    """Settings or bot content cannot be used."""

    code = "config_error"
    status = 500


class AuthError(KefuError):
    """No credentials, or credentials that do not verify."""

    code = "unauthorized"
    status = 401


class Forbidden(KefuError):
    """Valid credentials that may not do this (an end-user token on an admin endpoint)."""

    code = "forbidden"
    status = 403


class NotFound(KefuError):
    """The thing does not exist, or belongs to someone else (indistinguishable on purpose)."""

    code = "not_found"
    status = 404


class Conflict(KefuError):
    """The request conflicts with work in progress."""

    code = "turn_in_progress"
    status = 409


class InvalidInput(KefuError):
    """A well-formed request that breaks a rule."""

    code = "invalid_input"
    status = 422


class MessageTooLong(InvalidInput):
    """The message is longer than ``KEFU_MAX_MESSAGE_CHARS``."""

    code = "message_too_long"
    status = 413


class RateLimited(KefuError):
    """Too many requests; ``retry_after`` seconds until the next is allowed."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ToolError(KefuError):
    """A business API call that is not made as asked. Tools never raise it to their callers: its ``code`` becomes
    the call's ``ToolResult.error`` and its message the ``ToolResult.message``."""

    code = "tool_error"


class AddressRefused(ToolError):
    """The tool's address is not allowed: not http(s), inside the network and not allow-listed, or not resolvable."""

    code = "refused"


class UnsafeArgument(ToolError):
    """An argument would change the path of the URL it is put in (a ``.`` or ``..`` segment)."""

    code = "invalid_arguments"


class StoreUnavailable(KefuError):
    """The database or the hot state (Redis) cannot be reached right now; nothing was accepted, try again."""

    code = "store_unavailable"
    status = 503
    retry_after = 2


class UpstreamError(KefuError):
    """The model provider failed to give an answer."""

    code = "upstream_error"
    status = 502
    retryable: bool = True

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        provider: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        if retryable is not None:
            self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after
        self.provider = provider


class UpstreamNotConfigured(UpstreamError):
    """No model provider is configured (no API key)."""

    code = "llm_not_configured"
    status = 503
    retryable = False


class UpstreamConnectError(UpstreamError):
    """Could not connect to the provider (DNS, refused, TLS, connect timeout)."""

    code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    """The provider did not answer in time."""

    code = "upstream_timeout"
    status = 504


class FirstTokenTimeout(UpstreamTimeout):
    """No content token arrived within ``KEFU_LLM_FIRST_TOKEN_TIMEOUT`` (keep-alive bytes do not count)."""

    code = "upstream_first_token_timeout"


class IdleTimeout(UpstreamTimeout):
    """The stream went silent for longer than ``KEFU_LLM_IDLE_TIMEOUT``."""

    code = "upstream_idle_timeout"


# Statuses that say "trying again later may work". Everything else (400, 401, 402, 403, 404, 422 …) is final.
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class UpstreamStatusError(UpstreamError):
    """The provider answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        retry_after: float | None = None,
        provider: str | None = None,
        body: str = "",
    ) -> None:
        code = {
            401: "upstream_auth_failed",
            402: "upstream_insufficient_balance",
            429: "upstream_rate_limited",
        }.get(status_code, "upstream_overloaded" if status_code == 503 else f"upstream_http_{status_code}")
        super().__init__(
            message,
            code=code,
            retryable=status_code in RETRYABLE_STATUSES,
            status_code=status_code,
            retry_after=retry_after,
            provider=provider,
        )
        self.body = body


class UpstreamProtocolError(UpstreamError):
    """The stream broke off or could not be understood."""

    code = "upstream_stream_broken"


# Statuses for turns that ended with an ``error`` event, known by its code: the OpenAI facade answers a turn that
# failed before any text with one of these. Codes not listed: 502 when retrying may help, else 500.
_TURN_ERROR_STATUS = {
    UpstreamNotConfigured.code: UpstreamNotConfigured.status,
    "upstream_rate_limited": 429,
    "cancelled": 499,
}


def status_for_turn_error(code: str, *, retryable: bool) -> int:
    """The HTTP status that stands for a turn's ``error`` event."""
    return _TURN_ERROR_STATUS.get(code, 502 if retryable else 500)
