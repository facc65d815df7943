"""``/v1/sessions``: list, read or delete the caller's conversations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from kefu.api.deps import IdentityDep, PrivacyApiDep, TurnApiDep

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


@router.get("", summary="The caller's conversations, most recently active first")
async def list_sessions(
    identity: IdentityDep,
    api: PrivacyApiDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, object]:
    """One page of the caller's conversations; pass ``next_cursor`` back as ``cursor`` for the next page."""
    page = await api.rights.list_sessions(identity.user_id, limit=limit, cursor=cursor)
    return {
        "sessions": [
            {
                "session_id": s.id,
                "created_at": s.created_at.isoformat(),
                "last_active_at": s.last_active_at.isoformat(),
                "handoff_state": s.handoff_state,
                "message_count": s.message_count,
                "last_message": {"role": s.last_role, "text": s.last_text} if s.last_role else None,
            }
            for s in page.sessions
        ],
        "next_cursor": page.next_cursor,
    }


@router.get("/{session_id}", summary="A conversation's messages")
async def get_session(session_id: str, identity: IdentityDep, api: TurnApiDep) -> dict[str, object]:
    """The session's messages, oldest first. 404 for unknown or someone else's session."""
    session, messages = await api.chat.get_session(identity, session_id)
    return {
        "session_id": session.id,
        "created_at": session.created_at.isoformat(),
        "messages": [
            {
                "role": m.role,
                "content": m.content,
                "status": m.status,
                "created_at": m.created_at.isoformat(),
                "turn_id": m.turn_id,
                "source": m.source,
                "model": m.model,
                "author": m.author,
            }
            for m in messages
        ],
    }


@router.delete("/{session_id}", status_code=204, summary="Delete a conversation")
async def delete_session(session_id: str, identity: IdentityDep, api: TurnApiDep) -> Response:
    """Delete the session and its transcript."""
    await api.chat.delete_session(identity, session_id)
    return Response(status_code=204)
