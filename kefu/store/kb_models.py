"""SQL tables of the knowledge base (created by migration ``0002_kb``), on kefu's declarative base.

``kb_entries`` holds FAQ entries and document passages (and their embedding, when dense retrieval is on);
``kb_meta`` holds the content version (bumped by every change, so replicas and answer caches notice) and
the fingerprint of the bot directory's files last synced.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kefu.store.models import Base, UTCDateTime

VERSION = "version"
BOT_FINGERPRINT = "bot_fingerprint"


class KbEntryRow(Base):
    """One FAQ entry or document passage."""

    __tablename__ = "kb_entries"
    __table_args__ = (Index("ix_kb_entries_origin", "origin"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    question: Mapped[str] = mapped_column(Text())
    answer: Mapped[str] = mapped_column(Text())
    similar: Mapped[str] = mapped_column(Text())  # JSON list of texts
    translations: Mapped[str | None] = mapped_column(Text())  # JSON {"questions": {lang: …}, "answers": {…}}
    category: Mapped[str | None] = mapped_column(String(64))
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime())
    origin: Mapped[str] = mapped_column(String(1024))
    source: Mapped[str | None] = mapped_column(String(1024))
    content_key: Mapped[str] = mapped_column(String(32))
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary())
    embedding_model: Mapped[str | None] = mapped_column(String(255))
    embedding_key: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KbMetaRow(Base):
    """A named counter or value (``version``, ``bot_fingerprint``)."""

    __tablename__ = "kb_meta"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger())
    text: Mapped[str | None] = mapped_column(Text())
