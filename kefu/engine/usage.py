"""Metering model calls: each call's tokens and cost go to the ledger, the metrics and today's spend; the daily
budget decides whether the next turn may call the model at all.

A :class:`MeteredCall` watches one call's event stream. It is recorded once, when both the stream has ended (or
was closed) and the turn knows how its answer ended (its ``source``), whichever comes last: a single-flight
stream shared with other turns may outlive the turn that started it. A call that produced no event at all (it
failed before the provider answered) is not recorded: nothing was billed. Recording never fails a turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from kefu.config import Settings
from kefu.errors import ConfigError
from kefu.llm.base import ChatRequest, Finish, ModelEvent, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from kefu.llm.prices import NANO, PriceTable, load_prices, prices_path
from kefu.llm.usage import TokenCounts, counts_from_usage, estimate_counts
from kefu.obs.logging import get_logger
from kefu.obs.metrics import Metrics
from kefu.store.usage import UsageLedger, UsageRecord
from kefu.store.usage_spend import MemorySpend, RedisSpend, SpendCounter

log = get_logger("kefu.usage")


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc_day(moment: datetime) -> str:
    """The budget's day of ``moment``: the UTC date."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


class Budget:
    """An optional daily spending limit, shared by every replica through a :class:`SpendCounter`.

    The exceeded flag is kept locally: this process's own calls update it at once (the counter's ``add`` returns
    the day's total), other replicas' spend is read at most every ``refresh`` seconds. It is a soft limit: calls
    already running when it is crossed finish.
    """

    def __init__(
        self,
        counter: SpendCounter,
        *,
        limit_nano: int,
        currency: str,
        metrics: Metrics,
        refresh: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.currency = currency
        self.limit_nano = limit_nano
        self._counter = counter
        self._gauge = metrics.budget_exceeded
        self._refresh = refresh
        self._clock = clock
        self._now = now
        self._day = ""
        self._checked = float("-inf")
        self._exceeded = False
        self._gauge.set(0)

    def _update(self, day: str, total: int) -> None:
        exceeded = total >= self.limit_nano
        if exceeded and not (self._exceeded and self._day == day):
            log.warning(
                "daily_budget_exceeded",
                day=day,
                spent=str(Decimal(total) / NANO),
                budget=str(Decimal(self.limit_nano) / NANO),
                currency=self.currency,
                action="answering from the knowledge base only until the day ends (UTC)",
            )
        self._day, self._exceeded = day, exceeded
        self._checked = self._clock()
        self._gauge.set(1 if exceeded else 0)

    async def exceeded(self) -> bool:
        """Whether today's spend reached the budget (a counter that cannot be read keeps the last answer)."""
        day = utc_day(self._now())
        if day == self._day and self._clock() - self._checked < self._refresh:
            return self._exceeded
        try:
            total = await self._counter.total(day, self.currency)
        except Exception as exc:
            log.warning("budget_read_failed", error=repr(exc))
            return self._exceeded if day == self._day else False
        self._update(day, total)
        return self._exceeded

    async def add(self, at: datetime, nano: int, currency: str) -> None:
        """Count a call's cost (costs in another currency than the budget's are not counted)."""
        if currency != self.currency or nano <= 0:
            return
        day = utc_day(at)
        total = await self._counter.add(day, currency, nano)
        if day == utc_day(self._now()):
            self._update(day, total)


class MeteredCall:
    """One model call of a turn, watched on its way through (see the module docstring)."""

    def __init__(self, meter: UsageMeter, turn_id: str, session_id: str, default_model: str) -> None:
        self.turn_id = turn_id
        self.session_id = session_id
        self.default_model = default_model
        self.source = "llm"
        self.request: ChatRequest | None = None
        self.usage: Usage | None = None
        self.finish: Finish | None = None
        self.pieces: list[str] = []  # text received, kept for an estimate when no usage arrives
        self._meter = meter
        self._seen = False
        self._ended = False
        self._answered = False
        self._recorded = False

    async def watch(self, stream: AsyncIterator[ModelEvent]) -> AsyncIterator[ModelEvent]:
        """``stream``, passed through unchanged while its events are noted."""
        try:
            async for event in stream:
                self._seen = True
                if isinstance(event, TextDelta | ReasoningDelta):
                    self.pieces.append(event.text)
                elif isinstance(event, ToolCallDelta):
                    self.pieces.append(event.arguments)
                elif isinstance(event, Usage):
                    self.usage = event
                elif isinstance(event, Finish):
                    self.finish = event
                yield event
        finally:
            closing = getattr(stream, "aclose", None)
            if closing is not None:
                await closing()
            self._ended = True
            await self._maybe_record()

    async def answered(self, source: str | None) -> None:
        """The turn's answer ended (with ``source``; None keeps the planned one)."""
        if source is not None:
            self.source = source
        self._answered = True
        await self._maybe_record()

    async def _maybe_record(self) -> None:
        if self._recorded or not (self._ended and self._answered and self._seen):
            return
        self._recorded = True
        await self._meter.record(self)


class UsageMeter:
    """Prices each call, counts it in the metrics, appends it to the ledger and today's spend."""

    def __init__(
        self,
        *,
        ledger: UsageLedger | None,
        prices: PriceTable,
        metrics: Metrics,
        budget: Budget | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._ledger = ledger
        self._prices = prices
        self._metrics = metrics
        self._budget = budget
        self._now = now
        self._unpriced: set[str] = set()

    @property
    def budget(self) -> Budget | None:
        """The daily budget (None: no limit)."""
        return self._budget

    def call(self, turn_id: str, session_id: str, default_model: str) -> MeteredCall:
        """A call about to be made for a turn (``default_model``: the model asked for when the stream never says)."""
        return MeteredCall(self, turn_id, session_id, default_model)

    async def over_budget(self) -> bool:
        """Whether the daily budget is spent (never, without one)."""
        return self._budget is not None and await self._budget.exceeded()

    async def record(self, call: MeteredCall) -> None:
        """Price, count and store ``call``; failures are logged, never raised."""
        at = self._now()
        counts = counts_from_usage(call.usage) if call.usage is not None else estimate_counts(call.request, call.pieces)
        finish = call.finish
        model = (finish.model if finish is not None else None) or call.default_model
        price = self._prices.price(model)
        cost = price.cost_nano(counts) if price is not None else None
        currency = price.currency if price is not None else None
        self._count(model, counts, cost, currency)
        if price is None and not self._prices.empty and model not in self._unpriced:
            self._unpriced.add(model)
            log.warning("model_without_price", model=model, hint="add it to the prices file (docs/cost.md)")
        record = UsageRecord(
            created_at=at,
            turn_id=call.turn_id,
            session_id=call.session_id,
            source=call.source,
            model=model,
            upstream=finish.upstream if finish is not None else None,
            finish_reason=finish.reason if finish is not None else None,
            prompt_cache_hit_tokens=counts.prompt_cache_hit,
            prompt_cache_miss_tokens=counts.prompt_cache_miss,
            completion_tokens=counts.completion,
            reasoning_tokens=counts.reasoning,
            estimated=counts.estimated,
            cost_nano=cost,
            currency=currency,
        )
        if self._ledger is not None:
            try:
                await self._ledger.record(record)
            except Exception as exc:
                log.warning("usage_record_failed", turn_id=call.turn_id, error=repr(exc))
        if self._budget is not None and cost is not None and currency is not None:
            try:
                await self._budget.add(at, cost, currency)
            except Exception as exc:
                log.warning("budget_count_failed", turn_id=call.turn_id, error=repr(exc))

    def _count(self, model: str, counts: TokenCounts, cost: int | None, currency: str | None) -> None:
        tokens = self._metrics.llm_tokens
        tokens.labels(model=model, kind="prompt_cache_hit").inc(counts.prompt_cache_hit)
        tokens.labels(model=model, kind="prompt_cache_miss").inc(counts.prompt_cache_miss)
        tokens.labels(model=model, kind="completion").inc(counts.completion - counts.reasoning)
        tokens.labels(model=model, kind="reasoning").inc(counts.reasoning)
        if counts.estimated:
            self._metrics.llm_usage_estimated.labels(model=model).inc()
        if cost is not None and currency is not None:
            self._metrics.llm_cost.labels(model=model, currency=currency).inc(cost / 1e9)


async def open_meter(settings: Settings, metrics: Metrics, engine: AsyncEngine, redis: Redis | None) -> UsageMeter:
    """The process's meter: prices from the configured file, the SQL ledger, and the daily budget if one is set
    (its spend in Redis when configured, else in memory seeded from today's ledger). :class:`ConfigError` when the
    prices file is unusable or the budget cannot be priced."""
    path = prices_path(settings.prices_file, settings.bot_dir)
    prices = await asyncio.to_thread(load_prices, path) if path is not None else PriceTable()
    if path is None:
        log.info("prices_not_configured", hint="set KEFU_PRICES_FILE or add prices.yaml to the bot (docs/cost.md)")
    ledger = UsageLedger(engine)
    budget = None
    if settings.daily_budget is not None:
        currency = (settings.daily_budget_currency or prices.currency or "").strip().upper()
        if prices.empty or currency not in prices.currencies:
            raise ConfigError(
                f"KEFU_DAILY_BUDGET needs prices in {currency or 'its currency'}: set KEFU_PRICES_FILE (or add "
                "prices.yaml to the bot directory) and KEFU_DAILY_BUDGET_CURRENCY to one of its currencies"
            )
        counter: SpendCounter
        if redis is not None:
            counter = RedisSpend(redis, settings.redis_prefix)
        else:
            memory = MemorySpend()
            start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            memory.seed(utc_day(start), currency, await ledger.spent(start, start + timedelta(days=1), currency))
            counter = memory
        limit = int((Decimal(str(settings.daily_budget)) * NANO).to_integral_value())
        budget = Budget(
            counter,
            limit_nano=limit,
            currency=currency,
            metrics=metrics,
            refresh=settings.daily_budget_refresh_seconds,
        )
    return UsageMeter(ledger=ledger, prices=prices, metrics=metrics, budget=budget)
