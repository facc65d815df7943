""":class:`KnowledgeBase`: the engine's :class:`~kefu.kb.knowledge.Knowledge`, backed by SQL, searched in memory.

Start-up (:meth:`KnowledgeBase.start`): read the bot directory's files and lexicon (in a thread), sync the
files into SQL when they changed, then build the index in a thread from what SQL holds. Every change (admin
API, ``kefu kb import``, new files) bumps the version in SQL; the process that made it rebuilds at once, the
others notice within ``refresh_seconds`` (checked lazily on search, in the background) and rebuild. Searches
run in a worker thread against an immutable index, so neither jieba nor numpy ever blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kefu.content.problems import LoadReport
from kefu.kb.botdir import BotContent, Chunking, load_bot_content
from kefu.kb.confidence import Thresholds, decide
from kefu.kb.embeddings import Embedder, EmbeddingError, from_bytes
from kefu.kb.entries import Entry
from kefu.kb.knowledge import Confidence, KnowledgeHit, KnowledgeResult
from kefu.kb.store import Changes, KbStore, Snapshot
from kefu.obs.logging import get_logger
from kefu.text.analyzer import Analyzer, warm
from kefu.text.index import SHORT_QUERY_CHARS, Index, Match, Weights
from kefu.text.lexicon import Lexicon

log = get_logger("kefu.kb")
QUERY_EMBED_TIMEOUT = 2.0
# The knowledge base's scoring: the answer counts more than in the index's defaults (a small shop writes its
# vocabulary in the answer, not in similar questions) and the n-gram channel is on (docs/benchmarks.md, 13).
KB_WEIGHTS = Weights(answer=0.3, ngram=0.3, ngram_answer=0.4)
RELATIVE_FLOOR = 0.5  # hits scoring under half the best one are not handed to the engine
# A short query over at most this many entries is searched on the event loop; otherwise in a thread.
INLINE_MAX_ENTRIES = 2000


@dataclass(frozen=True, slots=True)
class KbConfig:
    """How the knowledge base behaves (built from settings)."""

    bot_dir: Path
    thresholds: Thresholds = field(default_factory=Thresholds)
    chunking: Chunking = field(default_factory=Chunking)
    weights: Weights = KB_WEIGHTS
    refresh_seconds: float = 5.0
    hit_floor: float = 0.2  # hits below this score are not handed to the engine


@dataclass(frozen=True, slots=True)
class Explained:
    """A search with everything the CLI and eval want to show."""

    matches: list[Match[Entry]]
    confidence: Confidence
    suggestions: list[Match[Entry]]
    elapsed_ms: float


@dataclass(slots=True)
class _Built:
    index: Index[Entry]
    version: int
    built_at: float


class KnowledgeBase:
    """FAQ and document retrieval over a bot's content; implements the engine's ``Knowledge`` protocol."""

    def __init__(self, store: KbStore, config: KbConfig, *, embedder: Embedder | None = None) -> None:
        self.store = store
        self.config = config
        self.embedder = embedder
        self.lexicon = Lexicon.build()
        self.load_report: LoadReport | None = None  # what the last start-up skipped in the bot files
        self._analyzer: Analyzer | None = None
        self._built: _Built | None = None
        self._rebuild_lock = asyncio.Lock()
        self._checked = 0.0
        self._refresh: asyncio.Task[None] | None = None

    # --- the Knowledge protocol ------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """True once an index with at least one entry is built."""
        return self._built is not None and self._built.index.size > 0

    @property
    def version(self) -> str:
        """``<SQL version>-<lexicon fingerprint>``: changes with any entry and with the dictionary/synonyms."""
        number = self._built.version if self._built else 0
        return f"{number}-{self.lexicon.fingerprint[:8] or 'none'}"

    async def search(self, query: str, *, limit: int = 5, lang: str | None = None) -> KnowledgeResult:
        """Ranked hits, confidence and suggestions for the engine (in ``lang`` where an entry has it)."""
        found = await self.explain(query, limit=max(limit, 10))
        best = found.matches[0].score if found.matches else 0.0
        floor = max(self.config.hit_floor, best * RELATIVE_FLOOR)
        hits = [m for m in found.matches if m.score >= floor]
        if found.confidence == "high":  # the engine answers with hits[0]: make it the top FAQ entry
            top = next(m for m in found.matches if m.entry.kind == "faq")
            hits = [top, *(m for m in hits if m.entry.id != top.entry.id)]
        return KnowledgeResult(
            hits=tuple(
                KnowledgeHit(
                    id=m.entry.id,
                    title=m.entry.question_in(lang),
                    text=m.entry.answer_in(lang),
                    score=m.score,
                    kind=m.entry.kind,
                )
                for m in hits[:limit]
            ),
            confidence=found.confidence,
            suggestions=tuple(m.entry.question_in(lang) for m in found.suggestions),
        )

    # --- searching -------------------------------------------------------------------------------------
    async def explain(self, query: str, *, limit: int = 10) -> Explained:
        """Search with the details (matched field, scores) and the confidence decision."""
        self._maybe_refresh()
        built = self._built
        if built is None or not query.strip():
            return Explained([], "low", [], 0.0)
        vector = await self._embed_query(query) if built.index.vectors is not None else None
        started = time.perf_counter()
        now = datetime.now(UTC)
        if vector is None and len(query) <= SHORT_QUERY_CHARS and built.index.size <= INLINE_MAX_ENTRIES:
            # A short question over a shop-sized FAQ costs less to search (or to find in the index's memo) than
            # the hop to a thread and back; long queries and big indexes stay off the event loop.
            matches = built.index.search(query, limit=limit, now=now)
        else:
            matches = await asyncio.to_thread(built.index.search, query, limit=limit, now=now, vector=vector)
        elapsed = (time.perf_counter() - started) * 1000
        confidence, suggestions = decide(matches, self.config.thresholds)
        return Explained(matches, confidence, suggestions, elapsed)

    async def _embed_query(self, query: str) -> npt.NDArray[np.float32] | None:
        if self.embedder is None:
            return None
        try:
            return (await self.embedder.embed([query], timeout=QUERY_EMBED_TIMEOUT))[0]
        except EmbeddingError as exc:
            log.warning("kb_query_embedding_failed", error=str(exc))
            return None

    # --- lifecycle ---------------------------------------------------------------------------------------
    async def start(self, *, sync_bot: bool = True) -> BotContent:
        """Load the bot's lexicon (and, with ``sync_bot``, its files into SQL), then build the index."""
        content = await asyncio.to_thread(load_bot_content, self.config.bot_dir, self.config.chunking)
        self.load_report = content.report
        for problem in content.report.problems:
            log.warning("kb_row_problem", problem=str(problem))
        self.lexicon = content.lexicon
        if content.entries:  # otherwise jieba loads on the first build that has entries
            self._analyzer = await asyncio.to_thread(warm, content.lexicon)
        if sync_bot:
            changes = await self.store.sync_bot(content.entries, content.fingerprint)
            if changes is not None and changes.changed:
                log.info("kb_bot_synced", added=changes.added, updated=changes.updated, removed=changes.removed)
        await self.rebuild()
        return content

    async def aclose(self) -> None:
        """Stop background work and close the database pool and the embeddings client."""
        if self._refresh is not None and not self._refresh.done():
            # Let a running version check finish: cancelling it mid-query would leave its connection to a closed loop.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._refresh, timeout=5)
        if self.embedder is not None:
            await self.embedder.aclose()
        await self.store.aclose()

    def _maybe_refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.config.refresh_seconds or (self._refresh and not self._refresh.done()):
            return
        self._checked = now
        self._refresh = asyncio.create_task(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # a replica that cannot reach SQL keeps serving its last index
            log.warning("kb_refresh_failed", error=str(exc))

    async def refresh(self) -> bool:
        """Rebuild if SQL holds a newer version than the index; True when it rebuilt."""
        current = await self.store.version()
        if self._built is not None and current == self._built.version:
            return False
        await self.rebuild()
        return True

    async def rebuild(self) -> None:
        """Read a snapshot from SQL and build a new index off the loop, then swap it in."""
        async with self._rebuild_lock:
            snapshot = await self.store.snapshot()
            if self._built is not None and self._built.version == snapshot.version:
                return
            vectors = await self._vectors(snapshot)
            started = time.perf_counter()
            index = await asyncio.to_thread(self._build, snapshot.entries, vectors)
            self._built = _Built(index, snapshot.version, time.time())
            self._checked = time.monotonic()
            log.info(
                "kb_index_built",
                version=self.version,
                entries=index.size,
                seconds=round(time.perf_counter() - started, 3),
                dense=index.vectors is not None,
            )

    def _build(self, entries: list[Entry], vectors: npt.NDArray[np.float32] | None) -> Index[Entry]:
        analyzer = self._analyzer or Analyzer(self.lexicon)
        if entries:
            analyzer.terms("预热")  # load jieba here, in the worker thread
        self._analyzer = analyzer
        index = Index(entries, analyzer, self.config.weights)
        if vectors is not None:
            index.attach_vectors(vectors)
        return index

    async def _vectors(self, snapshot: Snapshot) -> npt.NDArray[np.float32] | None:
        """One row per entry (zeros where unavailable), embedding what is missing; None without dense."""
        if self.embedder is None or not snapshot.entries:
            return None
        stored = dict(snapshot.vectors)
        try:
            fresh = await self.embedder.vectors_for(snapshot.entries, stored)
        except EmbeddingError as exc:
            log.warning("kb_embedding_failed", error=str(exc))
            fresh = {}
        if fresh:
            await self.store.save_vectors(fresh)
            stored.update(fresh)
        rows = [stored.get(e.id) for e in snapshot.entries]
        dims = next((len(from_bytes(v.data)) for v in rows if v is not None), 0)
        if not dims:
            return None
        matrix = np.zeros((len(rows), dims), dtype=np.float32)
        for i, (entry, vector) in enumerate(zip(snapshot.entries, rows, strict=True)):
            if vector is not None and vector.key == entry.content_key() and vector.model == self.embedder.model:
                data = from_bytes(vector.data)
                if len(data) == dims:
                    matrix[i] = data
        return matrix

    # --- changes ------------------------------------------------------------------------------------------
    async def put(self, entry: Entry, *, create: bool) -> Entry | None:
        """Add or update one entry and rebuild; None when the id exists (create) or is missing (update)."""
        result = await self.store.put(entry, create=create)
        if result is None:
            return None
        await self.rebuild()
        return result[0]

    async def delete(self, entry_id: str) -> bool:
        """Delete one entry and rebuild; False when there was none."""
        version = await self.store.delete(entry_id)
        if version is None:
            return False
        await self.rebuild()
        return True

    async def replace_origin(self, origin: str, entries: Sequence[Entry]) -> Changes:
        """Make ``origin``'s entries exactly ``entries`` (an import) and rebuild."""
        changes = await self.store.replace_origin(origin, entries)
        if changes.changed:
            await self.rebuild()
        return changes
