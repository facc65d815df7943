"""A small merchant backend served by uvicorn over loopback, recording every request it receives."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.support import free_port


@dataclass
class Seen:
    """One request the backend received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Backend:
    """The running backend: ``seen`` lists requests; ``fail_next`` makes the next N flaky reads answer 503."""

    port: int
    seen: list[Seen] = field(default_factory=list)
    fail_next: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


def build_app(backend: Backend) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        raw = await request.body()
        body: Any = None
        if raw:
            import json

            body = json.loads(raw)
        backend.seen.append(
            Seen(request.method, request.url.path, dict(request.query_params), dict(request.headers), body)
        )
        return await call_next(request)

    @app.get("/items/{item_id}")
    async def item(item_id: str, request: Request) -> dict[str, Any]:
        return {"item": {"id": item_id, "query": dict(request.query_params)}, "meta": {"v": 1}}

    @app.post("/things")
    async def things(request: Request) -> JSONResponse:
        return JSONResponse({"created": await request.json()}, status_code=201)

    @app.get("/missing")
    async def missing() -> JSONResponse:
        return JSONResponse({"error": "nope"}, status_code=404)

    @app.post("/conflict")
    async def conflict() -> JSONResponse:
        return JSONResponse({"error": "already_shipped"}, status_code=409)

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(2)
        return {"late": True}

    @app.get("/flaky")
    async def flaky() -> JSONResponse:
        if backend.fail_next > 0:
            backend.fail_next -= 1
            return JSONResponse({"error": "busy"}, status_code=503)
        return JSONResponse({"fine": True})

    @app.post("/flaky")
    async def flaky_write() -> JSONResponse:
        return JSONResponse({"error": "busy"}, status_code=503)

    @app.get("/redirect")
    async def redirect(to: str) -> Response:
        return Response(status_code=302, headers={"location": to})

    @app.get("/leaky")
    async def leaky() -> JSONResponse:
        return JSONResponse({"message": "no order for 13912345678", "email": "zhang@example.com"}, status_code=500)

    return app


def start_backend() -> tuple[Backend, uvicorn.Server, threading.Thread]:
    """Run the backend in a thread until ``server.should_exit`` is set."""
    backend = Backend(port=free_port())
    config = uvicorn.Config(build_app(backend), host="127.0.0.1", port=backend.port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("backend did not start")
        time.sleep(0.02)
    return backend, server, thread
