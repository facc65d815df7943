"""Who asked (the actor) and about whom (the subject) in the privacy audit: the subject is a SHA-256 of the user
id, so the audit proves a request was answered without keeping the id it erased."""

from __future__ import annotations

import hashlib
from typing import Literal, TypeAlias

Actor: TypeAlias = Literal["shopper", "admin", "cli", "sweep"]


def subject_of(user_id: str) -> str:
    """The audit's name for ``user_id``: the hex SHA-256 of it."""
    return hashlib.sha256(user_id.encode()).hexdigest()
