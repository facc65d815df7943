""":class:`ResilientModel`: one :class:`~kefu.llm.base.ChatModel` over an ordered chain of upstreams.

Per turn: try the primary, then each fallback. On each route the circuit breaker is asked first (an open
breaker skips the route without a request), then a concurrency permit is taken from the route's limiter
(held until the stream ends), then the request is sent and the first event awaited. Until that first event is
passed on, errors are handled here (retry with backoff, fail over, or raise for a bad request); from then on the
stream is the caller's and any error propagates unchanged. One deadline bounds everything before the first
event. When every breaker is open the turn fails at once with :class:`AllUpstreamsUnavailable`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from kefu.errors import UpstreamError, UpstreamProtocolError, UpstreamStatusError
from kefu.llm.base import ChatModel, ChatRequest, Finish, ModelEvent
from kefu.llm.resilience.breaker import BreakerConfig, CircuitBreaker
from kefu.llm.resilience.errors import AllUpstreamsUnavailable, UpstreamDeadlineExceeded
from kefu.llm.resilience.limiter import AdaptiveLimiter, LimiterConfig, Permit
from kefu.llm.resilience.policy import BAD_REQUEST_STATUSES, Action, RetryPolicy
from kefu.llm.resilience.store import CLOSED, Admission, BreakerStore, MemoryBreakerStore, State
from kefu.obs.logging import get_logger
from kefu.obs.metrics import Metrics

log = get_logger("kefu.llm.resilience")

# asyncio may run a timer up to its clock resolution early; waking a hair late keeps a retry that waited out a
# Retry-After from finding the breaker it tripped still open.
_WAKE_SLACK = 0.01
# A retry that finds its route's breaker open only this much longer waits for it instead of failing over.
_SHORT_WAIT = 0.25


@dataclass(frozen=True, slots=True)
class Route:
    """One upstream of the chain.

    ``key`` identifies the upstream for the circuit breaker (shared across replicas; default ``model.name``),
    ``label`` names it in metrics and logs (default ``model.name``), ``limits`` overrides the chain's
    concurrency settings for this upstream.
    """

    model: ChatModel
    key: str | None = None
    label: str | None = None
    limits: LimiterConfig | None = None


class _Upstream:
    """A route with its breaker, limiter and metric children."""

    def __init__(
        self,
        route: Route,
        label: str,
        store: BreakerStore,
        breaker: BreakerConfig,
        limits: LimiterConfig,
        metrics: Metrics,
    ) -> None:
        self.model = route.model
        self.label = label
        state_gauge = metrics.upstream_breaker_state.labels(upstream=label)
        self.breaker = CircuitBreaker(route.key or route.model.name, store, breaker, on_state=state_gauge.set)
        queue = metrics.upstream_queue_length.labels(upstream=label)
        in_flight = metrics.upstream_in_flight.labels(upstream=label)
        limit = metrics.upstream_concurrency_limit.labels(upstream=label)

        def publish(limiter: AdaptiveLimiter) -> None:
            queue.set(limiter.queued)
            in_flight.set(limiter.in_flight)
            limit.set(limiter.limit)

        self.limiter = AdaptiveLimiter(label, route.limits or limits, on_change=publish)
        publish(self.limiter)
        state_gauge.set(State.CLOSED)
        self.queue_wait = metrics.upstream_queue_wait.labels(upstream=label)
        self.short_circuits = metrics.upstream_short_circuits.labels(upstream=label)
        self.balance = metrics.upstream_insufficient_balance.labels(upstream=label)
        self.account_alert_at: dict[int, float] = {}


@dataclass(slots=True)
class _Started:
    upstream: _Upstream
    inner: AsyncIterator[ModelEvent]
    first: ModelEvent
    permit: Permit


class ResilientModel:
    """Retries, fallback chain, circuit breakers and concurrency limits around several :class:`ChatModel`.

    ``name`` and ``model`` describe the primary; the :class:`Finish` of a stream names the model that actually
    answered. Breaker state goes to ``store`` (memory by default; Redis to share it between replicas).
    """

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        policy: RetryPolicy | None = None,
        breaker: BreakerConfig | None = None,
        limits: LimiterConfig | None = None,
        store: BreakerStore | None = None,
        metrics: Metrics | None = None,
        account_alert_interval: float = 300.0,
        rng: random.Random | None = None,
    ) -> None:
        if not routes:
            raise ValueError("a ResilientModel needs at least one route")
        self._policy = policy or RetryPolicy()
        self._store: BreakerStore = store or MemoryBreakerStore()
        self._metrics = metrics or Metrics()
        self._alert_interval = account_alert_interval
        self._rng = rng or random.Random()
        upstreams: list[_Upstream] = []
        seen: set[str] = set()
        for route in routes:
            label = route.label or route.model.name
            if label in seen:
                label = f"{label}#{len(upstreams) + 1}"
            seen.add(label)
            upstreams.append(
                _Upstream(
                    route, label, self._store, breaker or BreakerConfig(), limits or LimiterConfig(), self._metrics
                )
            )
        self._upstreams = tuple(upstreams)

    @property
    def name(self) -> str:
        """The primary's label."""
        return self._upstreams[0].label

    @property
    def model(self) -> str:
        """The primary's default model id."""
        return self._upstreams[0].model.model

    @property
    def labels(self) -> tuple[str, ...]:
        """The routes' labels, primary first."""
        return tuple(u.label for u in self._upstreams)

    @property
    def breakers(self) -> tuple[CircuitBreaker, ...]:
        """The routes' circuit breakers, primary first."""
        return tuple(u.breaker for u in self._upstreams)

    @property
    def limiters(self) -> tuple[AdaptiveLimiter, ...]:
        """The routes' concurrency limiters, primary first."""
        return tuple(u.limiter for u in self._upstreams)

    async def aclose(self) -> None:
        """Close every route's client and the breaker store."""
        for upstream in self._upstreams:
            await upstream.model.aclose()
        await self._store.aclose()

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        """Stream from the first route that starts answering; see the module docstring."""
        started = await self._start(request)
        upstream, inner, permit = started.upstream, started.inner, started.permit
        default_model = upstream.model.model
        try:
            event = started.first
            while True:
                if isinstance(event, Finish):
                    event = dataclasses.replace(event, model=event.model or default_model, upstream=upstream.label)
                yield event
                try:
                    event = await anext(inner)
                except StopAsyncIteration:
                    return
                except UpstreamError:
                    await upstream.breaker.record_failure(CLOSED)  # a stream that breaks counts against the upstream
                    raise
        finally:
            await self._close(inner, permit)

    async def _start(self, request: ChatRequest) -> _Started:
        """The first event of the first route that gives one, or the error that ends the attempt."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._policy.turn_deadline
        last: UpstreamError | None = None
        for index, upstream in enumerate(self._upstreams):
            routed = request if index == 0 else dataclasses.replace(request, model=None)
            retry = 0
            while True:
                if loop.time() >= deadline:
                    raise UpstreamDeadlineExceeded(
                        f"no upstream started answering within {self._policy.turn_deadline:g}s",
                        provider=upstream.label,
                    ) from last
                admission = await upstream.breaker.admit()
                if not admission.allowed and retry and admission.retry_in <= _SHORT_WAIT:
                    if loop.time() + admission.retry_in + _WAKE_SLACK < deadline:
                        await asyncio.sleep(admission.retry_in + _WAKE_SLACK)
                        admission = await upstream.breaker.admit()
                if not admission.allowed:
                    upstream.short_circuits.inc()
                    break
                try:
                    return await self._attempt(upstream, routed, admission, deadline)
                except UpstreamDeadlineExceeded:
                    raise
                except UpstreamError as exc:
                    last = exc
                    action = self._policy.classify(exc)
                    if action is Action.RAISE:
                        raise
                    delay = self._policy.delay(retry, exc, self._rng) if action is Action.RETRY else None
                    if delay is not None and loop.time() + delay < deadline:
                        self._metrics.upstream_retries.labels(upstream=upstream.label, code=exc.code).inc()
                        log.debug("upstream_retry", upstream=upstream.label, code=exc.code, delay=round(delay, 3))
                        retry += 1
                        await asyncio.sleep(delay + _WAKE_SLACK)
                        continue
                    self._metrics.upstream_failovers.labels(upstream=upstream.label, code=exc.code).inc()
                    log.info("upstream_failover", upstream=upstream.label, code=exc.code, retries=retry)
                    break
        if last is None:
            raise AllUpstreamsUnavailable(
                "every upstream's circuit breaker is open: " + ", ".join(self.labels), provider=self.name
            )
        raise last

    async def _attempt(
        self, upstream: _Upstream, request: ChatRequest, admission: Admission, deadline: float
    ) -> _Started:
        """One request to one upstream, up to its first event; reports the outcome to breaker and limiter."""
        loop = asyncio.get_running_loop()
        queued_at = loop.time()
        try:
            permit = await upstream.limiter.acquire(deadline - queued_at)
        except BaseException:
            await upstream.breaker.record_neutral(admission)
            raise
        upstream.queue_wait.observe(loop.time() - queued_at)
        inner = upstream.model.stream(request)
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    first = await anext(inner)
            except TimeoutError:
                raise UpstreamDeadlineExceeded(
                    f"{upstream.label} sent nothing before the turn's deadline", provider=upstream.label
                ) from None
            except StopAsyncIteration:
                raise UpstreamProtocolError(
                    f"{upstream.label} ended without a Finish", provider=upstream.label
                ) from None
        except UpstreamDeadlineExceeded:
            await self._close(inner, permit)
            await upstream.breaker.record_neutral(admission)
            raise
        except UpstreamError as exc:
            await self._close(inner, permit)
            await self._report(upstream, admission, permit, exc)
            raise
        except BaseException:
            await self._close(inner, permit)
            await upstream.breaker.record_neutral(admission)
            raise
        upstream.limiter.on_success()
        await upstream.breaker.record_success(admission)
        return _Started(upstream, inner, first, permit)

    async def _report(self, upstream: _Upstream, admission: Admission, permit: Permit, exc: UpstreamError) -> None:
        """Tell breaker and limiter what the failure says about the upstream; shout about account problems."""
        status = exc.status_code if isinstance(exc, UpstreamStatusError) else None
        if status in BAD_REQUEST_STATUSES:
            await upstream.breaker.record_success(admission)  # it answered; the request was the problem
            return
        if status == 429:
            upstream.limiter.on_overload(permit)
        if status == 402:
            upstream.balance.inc()
        if status in (401, 402):
            self._account_alert(upstream, status, exc)
        open_for = exc.retry_after if status == 429 and exc.retry_after else None
        await upstream.breaker.record_failure(admission, open_for=open_for)

    def _account_alert(self, upstream: _Upstream, status: int, exc: UpstreamError) -> None:
        now = time.monotonic()
        if now - upstream.account_alert_at.get(status, -self._alert_interval) < self._alert_interval:
            return
        upstream.account_alert_at[status] = now
        event = "upstream_balance_exhausted" if status == 402 else "upstream_auth_rejected"
        log.error(
            event,
            upstream=upstream.label,
            status=status,
            error=exc.message,
            action=f"failing over; top up or fix the account, this is logged at most every {self._alert_interval:g}s",
        )

    @staticmethod
    async def _close(inner: AsyncIterator[ModelEvent], permit: Permit) -> None:
        try:
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            permit.release()
