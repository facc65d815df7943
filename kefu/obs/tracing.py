"""Traces (OpenTelemetry), optional: the one facade the rest of kefu uses, whether tracing is on or not.

Off (the default: ``KEFU_OTEL`` unset), every call returns a shared do-nothing object: no OpenTelemetry import, no
allocation beyond the call's keyword arguments (``benchmarks/tracing.py`` measures it). On (``KEFU_OTEL=1`` and the
``otel`` extra installed), a turn is a trace: a root span ``kefu.turn`` started when the turn is accepted and ended
when its task ends, with child spans for the knowledge-base search, the flow step, the model call and the store
writes. Child spans follow the turn's tasks because OpenTelemetry keeps the current span in a context variable,
which every task copies when it is created.

Only :func:`configure` imports OpenTelemetry; the tracer provider is kefu's own (not the process-global one), so
tests can swap exporters and nothing else in the process is affected.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol

from kefu.obs.logging import current_request_id, mask_pii

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span as OtelSpan
    from opentelemetry.trace import Tracer

AttrValue = str | bool | int | float | None  # None: the attribute is left out
Exporter = Literal["otlp", "console"]
EXTRA_HINT = "pip install 'kefu[otel]'"


class TracingUnavailable(RuntimeError):
    """Tracing was asked for (``KEFU_OTEL=1``) but the OpenTelemetry packages it needs are not installed."""


class Span(Protocol):
    """A span (or the no-op stand-in): ``with`` makes it current; :func:`span` ends it on exit too."""

    def set(self, **attributes: AttrValue) -> None:
        """Add attributes, named ``kefu.<keyword>`` (None values are skipped)."""

    def end(self) -> None:
        """End it (spans from :func:`start_span` only; :func:`span` ends its own)."""

    def __enter__(self) -> Span: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class _NoSpan:
    """Tracing is off: every operation does nothing. One shared instance."""

    __slots__ = ()

    def set(self, **attributes: AttrValue) -> None:
        return None

    def end(self) -> None:
        return None

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None


NO_SPAN = _NoSpan()
_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def span(name: str, **attributes: AttrValue) -> Span:
    """A child of the current span, current inside ``with`` and ended at its exit: ``with span("kefu.kb.search"):``.
    Attributes are named ``kefu.<keyword>`` (None values are left out). An exception leaving the block marks it as
    an error (a cancellation only as ``kefu.cancelled``)."""
    tracer = _tracer
    if tracer is None:
        return NO_SPAN
    return _Live(tracer.start_span(name, attributes=_clean(attributes)), end_on_exit=True)


def start_span(name: str, **attributes: AttrValue) -> Span:
    """A span that lives past the block that starts it (a turn): ``with`` makes it current (tasks created inside
    inherit it) without ending it; call ``end()`` when the work is over. The request's id is added when there is
    one, so a trace can be found from a log line."""
    tracer = _tracer
    if tracer is None:
        return NO_SPAN
    attributes.setdefault("request_id", current_request_id())
    return _Live(tracer.start_span(name, attributes=_clean(attributes)), end_on_exit=False)


def annotate(**attributes: AttrValue) -> None:
    """Add attributes to the current span (nothing when tracing is off or no span is current)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attributes(_clean(attributes))


def enabled() -> bool:
    """Whether spans are recorded."""
    return _tracer is not None


def configure(
    *, enabled: bool, exporter: Exporter = "otlp", service_version: str = "", span_exporter: SpanExporter | None = None
) -> None:
    """Turn tracing on or off for this process (each server worker calls it once, from ``create_app``).

    Spans go to ``span_exporter`` when given (tests: an in-memory exporter, exported as each span ends), else to
    the OTLP/HTTP exporter (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``, … as OpenTelemetry
    documents them) or the console, in batches from a background thread. ``OTEL_SERVICE_NAME`` (default ``kefu``),
    ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_TRACES_SAMPLER`` are read by the SDK. Raises
    :class:`TracingUnavailable` when tracing is asked for but the ``otel`` extra is not installed.
    """
    global _tracer, _provider
    shutdown()
    if not enabled:
        return
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:
        raise TracingUnavailable(f"KEFU_OTEL=1 needs the OpenTelemetry SDK: {EXTRA_HINT} ({exc})") from exc
    attributes: dict[str, str] = {"service.version": service_version} if service_version else {}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = "kefu"
    provider = TracerProvider(resource=Resource.create(attributes))
    if span_exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(_exporter(exporter)))
    _provider = provider
    _tracer = provider.get_tracer("kefu")


def shutdown() -> None:
    """Export what is buffered and stop recording (the server's shutdown; a no-op when tracing is off)."""
    global _tracer, _provider
    provider = _provider
    _tracer = None
    _provider = None
    if provider is not None:
        provider.shutdown()


def _exporter(kind: Exporter) -> SpanExporter:
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise TracingUnavailable(
            f"KEFU_OTEL_EXPORTER=otlp needs the OTLP/HTTP exporter: {EXTRA_HINT} "
            f"(or KEFU_OTEL_EXPORTER=console) ({exc})"
        ) from exc
    return OTLPSpanExporter()


def _clean(attributes: Mapping[str, AttrValue]) -> dict[str, str | bool | int | float]:
    return {f"kefu.{key}": value for key, value in attributes.items() if value is not None}


class _Live:
    """A recording span; ``with`` attaches it to the current context."""

    __slots__ = ("_end_on_exit", "_span", "_tokens")

    def __init__(self, otel_span: OtelSpan, *, end_on_exit: bool) -> None:
        self._span = otel_span
        self._end_on_exit = end_on_exit
        self._tokens: list[Any] = []  # a turn's span may be made current more than once

    def set(self, **attributes: AttrValue) -> None:
        self._span.set_attributes(_clean(attributes))

    def end(self) -> None:
        self._span.end()

    def __enter__(self) -> _Live:
        from opentelemetry import context, trace

        self._tokens.append(context.attach(trace.set_span_in_context(self._span)))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        if isinstance(exc, asyncio.CancelledError):
            self._span.set_attribute("kefu.cancelled", True)  # an explicit cancel or a shutdown, not a fault
        elif exc is not None:
            # Like a log line, a trace never holds personal numbers (an error message may quote a tool argument).
            message = mask_pii(str(exc))[:500]
            self._span.add_event("exception", {"exception.type": type(exc).__name__, "exception.message": message})
            self._span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {message}"[:200]))
        context.detach(self._tokens.pop())
        if self._end_on_exit:
            self._span.end()
