"""Micro-benchmark of the tracing facade (kefu.obs.tracing), in-process: what a span costs a turn.

- off (the default): ``with span(name, **attributes)`` and ``start_span`` + ``end`` against the shared no-op, and an
  empty ``with`` block on a pre-built no-op object as the floor (what any ``with`` costs);
- on, exporting to nothing (an SDK span with no processor doing work), to show what turning it on costs before any
  export;
- per turn: a turn opens about six spans (turn, flow step, KB search, model call, two store writes), so the
  off-cost of a turn is about six times the per-span number.

    .venv/bin/python -m benchmarks.tracing
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from kefu.obs import tracing

SPANS_PER_TURN = 6


def timed(fn: Callable[[], object], *, repeat: int = 7, number: int = 200_000) -> tuple[float, float]:
    """Median and min of ``repeat`` runs, in nanoseconds per call."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number * 1e9)
    return statistics.median(runs), min(runs)


def floor() -> None:
    with tracing.NO_SPAN:
        pass


def child_span() -> None:
    with tracing.span("kefu.kb.search", hits=3, confidence="high"):
        pass


def child_span_with_set() -> None:
    with tracing.span("kefu.llm.call", provider="deepseek", model="deepseek-chat") as call:
        call.set(ttft_ms=412.5, prompt_tokens=812, completion_tokens=96)


def turn_span() -> None:
    root = tracing.start_span("kefu.turn", turn_id="t_0123456789", session_id="s_0123456789")
    with root:
        pass
    root.end()


def annotate() -> None:
    tracing.annotate(outcome="complete", source="llm")


CASES: list[tuple[str, Callable[[], None]]] = [
    ("empty with on a no-op (floor)", floor),
    ("span(name, 2 attributes)", child_span),
    ("span(...) + set(3 attributes)", child_span_with_set),
    ("start_span + with + end (a turn)", turn_span),
    ("annotate(2 attributes)", annotate),
]


def run(label: str, number: int) -> None:
    print(f"\n{label}")
    print(f"  {'case':<36} {'median ns':>10} {'min ns':>10}")
    for name, fn in CASES:
        median, best = timed(fn, number=number)
        print(f"  {name:<36} {median:>10.0f} {best:>10.0f}")


def main() -> None:
    tracing.shutdown()
    assert not tracing.enabled()
    run("tracing off (KEFU_OTEL unset): the no-op", 200_000)
    median, _ = timed(child_span_with_set, number=200_000)
    print(f"\n  ~{SPANS_PER_TURN} spans per turn: ~{median * SPANS_PER_TURN / 1000:.2f} µs of a turn's CPU when off")

    from collections.abc import Sequence

    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracing.configure(enabled=True, span_exporter=Discard())
    try:
        run("tracing on, spans discarded on end (SDK cost before any export)", 20_000)
    finally:
        tracing.shutdown()


if __name__ == "__main__":
    main()
