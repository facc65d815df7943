"""``KEFU_LLM_FALLBACKS``: further upstreams, tried in order when the primary cannot start a turn.

A JSON array of objects::

    [{"base_url": "https://api.example.com/v1", "api_key": "sk-…", "model": "some-model",
      "name": "backup", "connect_timeout": 5, "first_token_timeout": 20, "idle_timeout": 30,
      "max_concurrency": 64}]

Only ``base_url`` and ``model`` are required; the rest default to the primary's settings. API keys are kept as
``SecretStr`` and never appear in error messages or logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import SecretStr

from kefu.errors import ConfigError

_REQUIRED = ("base_url", "model")
_TIMEOUTS = ("connect_timeout", "first_token_timeout", "idle_timeout")
_KNOWN = frozenset({*_REQUIRED, *_TIMEOUTS, "api_key", "name", "max_concurrency"})


@dataclass(frozen=True, slots=True)
class UpstreamSpec:
    """One fallback upstream as configured."""

    base_url: str
    model: str
    api_key: SecretStr | None = None
    name: str | None = None
    connect_timeout: float | None = None
    first_token_timeout: float | None = None
    idle_timeout: float | None = None
    max_concurrency: int | None = None


def parse_fallbacks(raw: str, *, setting: str = "KEFU_LLM_FALLBACKS") -> list[UpstreamSpec]:
    """The fallback upstreams in ``raw`` (empty: none). Raises :class:`ConfigError` naming the bad entry."""
    if not raw.strip():
        return []
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{setting} is not valid JSON ({exc}); expected an array of objects") from None
    if not isinstance(doc, list):
        raise ConfigError(f'{setting} must be a JSON array of objects like {{"base_url", "api_key", "model"}}')
    return [_entry(item, index, setting) for index, item in enumerate(doc, start=1)]


def _entry(item: Any, index: int, setting: str) -> UpstreamSpec:
    where = f"{setting} entry {index}"
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be an object with base_url, api_key and model")
    if isinstance(item.get("model"), str) and item["model"]:
        where += f" (model {item['model']!r})"
    unknown = sorted(set(item) - _KNOWN)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {sorted(_KNOWN)}")
    for key in _REQUIRED:
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise ConfigError(f"{where}: {key!r} is required and must be a non-empty string")
    base_url = item["base_url"].strip()
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: base_url must start with http:// or https://")
    api_key = item.get("api_key")
    if api_key is not None and not isinstance(api_key, str):
        raise ConfigError(f"{where}: api_key must be a string")
    name = item.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigError(f"{where}: name must be a non-empty string")
    timeouts: dict[str, float] = {}
    for key in _TIMEOUTS:
        value = item.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{where}: {key} must be a number of seconds > 0")
        timeouts[key] = float(value)
    limit = item.get("max_concurrency")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"{where}: max_concurrency must be an integer >= 1")
    return UpstreamSpec(
        base_url=base_url,
        model=item["model"].strip(),
        api_key=SecretStr(api_key) if api_key else None,
        name=name.strip() if name else None,
        max_concurrency=limit,
        **timeouts,
    )
