"""``create_app(settings)``: the ASGI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from kefu import __version__
from kefu.api import (
    admin_bot,
    admin_kb,
    admin_report,
    chat,
    completions,
    demo,
    desk,
    handoff,
    health,
    privacy,
    sessions,
    web,
)
from kefu.api.deps import BotAdmin, PeopleApi, PrivacyApi, Readiness, Services, TurnApi
from kefu.api.errors import install_error_handlers
from kefu.api.openapi import CLIENT_ERRORS
from kefu.api.request_guard import RequestGuard
from kefu.api.request_id import HEADER as REQUEST_ID_HEADER
from kefu.api.request_id import RequestIds
from kefu.api.security import SecurityHeaders
from kefu.config import Settings
from kefu.demo.shop import MOUNT_PATH as SHOP_MOUNT_PATH
from kefu.demo.shop import shop_token
from kefu.demo.shop.api import shop_mount
from kefu.demo.shop.data import ShopStore
from kefu.obs import tracing
from kefu.obs.logging import configure_logging, get_logger
from kefu.report.service import open_reports
from kefu.runtime import Runtime, build_runtime

log = get_logger("kefu.app")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; clients, pools and the database are opened in the lifespan, not here."""
    settings = settings or Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    tracing.configure(enabled=settings.otel, exporter=settings.otel_exporter, service_version=__version__)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await build_runtime(settings)
        app.state.services = services_of(runtime)
        app.state.reports = open_reports(settings, knowledge=lambda: runtime.knowledge, texts=lambda: runtime.bot.texts)
        log.info(
            "kefu_started",
            version=__version__,
            demo=settings.demo,
            database=settings.database_url.split("://", 1)[0],
            redis=bool(settings.redis_url),
            llm=runtime.model.name if runtime.model else "NOT CONFIGURED (set KEFU_LLM_API_KEY)",
        )
        try:
            yield
        finally:
            await app.state.reports.aclose()
            await runtime.aclose()
            tracing.shutdown()  # exports the spans still buffered

    # No /docs or /redoc: those pages load their scripts from a CDN (kefu serves everything itself, under a CSP
    # that allows nothing else); the schema stays at /openapi.json.
    app = FastAPI(title="kefu", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    # Added innermost first: the guard's refusals still get CORS and security headers.
    app.add_middleware(RequestGuard)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Last-Event-ID",
                "X-Kefu-User",
                "X-Kefu-Session",
                REQUEST_ID_HEADER,
            ],
            expose_headers=["X-Kefu-Session", "X-Kefu-Turn", "Retry-After", REQUEST_ID_HEADER],
        )
    app.add_middleware(SecurityHeaders, frame_ancestors=settings.frame_ancestors)
    # Outermost: every response (refusals and CORS preflights too) carries the id, and the access log times it all.
    app.add_middleware(RequestIds, access_log=settings.access_log)
    for router in (
        chat.router,
        sessions.router,
        handoff.router,
        desk.router,
        completions.router,
        health.router,
        web.router,
        admin_kb.router,
        admin_bot.router,
        privacy.router,
        privacy.admin_router,
        admin_report.router,
    ):
        app.include_router(router, responses=CLIENT_ERRORS)
    if settings.demo:
        app.include_router(demo.router, responses=CLIENT_ERRORS)
        app.include_router(web.demo_router)
        # The demo merchant API the demo bot's tools call (per-process, in memory): an app of its own.
        app.router.routes.append(shop_mount(SHOP_MOUNT_PATH, ShopStore(), shop_token(settings)))
    return app


def services_of(runtime: Runtime) -> Services:
    """The slices of ``runtime`` the HTTP layer uses."""
    settings = runtime.settings
    return Services(
        auth=runtime.auth,
        limiter=runtime.limiter,
        turns=TurnApi(
            chat=runtime.chat,
            heartbeat=settings.sse_heartbeat,
            active_streams=runtime.metrics.active_streams,
            default_model=settings.llm_model,
        ),
        readiness=Readiness(
            probes=(("database", runtime.store.ping), ("hot_state", runtime.hot.ping)),
            model=runtime.model,
            llm_base_url=settings.llm_base_url,
            render_metrics=runtime.metrics.render,
        ),
        knowledge=lambda: runtime.knowledge,
        bot_admin=BotAdmin(reload=runtime.reload_bot, handoffs=runtime.desk.handoffs),
        people=PeopleApi(
            chat=runtime.chat,
            desk=runtime.desk,
            accounts=runtime.accounts,
            deliveries=lambda limit: runtime.webhooks.deliveries(limit),
            heartbeat=settings.sse_heartbeat,
        ),
        privacy=PrivacyApi(rights=runtime.rights, retention=runtime.retention),
    )


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (each worker reads the environment)."""
    return create_app(Settings())
