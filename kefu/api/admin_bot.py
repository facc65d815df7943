"""``/v1/admin/bot``: reload the bot directory without a restart, list handoff requests (server API keys only).

A reload checks the directory first; an invalid bot is refused with the full problem report (422) and the
running bot stays. Turns already running finish with the bot they started with.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from kefu.api.deps import BotAdminDep, require_api_key
from kefu.errors import ConfigError, InvalidInput

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_api_key)])


@router.post("/bot/reload")
async def reload_bot(admin: BotAdminDep) -> dict[str, Any]:
    """Reload this process's bot (prompt, texts, tools, flows) from its directory."""
    try:
        bot = await admin.reload()
    except ConfigError as exc:
        raise InvalidInput(exc.message, code="invalid_bot") from exc
    return {
        "directory": str(bot.directory),
        "fingerprint": bot.fingerprint,
        "flows": sorted(bot.flows.names()),
        "tools": sorted(bot.tools.risks()),
    }


@router.get("/handoffs")
async def list_handoffs(admin: BotAdminDep, status: str | None = "open") -> dict[str, Any]:
    """Handoff requests recorded by flows (oldest first); ``status=`` empty for all."""
    records = await admin.handoffs(status=status or None)
    return {
        "handoffs": [
            {
                "id": r.id,
                "session_id": r.session_id,
                "user_id": r.user_id,
                "turn_id": r.turn_id,
                "flow": r.flow,
                "reason": r.reason,
                "summary": r.summary,
                "status": r.status,
                "created_at": r.created_at.isoformat(),
            }
            for r in records
        ]
    }
