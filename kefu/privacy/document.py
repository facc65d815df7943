"""The export document: everything kefu holds about one shopper, as JSON a person can read.

Internal columns (row ids, locks, read markers, retry bookkeeping, the receiving URL of a webhook) are left out;
every text and every JSON payload about the shopper is in. Desk notes are the shop's internal notes about the
conversation, written by its staff and possibly naming them: they are only included when asked for (the admin
export), so that the shop's data-protection officer reviews them before handing them out (docs/privacy.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from kefu.store.privacy import SessionData

FORMAT = "kefu.export/1"


def export_document(
    user_id: str, sessions: Sequence[SessionData], *, exported_at: datetime, include_notes: bool
) -> dict[str, Any]:
    """The export of ``user_id``'s ``sessions``."""
    return {
        "format": FORMAT,
        "user_id": user_id,
        "exported_at": exported_at.isoformat(),
        "desk_notes_included": include_notes,
        "sessions": [_session(data, include_notes) for data in sessions],
    }


def counts(sessions: Sequence[SessionData], *, include_notes: bool) -> dict[str, int]:
    """How many rows of each table an export holds (what the audit records instead of the data)."""
    found = {
        "sessions": len(sessions),
        "messages": sum(len(s.messages) for s in sessions),
        "flow_states": sum(1 for s in sessions if s.flow_state is not None),
        "handoff_requests": sum(len(s.handoffs) for s in sessions),
        "conversation_events": sum(len(s.events) for s in sessions),
        "webhook_deliveries": sum(len(s.deliveries) for s in sessions),
    }
    if include_notes:
        found["desk_notes"] = sum(len(s.notes) for s in sessions)
    return found


def _session(data: SessionData, include_notes: bool) -> dict[str, Any]:
    row = data.session
    out: dict[str, Any] = {
        "session_id": row["id"],
        "created_at": _time(row["created_at"]),
        "last_active_at": _time(row["last_active_at"]),
        "handoff_state": row["handoff_state"],
        "anonymised_at": _time(row["anonymised_at"]),
        "messages": [
            {
                "role": m["role"],
                "content": m["content"],
                "status": m["status"],
                "created_at": _time(m["created_at"]),
                "turn_id": m["turn_id"],
                "source": m["source"],
                "model": m["model"],
                "author": m["author"],
                "moderation": m.get("moderation"),
            }
            for m in data.messages
        ],
        "flow_state": None,
        "handoffs": [
            {
                "id": h["id"],
                "status": h["status"],
                "reason_code": h["reason_code"],
                "reason": h["reason"],
                "flow": h["flow"],
                "summary": _json(h["summary"]),
                "context": _json(h["context"]),
                "created_at": _time(h["created_at"]),
                "claimed_at": _time(h["claimed_at"]),
                "ended_at": _time(h["ended_at"]),
                "outcome": h["outcome"],
                "rating": h["rating"],
                "rating_comment": h["rating_comment"],
            }
            for h in data.handoffs
        ],
        "conversation_events": [
            {"seq": e["seq"], "kind": e["kind"], "data": _json(e["data"]), "created_at": _time(e["created_at"])}
            for e in data.events
        ],
        "webhook_deliveries": [
            {
                "id": d["id"],
                "event": d["event"],
                "target": d["target"],
                "status": d["status"],
                "created_at": _time(d["created_at"]),
                "delivered_at": _time(d["delivered_at"]),
                "body": _json(d["body"]),
            }
            for d in data.deliveries
        ],
    }
    if data.flow_state is not None:
        flow = data.flow_state
        out["flow_state"] = {
            "flow": flow["flow"],
            "state": _json(flow["state"]),
            "updated_at": _time(flow["updated_at"]),
        }
    if include_notes:
        out["desk_notes"] = [
            {"id": n["id"], "private": n["private"], "text": n["text"], "created_at": _time(n["created_at"])}
            for n in data.notes
        ]
    return out


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _json(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw
