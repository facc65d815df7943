"""What anonymisation does to a text: personal data replaced by its type (``[手机号]``), everything else kept, so
a conversation stays readable for quality work without saying whose numbers were in it."""

from __future__ import annotations

import json
from typing import Any

from kefu.pii import TYPE_LABELS, mask_pii
from kefu.store.privacy import Scrub


def anonymise_text(text: str) -> str:
    """``text`` with every phone, ID, bank card and e-mail replaced by its type."""
    return mask_pii(text, labels=TYPE_LABELS)


def anonymise_json(raw: str) -> str:
    """A JSON document with :func:`anonymise_text` applied to every string in it (keys included: slot names are
    the bot's, but a key can be a shopper's text too); unchanged documents come back as they were."""
    try:
        value = json.loads(raw)
    except ValueError:
        return anonymise_text(raw)
    masked = _walk(value)
    if masked == value:
        return raw
    return json.dumps(masked, ensure_ascii=False, separators=(",", ":"))


def _walk(value: Any) -> Any:
    if isinstance(value, str):
        return anonymise_text(value)
    if isinstance(value, list):
        return [_walk(item) for item in value]
    if isinstance(value, dict):
        return {anonymise_text(key): _walk(item) for key, item in value.items()}
    return value


SCRUB = Scrub(text=anonymise_text, json=anonymise_json)
