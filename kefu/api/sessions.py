"""``/v1/sessions/{id}``: read or delete a conversation."""

from __future__ import annotations

from fastapi import APIRouter, Response

from kefu.api.deps import IdentityDep, TurnApiDep

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


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
