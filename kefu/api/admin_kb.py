"""``/v1/admin/kb``: manage knowledge-base entries over HTTP (server API keys only).

Every change bumps the knowledge-base version and rebuilds this process's index before answering, so the
change is searchable here at once and on other replicas within ``KEFU_KB_REFRESH_SECONDS``; no restart.
End-user tokens get 403. Entries edited here take ``origin: "admin"``; an entry that came from the bot's
files is overwritten again when those files change.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from kefu.api.deps import KnowledgeDep, require_api_key
from kefu.api.validation import SafeText
from kefu.errors import Conflict, InvalidInput, NotFound
from kefu.kb.entries import Entry, EntryError, entry_json, make_entry
from kefu.kb.knowledge import Knowledge
from kefu.kb.service import KnowledgeBase

# Past this an offset is no page of any real knowledge base (and overflows the database's integers).
MAX_OFFSET = 1_000_000_000

router = APIRouter(prefix="/v1/admin/kb", tags=["admin"], dependencies=[Depends(require_api_key)])


class EntryIn(BaseModel):
    """An FAQ entry (or, with ``kind: "doc"``, a passage) as sent by an admin."""

    model_config = ConfigDict(extra="forbid")

    question: SafeText
    answer: SafeText
    similar_questions: list[SafeText] = Field(default_factory=list)
    # The question and answer in other languages, by two-letter code ({"en": …}); docs/kb.md.
    questions: dict[str, SafeText] = Field(default_factory=dict)
    answers: dict[str, SafeText] = Field(default_factory=dict)
    category: SafeText | None = None
    # ISO date or datetime, parsed like the files: UTC unless offset, a date-only valid_to includes the day.
    valid_from: SafeText | None = None
    valid_to: SafeText | None = None
    kind: Literal["faq", "doc"] = "faq"


class NewEntryIn(EntryIn):
    """A new entry; ``id`` is derived from the question when left out."""

    id: SafeText | None = None


def _kb(knowledge: Knowledge) -> KnowledgeBase:
    if not isinstance(knowledge, KnowledgeBase):
        raise NotFound("this bot has no knowledge base")
    return knowledge


def _entry(body: EntryIn, entry_id: str | None) -> Entry:
    data: dict[str, Any] = body.model_dump(exclude={"kind"})
    data["id"] = entry_id
    try:
        return make_entry(data, kind=body.kind, origin="admin", source="admin")
    except EntryError as exc:
        raise InvalidInput(str(exc)) from exc


@router.get("/entries", summary="List knowledge-base entries")
async def list_entries(
    knowledge: KnowledgeDep,
    kind: Literal["faq", "doc"] | None = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """A page of entries ordered by id, the total, and the knowledge-base version."""
    kb = _kb(knowledge)
    entries, total = await kb.store.list(kind=kind, offset=offset, limit=limit)
    return {"version": kb.version, "total": total, "entries": [entry_json(e) for e in entries]}


@router.get("/entries/{entry_id}", summary="One knowledge-base entry")
async def get_entry(entry_id: str, knowledge: KnowledgeDep) -> dict[str, Any]:
    """The entry, or 404."""
    entry = await _kb(knowledge).store.get(entry_id)
    if entry is None:
        raise NotFound(f"no knowledge-base entry {entry_id!r}")
    return entry_json(entry)


@router.post("/entries", status_code=201, summary="Add an entry")
async def create_entry(body: NewEntryIn, knowledge: KnowledgeDep) -> dict[str, Any]:
    """Add an entry (409 if the id exists); searchable when this returns."""
    kb = _kb(knowledge)
    entry = await kb.put(_entry(body, body.id), create=True)
    if entry is None:
        raise Conflict("an entry with this id (or question) already exists; PUT to change it", code="entry_exists")
    return {"entry": entry_json(entry), "version": kb.version}


@router.put("/entries/{entry_id}", summary="Replace an entry")
async def update_entry(entry_id: str, body: EntryIn, knowledge: KnowledgeDep) -> dict[str, Any]:
    """Replace the entry (404 if missing); searchable when this returns."""
    kb = _kb(knowledge)
    entry = await kb.put(_entry(body, entry_id), create=False)
    if entry is None:
        raise NotFound(f"no knowledge-base entry {entry_id!r}")
    return {"entry": entry_json(entry), "version": kb.version}


@router.delete("/entries/{entry_id}", status_code=204, summary="Delete an entry")
async def delete_entry(entry_id: str, knowledge: KnowledgeDep) -> Response:
    """Delete the entry (404 if missing)."""
    if not await _kb(knowledge).delete(entry_id):
        raise NotFound(f"no knowledge-base entry {entry_id!r}")
    return Response(status_code=204)


@router.get("/search", summary="Test retrieval (the same code path as chat)")
async def search(
    knowledge: KnowledgeDep,
    q: Annotated[SafeText, Query(min_length=1, max_length=1000)],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> dict[str, Any]:
    """Ranked entries with scores, the matched field, the confidence band and the suggestions."""
    kb = _kb(knowledge)
    found = await kb.explain(q, limit=limit)
    return {
        "version": kb.version,
        "confidence": found.confidence,
        "suggestions": [m.entry.question for m in found.suggestions],
        "hits": [
            {"id": m.entry.id, "question": m.entry.question, "score": m.score, "field": m.field, "kind": m.entry.kind}
            for m in found.matches
        ],
    }


@router.post("/reload", summary="Rebuild the index from the database now")
async def reload(knowledge: KnowledgeDep) -> dict[str, Any]:
    """Check the version in the database and rebuild if it changed (replicas also do this on their own)."""
    kb = _kb(knowledge)
    rebuilt = await kb.refresh()
    return {"version": kb.version, "rebuilt": rebuilt}
