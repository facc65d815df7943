"""The fake upstream's command: ``kefu mock-llm`` and ``python -m kefu.llm.mock`` (an OpenAI/DeepSeek-compatible
fake upstream for tests and benchmarks)."""

from __future__ import annotations

from typing import Annotated

import typer


def mock_llm(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9999,
    ttft: Annotated[float, typer.Option(min=0, help="Seconds before the first content token.")] = 0.2,
    tps: Annotated[float, typer.Option(min=0, help="Tokens (answer characters) per second; 0 = no pacing.")] = 200.0,
    chunk_chars: Annotated[int, typer.Option(min=1, help="Characters per stream chunk.")] = 4,
    tokens: Annotated[int, typer.Option(min=0, help="Answer length in tokens (characters).")] = 60,
    keepalive: Annotated[
        float, typer.Option(min=0, help="Seconds between ': keep-alive' comments while waiting; 0 = none.")
    ] = 0.0,
    fail: Annotated[
        str | None,
        typer.Option(
            help="Failure for every request (or for --fail-rate of them): an HTTP status such as 429, or "
            "cut, stall, stall_mid, json, reject_stream_options, reasoning, tool_call, split_bytes, error_event."
        ),
    ] = None,
    fail_rate: Annotated[
        float | None, typer.Option(min=0, max=1, help="Fraction of requests that fail (with --fail, default 503).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name to report (default: echo the request's).")] = None,
    api_key: Annotated[
        str | None, typer.Option(help="Require this bearer key (tokens from /oauth/token are accepted too).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed for --fail-rate.")] = None,
    max_concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Answer 429 to requests arriving while this many answers are in flight."),
    ] = None,
    max_concurrency_retry_after: Annotated[
        float | None, typer.Option(min=0, help="Retry-After seconds sent with --max-concurrency 429s.")
    ] = None,
) -> None:
    """Serve a fake chat-completions upstream with configurable latency, pacing and failures.

    Per request, a FIFO script (POST /_mock/script {"steps": [{"fail": "429", "retry_after": 2}, {}]})
    or a directive in the last user message (\\[\\[mock:{"fail": "cut", "after_chunks": 5}]]) overrides
    these defaults. GET /_mock/stats shows what was received; DELETE /_mock/script clears the script.

    Example: kefu mock-llm --port 9999 --ttft 0.5 --tps 50 --keepalive 0.2 --fail 503 --fail-rate 0.1

    Example (a provider capped at 10 concurrent answers): kefu mock-llm --max-concurrency 10
    --max-concurrency-retry-after 1
    """
    from kefu.llm.mock import MockConfig, run_mock
    from kefu.llm.mock.config import KINDS

    if fail is not None and fail not in KINDS and not (len(fail) == 3 and fail.isdigit()):
        raise typer.BadParameter(f"unknown failure kind {fail!r}", param_hint="--fail")
    config = MockConfig(
        ttft=ttft,
        tps=tps,
        chunk_chars=chunk_chars,
        tokens=tokens,
        keepalive=keepalive,
        fail=fail,
        fail_rate=fail_rate,
        model=model,
        seed=seed,
        api_key=api_key,
        max_concurrency=max_concurrency,
        max_concurrency_retry_after=max_concurrency_retry_after,
    )
    typer.echo(f"mock LLM listening on http://{host}:{port} (POST /v1/chat/completions)", err=True)
    run_mock(config, host, port)
