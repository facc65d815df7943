"""Settings: one object, read from ``KEFU_*`` environment variables and ``.env``.

Build it once (``Settings()``) at start-up and pass it down; nothing reads the environment at import time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, cast
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kefu.pii import ALL_KINDS, PiiKind

DEMO_BOT_DIR = Path(__file__).parent / "demo"
# The bot of a server that names none: no shop content at all (no FAQ, policies or tools), only a generic persona
# and the "转人工" flow, so a shop's own FAQ is never answered alongside the demo shop's policies.
NEUTRAL_BOT_DIR = Path(__file__).parent / "bot" / "neutral"
# One CSP source expression: a keyword, any (*), a scheme, or a host with optional scheme, wildcard, port and path.
_FRAME_SOURCE = re.compile(
    r"^(?:'self'|'none'|\*|[A-Za-z][A-Za-z0-9+.-]*:|(?:[A-Za-z][A-Za-z0-9+.-]*://)?(?:\*\.)?[A-Za-z0-9.-]+"
    r"(?::(?:[0-9]{1,5}|\*))?(?:/[A-Za-z0-9._~/%-]*)?)$"
)


class Settings(BaseSettings):
    """Every knob kefu has. Names marked *contract* are part of the public configuration (DESIGN.md)."""

    model_config = SettingsConfigDict(env_prefix="KEFU_", env_file=".env", env_ignore_empty=True, extra="ignore")

    # --- model provider (contract) ---
    llm_base_url: str = "https://api.deepseek.com"
    llm_api_key: SecretStr | None = None
    llm_model: str = "deepseek-chat"
    llm_connect_timeout: float = Field(default=5.0, gt=0)
    llm_first_token_timeout: float = Field(default=30.0, gt=0)
    llm_idle_timeout: float = Field(default=30.0, gt=0)
    llm_max_tokens: int | None = Field(default=None, gt=0)
    llm_temperature: float | None = None
    # OAuth2 client-credentials instead of a static key (for gateways that use it).
    llm_oauth_token_url: str | None = None
    llm_oauth_client_id: str | None = None
    llm_oauth_client_secret: SecretStr | None = None
    llm_oauth_scope: str | None = None
    llm_max_connections: int = Field(default=1000, gt=0)

    # --- storage (contract) ---
    database_url: str = "sqlite+aiosqlite:///./kefu.db"
    redis_url: str | None = None
    redis_prefix: str = "kefu"
    # Connections per process for ordinary commands; when all are busy a command waits for one (up to
    # redis_pool_timeout seconds) instead of failing, so a burst queues rather than losing turns.
    redis_max_connections: int = Field(default=200, gt=0)
    redis_pool_timeout: float = Field(default=10.0, gt=0)

    # --- identity (contract) ---
    jwt_secret: SecretStr | None = None
    api_keys: str = ""
    demo: bool = False

    # --- turns and sessions (contract) ---
    session_ttl: int = Field(default=1800, gt=0)
    sse_heartbeat: float = Field(default=15.0, gt=0)
    max_message_chars: int = Field(default=4000, gt=0)
    history_token_budget: int = Field(default=3000, gt=0)
    history_max_messages: int = Field(default=50, gt=0)
    coalesce_ms: float = Field(default=30.0, ge=0)
    turn_lease_seconds: float = Field(default=10.0, gt=0)
    turn_log_ttl: int = Field(default=3600, gt=0)
    # On SIGTERM, running turns get this many seconds to finish before they are stopped (kept as interrupted).
    shutdown_grace: float = Field(default=30.0, ge=0)
    # Shared answers to impersonal first-turn questions (seconds; 0 turns the cache and single-flight off).
    answer_cache_ttl: int = Field(default=300, ge=0)

    # --- rate limits ("N/second|minute|hour|day"; "off" disables one) ---
    rate_limit_user: str = "20/minute"
    rate_limit_api_key: str = "3000/minute"
    rate_limit_ip: str = "120/minute"
    # Demo visitor tokens minted per client IP (each is a fresh identity with budgets of its own).
    rate_limit_visitor_tokens: str = "10/minute"
    # Resumes of a turn's events (GET /v1/chat/turns/{id}/events) per end user.
    rate_limit_resume: str = "60/minute"

    # --- bot content ---
    # Unset: the demo shop in demo mode, else the neutral bot (see _bot_for_mode).
    bot_dir: Path = Field(default=NEUTRAL_BOT_DIR, validate_default=True)
    # host:port pairs (a name or an address; a bare host means ports 80 and 443) business tools may call although
    # they resolve to private/loopback addresses.
    tools_allow_hosts: str = ""
    # The demo merchant API the demo bot's tools call (default: this server's own /demo/shop-api).
    demo_shop_url: str | None = None
    # The bearer token the demo merchant API asks of its callers (default: derived from the JWT secret).
    demo_shop_token: SecretStr | None = None

    # With a model configured, it reads slot answers inside a running flow that the rules could not (its value is
    # validated by the slot's rules); off: only the rules read them.
    flow_model_slots: bool = True

    # How often a replica looks for turns whose process died and that nobody resumed, to store their partial
    # answers (one replica at a time); 0 = off.
    lost_turn_sweep_seconds: float = Field(default=30.0, ge=0)

    # --- privacy ---
    # Personal data the model provider never sees: each kind is replaced by a placeholder ([手机号1]) in what is
    # sent, and restored in what the shopper sees. Any of phone,id_card,bank_card,email; "none" turns it off.
    pii_mask: str = "phone,id_card,bank_card,email"
    # Retention: conversations idle this long have their personal data replaced by its type (0 = never) ...
    retention_anonymise_hours: float = Field(default=72.0, ge=0)
    # ... and are deleted entirely this long after their last message (0 = never).
    retention_delete_days: float = Field(default=180.0, ge=0)
    # How often each replica tries a sweep (one runs at a time, lock in the hot state); 0 = only `kefu privacy sweep`.
    retention_sweep_seconds: float = Field(default=3600.0, ge=0)

    # --- usage and cost (docs/cost.md) ---
    # Model prices per 1M tokens (YAML); unset: prices.yaml in the bot directory when there is one.
    prices_file: Path | None = None
    # Daily model spend (UTC day, all replicas) after which turns answer from the FAQ/KB only; unset = no limit.
    daily_budget: float | None = Field(default=None, gt=0)
    # The budget's currency (a currency of the prices file); unset: the prices file's default currency.
    daily_budget_currency: str | None = None
    # How often a replica reads the other replicas' spend for the budget.
    daily_budget_refresh_seconds: float = Field(default=5.0, ge=0)

    # --- serving ---
    cors_origins: str = ""
    # Who may show kefu's pages (the widget page, the demo page) in a frame: CSP frame-ancestors sources,
    # separated by spaces or commas ("'self' https://shop.example.com"). The desk is never framed.
    frame_ancestors: str = "'self'"
    log_level: str = "info"
    log_json: bool = False
    # One `http_request` line per request (method, path without query, status, duration, request id); info level.
    access_log: bool = False
    # OpenTelemetry traces of turns (needs the `otel` extra); OTEL_* variables configure the exporter and sampler.
    otel: bool = False
    otel_exporter: Literal["otlp", "console"] = "otlp"

    # --- resilience (kefu.llm.resilience; see docs/resilience.md) ---
    # JSON array of further upstreams tried in order: [{"base_url", "api_key", "model", optional "name",
    # "connect_timeout", "first_token_timeout", "idle_timeout", "max_concurrency"}].
    llm_fallbacks: str = ""
    llm_max_retries: int = Field(default=2, ge=0)  # per route, only before the first token
    llm_turn_deadline: float = Field(default=60.0, gt=0)  # whole start of a turn: all retries and fallbacks
    llm_retry_backoff_base: float = Field(default=0.5, gt=0)
    llm_retry_backoff_cap: float = Field(default=8.0, gt=0)
    llm_retry_after_cap: float = Field(default=5.0, ge=0)  # a longer Retry-After fails over instead of waiting
    llm_breaker_window: float = Field(default=30.0, gt=0)
    llm_breaker_min_volume: int = Field(default=20, ge=1)
    llm_breaker_error_ratio: float = Field(default=0.5, gt=0, le=1)
    llm_breaker_open_seconds: float = Field(default=10.0, gt=0)
    llm_breaker_retry_after_cap: float = Field(default=60.0, ge=0)  # longest open period a 429 can ask for
    llm_breaker_half_open_probes: int = Field(default=2, ge=1)
    llm_max_concurrency: int = Field(default=256, ge=1)  # per upstream
    llm_min_concurrency: int = Field(default=4, ge=1)  # floor of the adaptive limit
    llm_adaptive_concurrency: bool = True
    llm_queue_timeout: float = Field(default=2.0, ge=0)
    llm_max_queue: int = Field(default=1000, ge=0)
    llm_queue_fail_fast: bool = True  # refuse at once when the expected wait exceeds the queue timeout
    llm_account_alert_interval: float = Field(default=300.0, gt=0)  # 401/402 logged at most this often
    # --- end resilience ---

    # --- knowledge base (kefu.kb; see docs/kb.md) ---
    # Confidence on the top FAQ match (kefu/kb/confidence.py): least score, lead and certainty for a direct answer,
    # least score for suggestions.
    kb_confidence_high: float = Field(default=0.15, ge=0)
    kb_confidence_medium: float = Field(default=0.25, ge=0)
    kb_confidence_margin: float = Field(default=0.03, ge=0)
    kb_confidence_direct: float = Field(default=0.84, ge=0, le=1)
    kb_refresh_seconds: float = Field(default=5.0, gt=0)  # how often a replica checks the KB version in SQL
    kb_chunk_chars: int = Field(default=400, ge=50)
    kb_chunk_overlap: int = Field(default=80, ge=0)
    # Dense retrieval (OpenAI-compatible /embeddings) is off unless the base URL and the model are set.
    embeddings_base_url: str | None = None
    embeddings_model: str | None = None
    embeddings_api_key: SecretStr | None = None
    # --- end knowledge base ---

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        # People paste the URL their other tools use; map it to the async driver instead of failing later.
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            value = "postgresql+asyncpg://" + value.removeprefix("postgresql://")
        if value.startswith("sqlite:///"):
            value = "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        return value

    @field_validator("bot_dir", mode="before")
    @classmethod
    def _bot_for_mode(cls, value: object, info: ValidationInfo) -> object:
        # Only the untouched default (this very object) follows the mode; any KEFU_BOT_DIR given is kept as is.
        if value is NEUTRAL_BOT_DIR and info.data.get("demo"):
            return DEMO_BOT_DIR
        return value

    @field_validator("tools_allow_hosts")
    @classmethod
    def _host_port_pairs(cls, value: str) -> str:
        for item in (i.strip() for i in value.split(",")):
            try:
                parts = urlsplit(f"//{item}")
                parts.port  # noqa: B018 - raises ValueError for a port that is not a number
            except ValueError as exc:
                raise ValueError(f"{item!r} is not host or host:port ({exc})") from exc
            if item and (not parts.hostname or parts.path or parts.query or parts.fragment or "@" in item):
                raise ValueError(f"{item!r} is not host or host:port (e.g. inventory.internal:8080)")
        return value

    @field_validator("pii_mask")
    @classmethod
    def _pii_kinds(cls, value: str) -> str:
        unknown = [n.strip() for n in value.split(",") if n.strip() and n.strip() not in (*ALL_KINDS, "none")]
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; use any of {', '.join(ALL_KINDS)}, or none")
        return value

    @field_validator("frame_ancestors")
    @classmethod
    def _frame_sources(cls, value: str) -> str:
        sources = []
        for source in re.split(r"[\s,]+", value.strip()):
            if source.lower() in ("self", "none"):
                source = f"'{source.lower()}'"  # the quotes are easy to lose in a shell or a .env file
            if not _FRAME_SOURCE.match(source):
                raise ValueError(
                    f"{source!r} is not a frame-ancestors source: use 'self', 'none', a scheme (https:) or an "
                    "origin (https://shop.example.com, https://*.example.com)"
                )
            sources.append(source)
        if not sources:
            raise ValueError("give at least one source ('none' forbids all framing)")
        if "'none'" in sources and len(sources) > 1:
            raise ValueError("'none' cannot be combined with other sources")
        return " ".join(sources)

    @property
    def api_key_set(self) -> frozenset[str]:
        """The configured server-to-server API keys."""
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())

    @property
    def tools_allow_host_list(self) -> list[str]:
        """Hosts business tools may call on private addresses."""
        return [h.strip() for h in self.tools_allow_hosts.split(",") if h.strip()]

    @property
    def pii_mask_kinds(self) -> tuple[PiiKind, ...]:
        """The kinds of personal data replaced by placeholders before the model (KEFU_PII_MASK)."""
        names = [n.strip() for n in self.pii_mask.split(",") if n.strip() and n.strip() != "none"]
        return tuple(cast(PiiKind, n) for n in names)

    @property
    def cors_origin_list(self) -> list[str]:
        """Origins allowed to call the API from a browser."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def bot_dir_chosen(self) -> bool:
        """True when a bot directory was given (KEFU_BOT_DIR or an override), not taken from the mode."""
        return "bot_dir" in self.model_fields_set

    @property
    def neutral_bot(self) -> bool:
        """True when the bot is the built-in neutral one (no shop content: ``kefu init`` starts a real one)."""
        return self.bot_dir.resolve() == NEUTRAL_BOT_DIR.resolve()

    @property
    def llm_configured(self) -> bool:
        """True when a model provider can be called (a key or an OAuth2 client)."""
        return self.llm_api_key is not None or self.llm_oauth_token_url is not None

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite database."""
        return self.database_url.startswith("sqlite")
