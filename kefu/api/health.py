"""``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from kefu.api.deps import OperatorDep, ReadinessDep

router = APIRouter(tags=["ops"])


# Load balancers probe with HEAD too; the HEAD routes stay out of the OpenAPI document (same answers, no body).
@router.head("/healthz", include_in_schema=False)
@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    """Always 200 while the process serves requests."""
    return {"status": "ok"}


@router.head("/readyz", include_in_schema=False)
@router.get(
    "/readyz",
    responses={503: {"description": "The database or Redis cannot be reached", "content": {"application/json": {}}}},
    summary="Dependencies are usable",
)
async def readyz(ready: ReadinessDep, operator: OperatorDep) -> JSONResponse:
    """503 if the database or Redis cannot be reached; a missing model is reported but not fatal.

    Anyone sees whether each dependency is ok; only operators (a server API key) see why one is not, which
    model and provider answer, and where: exception texts name hosts and ports."""
    checks: dict[str, dict[str, object]] = {}
    for name, probe in ready.probes:
        try:
            await probe()
            checks[name] = {"ok": True}
        except Exception as exc:  # any failure means "not ready"; the reason goes to the operator
            checks[name] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    if ready.model is not None:
        checks["llm"] = {"ok": True, "model": ready.model.model, "provider": ready.model.name}
    else:
        checks["llm"] = {
            "ok": False,
            "detail": "no model configured: set KEFU_LLM_API_KEY (until then only the knowledge base answers)",
            "base_url": ready.llm_base_url,
        }
    fatal = not (checks["database"]["ok"] and checks["hot_state"]["ok"])
    status = "unavailable" if fatal else ("ok" if checks["llm"]["ok"] else "degraded")
    if not operator:
        checks = {name: {"ok": check["ok"]} for name, check in checks.items()}
    return JSONResponse({"status": status, "checks": checks}, status_code=503 if fatal else 200)


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
async def metrics(ready: ReadinessDep) -> Response:
    """The Prometheus text exposition format."""
    return Response(ready.render_metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")
