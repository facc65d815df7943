"""What request values must look like before they reach the engine: text that can be stored, resume points that
are numbers.

Text is refused up front (422, naming the field) rather than failing later: PostgreSQL rejects NUL in text
columns and nothing can encode a lone UTF-16 surrogate as UTF-8, so such a message would be accepted, sent to
the model, and then lost when its turn fails to store it.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from kefu.errors import InvalidInput

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Seqs count events of one turn or conversation; anything longer than this is not one (and would overflow
# the integer types of the stores).
MAX_SEQ = 2**31 - 1
_SEQ = re.compile(r"^[0-9]{1,10}$")


def unstorable_reason(text: str) -> str | None:
    """Why ``text`` cannot be stored (a NUL or a lone surrogate), or None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL characters (U+0000)"
    return f"must not contain lone surrogates (U+{ord(found.group()):04X}); send valid UTF-8"


def _storable(text: str) -> str:
    reason = unstorable_reason(text)
    if reason is not None:
        raise PydanticCustomError("unstorable_text", reason)
    return text


# A string field of a request body, query or header that ends up stored or sent on.
SafeText = Annotated[str, AfterValidator(_storable)]

# ``?after=<seq>`` of the resumable event streams.
AfterSeq = Annotated[int | None, Query(ge=0, le=MAX_SEQ)]


def resume_point(stream_id: str, last_event_id: str | None, after: int | None) -> int:
    """Where a reader of an event stream resumes: ``?after=`` or ``Last-Event-ID: <stream_id>:<seq>``."""
    if after is not None:
        return after
    if not last_event_id:
        return 0
    event_stream, _, seq = last_event_id.rpartition(":")
    if event_stream != stream_id or not _SEQ.match(seq) or int(seq) > MAX_SEQ:
        raise InvalidInput(
            f"Last-Event-ID must look like '{stream_id}:<seq>' with seq a number up to {MAX_SEQ}",
            code="invalid_last_event_id",
        )
    return int(seq)
