"""The mock upstream as a Starlette app: OpenAI/DeepSeek-compatible chat completions with failure injection.

Routes: ``POST /chat/completions`` and ``/v1/chat/completions``, ``GET /v1/models``, ``GET /healthz``,
``POST /oauth/token`` (client-credentials grant), and the control routes ``POST|DELETE /_mock/script``,
``GET /_mock/stats``, ``POST /_mock/reset``, ``POST /_mock/oauth``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kefu.llm.mock import oauth
from kefu.llm.mock.config import MockConfig, MockStep, find_directive
from kefu.llm.mock.state import MockState
from kefu.llm.mock.stream import StreamPlan, StreamResponse

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("Invalid request body", "invalid_request_error"),
    401: ("Authentication Fails, your api key is invalid", "authentication_error"),
    402: ("Insufficient Balance", "insufficient_balance"),
    422: ("Invalid Parameters", "invalid_request_error"),
    429: ("Rate Limit Reached", "rate_limit_error"),
    500: ("Server Error", "server_error"),
    503: ("Server Overloaded", "server_overloaded"),
}


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(obj), status, headers=headers, media_type="application/json")


def error_response(status: int, step: MockStep | None = None, message: str | None = None) -> Response:
    """A provider-style error: ``{"error": {"message", "type", "param", "code"}}`` plus Retry-After headers."""
    default, kind = _ERRORS.get(status, (f"Mock error {status}", "api_error"))
    headers: dict[str, str] = {}
    if step is not None and step.retry_after is not None:
        headers["retry-after"] = f"{step.retry_after:g}"
    if step is not None and step.retry_after_ms is not None:
        headers["retry-after-ms"] = f"{step.retry_after_ms:g}"
    text = message or (step.message if step is not None and step.message else None) or default
    body = {"error": {"message": text, "type": kind, "param": None, "code": str(status)}}
    return _json(body, status, headers)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def build_mock_app(config: MockConfig) -> Starlette:
    """The mock upstream application (state lives in ``app.state.mock``)."""
    state = MockState(config)

    async def chat_completions(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
            messages = body["messages"]
            if not isinstance(messages, list) or not messages:
                raise ValueError("messages must be a non-empty list")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return error_response(400, message=f"Invalid request body: {exc}")
        state.requests += 1
        state.seq += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        state.recent.append({"path": request.url.path, "body": body, "headers": headers})
        if config.api_key is not None and not state.oauth.authorized(request.headers.get("authorization")):
            state.outcomes["401"] += 1
            return error_response(401)
        if config.max_concurrency is not None and state.active >= config.max_concurrency:
            # Checked before the script so a scripted step is not used up by a request the cap turned away.
            state.over_capacity += 1
            state.outcomes["429"] += 1
            return error_response(
                429,
                MockStep(retry_after=config.max_concurrency_retry_after),
                message="Too many concurrent requests for this account",
            )
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        question = _text_of(users[-1].get("content")) if users else ""
        try:
            directive, question = find_directive(question)
            step = MockStep.from_json(directive) if directive is not None else state.next_step()
        except ValueError as exc:
            return error_response(400, message=str(exc))
        step = step.resolved(config)
        kind = step.fail
        if kind == "reject_stream_options":
            if "stream_options" in body:
                state.outcomes[kind] += 1
                return error_response(400, message="Unrecognized request argument supplied: stream_options")
            kind = step.fail = None
        if kind is not None and kind.isdigit():
            state.outcomes[kind] += 1
            return error_response(int(kind), step)
        state.outcomes[kind or "ok"] += 1
        stream = bool(body.get("stream"))
        options = body.get("stream_options")
        plan = StreamPlan(
            step=step,
            question=question,
            model=config.model or str(body.get("model") or "mock-model"),
            completion_id=f"chatcmpl-mock-{state.seq}",
            created=int(time.time()),
            prompt_tokens=sum(len(_text_of(m.get("content"))) for m in messages if isinstance(m, dict)) // 2
            + 4 * len(messages),
            include_usage=stream and isinstance(options, dict) and bool(options.get("include_usage")),
            as_json=not stream or kind == "json" or step.json,
        )
        return StreamResponse(plan, state)

    async def models(request: Request) -> Response:
        model = config.model or "mock-model"
        return _json({"object": "list", "data": [{"id": model, "object": "model", "owned_by": "kefu-mock"}]})

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    async def set_script(request: Request) -> Response:
        try:
            doc = orjson.loads(await request.body())
            steps = [MockStep.from_json(s) for s in doc["steps"]]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return error_response(400, message=f"bad script: {exc}")
        if not doc.get("append"):
            state.script.clear()
        state.script.extend(steps)
        return _json({"script_remaining": len(state.script)})

    async def clear_script(request: Request) -> Response:
        state.script.clear()
        return _json({"script_remaining": 0})

    async def stats(request: Request) -> Response:
        return _json(state.stats())

    async def reset(request: Request) -> Response:
        state.script.clear()
        state.reset_stats()
        state.oauth.reset()
        return _json({"reset": True})

    app = Starlette(
        routes=[
            Route("/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/models", models, methods=["GET"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            *oauth.routes(state.oauth),
            Route("/_mock/script", set_script, methods=["POST"]),
            Route("/_mock/script", clear_script, methods=["DELETE"]),
            Route("/_mock/stats", stats, methods=["GET"]),
            Route("/_mock/reset", reset, methods=["POST"]),
        ]
    )
    app.state.mock = state
    return app


class _QuietCut(logging.Filter):
    """Drop uvicorn's complaint about the ``cut`` failure: closing mid-body is the point of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


def run_mock(config: MockConfig, host: str = "127.0.0.1", port: int = 9999) -> None:
    """Serve the mock with uvicorn until interrupted."""
    import uvicorn

    logging.getLogger("uvicorn.error").addFilter(_QuietCut())
    uvicorn.run(
        build_mock_app(config),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=4096,
        timeout_keep_alive=30,
    )


__all__ = ["MockState", "build_mock_app", "error_response", "run_mock"]
