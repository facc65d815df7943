"""Errors the resilience layer raises itself (the providers' own errors pass through unchanged)."""

from __future__ import annotations

from kefu.errors import UpstreamError, UpstreamTimeout


class AllUpstreamsUnavailable(UpstreamError):
    """Every route's circuit breaker is open: the turn should degrade at once instead of waiting."""

    code = "all_upstreams_unavailable"
    status = 503
    retryable = True


class UpstreamQueueTimeout(UpstreamError):
    """No concurrency permit for the upstream within the queue timeout (or the queue is full)."""

    code = "upstream_queue_timeout"
    status = 503
    retryable = True


class UpstreamDeadlineExceeded(UpstreamTimeout):
    """The turn's total budget for starting an answer (all retries and fallbacks together) ran out."""

    code = "upstream_deadline_exceeded"
    retryable = True
