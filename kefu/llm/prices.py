"""Model prices from a YAML file (``KEFU_PRICES_FILE``, else ``prices.yaml`` in the bot directory) and the cost of
one call. Prices change often (see docs/cost.md): they are configuration, never constants in code.

::

    currency: USD                  # default currency of every model below
    models:
      deepseek-chat:               # exact model id as the provider reports it, or a glob ("gpt-4o*")
        input_cache_hit: 0.028     # per 1M prompt tokens read from the provider's cache
        input_cache_miss: 0.28     # per 1M other prompt tokens
        output: 0.42               # per 1M completion tokens (reasoning included)
        currency: USD              # optional, overrides the default

Costs are exact integers of nano-units of the currency (1e-9), so sums over millions of calls do not drift.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kefu.errors import ConfigError
from kefu.llm.usage import TokenCounts

NANO = Decimal(1_000_000_000)
_PER = Decimal(1_000_000)  # prices are per million tokens


class _ModelPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_cache_hit: Decimal = Field(ge=0)
    input_cache_miss: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    currency: str | None = Field(default=None, min_length=1, max_length=8)


class _PricesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: str = Field(min_length=1, max_length=8)
    models: dict[str, _ModelPrice] = Field(default_factory=dict)

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.strip().upper()


@dataclass(frozen=True, slots=True)
class Price:
    """One model's prices per million tokens."""

    input_cache_hit: Decimal
    input_cache_miss: Decimal
    output: Decimal
    currency: str

    def cost_nano(self, counts: TokenCounts) -> int:
        """The cost of ``counts`` in nano-units of :attr:`currency` (rounded half-even)."""
        total = (
            counts.prompt_cache_hit * self.input_cache_hit
            + counts.prompt_cache_miss * self.input_cache_miss
            + counts.completion * self.output
        )
        return int((total * NANO / _PER).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices by model id; exact ids win over globs, globs are tried in file order."""

    currency: str | None = None
    exact: tuple[tuple[str, Price], ...] = ()
    globs: tuple[tuple[str, Price], ...] = ()
    source: str = ""

    @property
    def empty(self) -> bool:
        """No prices at all (costs are not computed)."""
        return not self.exact and not self.globs

    @property
    def currencies(self) -> frozenset[str]:
        """Every currency a cost may be in."""
        return frozenset(p.currency for _, p in (*self.exact, *self.globs))

    def price(self, model: str | None) -> Price | None:
        """The price of ``model``, or None when the file names none for it."""
        if not model:
            return None
        for name, price in self.exact:
            if name == model:
                return price
        for pattern, price in self.globs:
            if fnmatch.fnmatchcase(model, pattern):
                return price
        return None


def parse_prices(data: Any, source: str = "prices") -> PriceTable:
    """A :class:`PriceTable` from the file's parsed YAML; :class:`ConfigError` naming the bad field otherwise."""
    try:
        parsed = _PricesFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from None
    exact: list[tuple[str, Price]] = []
    globs: list[tuple[str, Price]] = []
    for name, spec in parsed.models.items():
        currency = (spec.currency or parsed.currency).strip().upper()
        price = Price(spec.input_cache_hit, spec.input_cache_miss, spec.output, currency)
        (globs if any(c in name for c in "*?[") else exact).append((name, price))
    return PriceTable(parsed.currency, tuple(exact), tuple(globs), source)


def load_prices(path: Path) -> PriceTable:
    """Read a prices file; :class:`ConfigError` (with the file, and the line for YAML errors) when it is unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the prices file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping with 'currency' and 'models'")
    return parse_prices(data, str(path))


def prices_path(prices_file: Path | None, bot_dir: Path) -> Path | None:
    """The prices file to read: ``prices_file`` when set, else ``prices.yaml`` in the bot directory if present."""
    if prices_file is not None:
        return prices_file
    default = bot_dir / "prices.yaml"
    return default if default.is_file() else None
