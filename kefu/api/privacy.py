"""Personal-data requests: a shopper's export and erasure (``/v1/me``), the same for admins by user id, the
retention sweep and the privacy audit (``/v1/admin/privacy``). docs/privacy.md."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from kefu.api.deps import IdentityDep, PrivacyApiDep, require_api_key

router = APIRouter(prefix="/v1/me", tags=["privacy"])
admin_router = APIRouter(prefix="/v1/admin/privacy", tags=["admin"], dependencies=[Depends(require_api_key)])

UserId = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f]+$")]


@router.get("/export", summary="Everything kefu holds about the caller, as JSON")
async def export_mine(identity: IdentityDep, api: PrivacyApiDep) -> dict[str, Any]:
    """The caller's conversations with every message, handoff, rating, flow state, feed event and webhook
    delivery about them."""
    return await api.rights.export(identity.user_id, actor="shopper")


@router.delete("", summary="Erase everything kefu holds about the caller")
async def erase_mine(identity: IdentityDep, api: PrivacyApiDep) -> dict[str, Any]:
    """Delete every conversation of the caller and every trace of it (rows, turn logs, caches); returns counts.
    409 if a running turn would not stop in time (try again)."""
    return {"erased": await api.rights.erase(identity.user_id, actor="shopper")}


@admin_router.get("/users/{user_id}/export", summary="Everything kefu holds about a user")
async def export_user(
    user_id: UserId, api: PrivacyApiDep, include_notes: Annotated[bool, Query()] = False
) -> dict[str, Any]:
    """A user's export; ``include_notes`` adds the shop's internal desk notes (review them before handing them
    out). 404 when kefu holds nothing about the user."""
    return await api.rights.export(user_id, actor="admin", include_notes=include_notes, missing_ok=False)


@admin_router.delete("/users/{user_id}", summary="Erase everything kefu holds about a user")
async def erase_user(user_id: UserId, api: PrivacyApiDep) -> dict[str, Any]:
    """Counts of what was erased; 404 when kefu holds nothing about the user."""
    return {"erased": await api.rights.erase(user_id, actor="admin", missing_ok=False)}


@admin_router.post("/sweep", summary="Run the retention sweep now")
async def sweep(api: PrivacyApiDep) -> dict[str, Any]:
    """Anonymise and delete what the retention periods say; ``ran: false`` when another replica is sweeping."""
    result = await api.retention.sweep(actor="admin")
    return {"ran": False} if result is None else {"ran": True, **result.as_dict()}


@admin_router.get("/audit", summary="The privacy audit, newest first")
async def audit(api: PrivacyApiDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Exports, erasures and sweeps: when, by whom, about whom (a SHA-256 of the user id), counts."""
    records = await api.rights.audit_log(limit)
    return {
        "records": [
            {
                "at": r.at.isoformat(),
                "action": r.action,
                "actor": r.actor,
                "subject": r.subject,
                "details": r.details,
            }
            for r in records
        ]
    }
