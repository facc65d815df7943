"""What the OpenAPI document (``/openapi.json``) says beyond what FastAPI infers: the one error body of every
4xx (and of the 5xx the facade answers with), and which responses are event streams.

Clients and schemathesis (tests/api/test_schemathesis.py) read the document; it should describe the responses
kefu actually sends.
"""

from __future__ import annotations

from typing import Any

# The body of every error response (DESIGN.md, "Errors"): a stable `code` to branch on, a `message` for people.
# Written out (not a model) because the event-stream routes would otherwise document it as their stream's type.
ERROR_BODY: dict[str, Any] = {
    "application/json": {
        "schema": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        }
    }
}
# Every router is included with these: 401, 403, 404, 409, 413, 422, 429 … all share the body.
CLIENT_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"description": "The request was refused; `error.code` says why", "content": ERROR_BODY},
}
# The OpenAI facade answers a turn that failed before any text with the status of its error (502, 503, 504).
UPSTREAM_ERRORS: dict[int | str, dict[str, Any]] = {
    "5XX": {"description": "The model provider failed before any text was sent", "content": ERROR_BODY},
}
# Server-Sent Events. Before OpenAPI 3.2 the schema of an event stream describes one event; each event's `data`
# (JSON, or `[DONE]` on the facade) is described in DESIGN.md ("Public HTTP contract").
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"}},
}
EVENT_STREAM: dict[str, Any] = {"text/event-stream": {"schema": SSE_EVENT}}
# For routes that declare EventStreamResponse (FastAPI documents its stream as a string otherwise).
STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {200: {"content": EVENT_STREAM}}
