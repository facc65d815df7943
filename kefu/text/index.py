"""The in-memory search index: BM25 (bm25s) picks candidates, idf-weighted term coverage scores them.

Every FAQ entry contributes one *variant* per question and similar question (a document passage: its title),
and one answer text (a passage: its text). For a query:

1. BM25 over all terms of every variant (bm25s builds the weighted postings) picks the best candidates; very
   common terms only count, they do not pick;
2. coverage scores the candidates — per channel (words, characters, pinyin) how much of the query's idf weight
   the variant contains (recall) and how much of the variant the query covers (precision), blended per
   channel and averaged across channels. 1.0 means "the same question", so the confidence thresholds mean the
   same thing for every bot;
3. an entry's score is its best variant (field weight for similar questions) plus a share of how much of the
   query its answer covers; BM25 orders entries whose scores tie;
4. with ``Weights.ngram`` > 0 (the knowledge base), a share of the score is the cosine of the query and the entry
   in a character n-gram TF-IDF space (:mod:`kefu.text.ngrams`: questions plus the answer at a lower weight), and
   the entries nearest in that space are candidates too — graded where word coverage is all or nothing.

Built once, never mutated: a rebuild makes a new :class:`Index` and swaps it in, so searches in flight keep the
one they started with.

The index works on any :class:`Searchable` (knowledge-base entries, a flow's trigger examples) and hands the
same objects back in its :class:`Match` results.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

import bm25s  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt

from kefu.text.analyzer import CHANNELS, Analyzer, Terms, pinyin_keys, stem
from kefu.text.ngrams import NgramCounts, NgramSpace, grams

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
FIELD_NAMES = ("question", "similar", "title")
COMMON_SHARE = 0.02  # a term in more than this share of the documents does not pick candidates …
COMMON_MIN = 256  # … unless its posting list is this short anyway (small knowledge bases use every term)


class Searchable(Protocol):
    """What the index reads of an entry: a question (or title) with similar questions, and an answer (or
    passage), valid from / until (None: always)."""

    @property
    def question(self) -> str: ...

    @property
    def answer(self) -> str: ...

    @property
    def similar(self) -> tuple[str, ...]: ...

    @property
    def kind(self) -> str:
        """``faq`` or ``doc`` (a document passage: its question is a title)."""
        ...

    @property
    def valid_from(self) -> datetime | None: ...

    @property
    def valid_to(self) -> datetime | None: ...


E = TypeVar("E", bound=Searchable)


@dataclass(frozen=True, slots=True)
class Weights:
    """Scoring knobs (tuned on the dev split of the demo eval set; see docs/benchmarks.md, section 3)."""

    channels: tuple[float, float, float] = (0.34, 0.33, 0.33)  # words, characters, pinyin
    recall: float = 0.8  # within a channel: share of query recall (vs. variant precision)
    similar: float = 1.0  # field weight of a similar question relative to the question
    answer: float = 0.2  # share of the score from the answer covering the query
    doc_passage: float = 0.7  # for document passages: share from the passage (rest: its title)
    bm25: float = 0.05  # tie-breaker weight of BM25 (normalised by the best candidate)
    # Share of the score from the character n-gram TF-IDF cosine (kefu.text.ngrams); 0 builds no n-gram space.
    # The knowledge base turns it on (kefu.kb.service.KB_WEIGHTS); flow triggers keep it off.
    ngram: float = 0.0
    ngram_answer: float = 0.4  # weight of the answer's grams in an entry's n-gram vector (questions: 1)
    ngram_candidates: int = 20  # entries the n-gram channel adds as candidates (best cosine first)
    rrf_k: int = 60  # reciprocal-rank-fusion constant when dense retrieval is on
    candidates: int = 256  # question variants (by BM25) scored in full per query


@dataclass(frozen=True, slots=True)
class Match(Generic[E]):
    """One ranked entry, what matched, and how well (``score`` in [0, ~1])."""

    entry: E
    score: float
    field: str  # question | similar | title | answer | dense
    text: str  # the question / similar question / title that matched best
    dense: float | None = None
    # Share of the query's idf weight (words, character pairs) found anywhere in the entry — its questions or its
    # answer: a query word the entry never mentions is a sign the query asks something else.
    cover: tuple[float, float] = (1.0, 1.0)
    words: int = 0  # content words in the query (after synonyms and stopwords)
    ngram: float = 0.0  # cosine of the query and the entry in the character n-gram TF-IDF space
    lexical: float | None = None  # the score before the n-gram channel's share (None: the same as ``score``)


@dataclass(frozen=True, slots=True)
class _Postings:
    """A bm25s index and, per document, the idf weight it holds in each channel."""

    data: npt.NDArray[np.float32]
    indices: npt.NDArray[np.int32]
    indptr: npt.NDArray[np.int64]
    totals: FloatArray  # shape (3, n_docs)
    n_docs: int

    @classmethod
    def build(cls, docs: list[list[int]], vocab: dict[str, int], idf: FloatArray, channel: IntArray) -> _Postings:
        model = bm25s.BM25(k1=1.2, b=0.75)
        model.index((docs, vocab), create_empty_token=False, show_progress=False)
        totals = np.zeros((3, len(docs)))
        for d, ids in enumerate(docs):
            unique = np.unique(np.asarray(ids, dtype=np.int64))
            if unique.size:
                np.add.at(totals[:, d], channel[unique], idf[unique])
        scores = model.scores
        return cls(
            data=np.asarray(scores["data"], dtype=np.float32),
            indices=np.asarray(scores["indices"], dtype=np.int32),
            indptr=np.asarray(scores["indptr"], dtype=np.int64),
            totals=totals,
            n_docs=len(docs),
        )

    def score(
        self, ids: IntArray, idf: FloatArray, channel: IntArray, top: int
    ) -> tuple[IntArray, FloatArray, FloatArray]:
        """The ``top`` documents by BM25 among those sharing a term with the query:
        (doc ids ascending, BM25 scores, matched idf per channel (3, C)).

        Terms in more than ``COMMON_SHARE`` of the documents (a frequent character pair, a common syllable pair)
        do not pick candidates (their posting lists are long and their weight small); they still count for the
        candidates that contain them, found by binary search in the sorted posting list."""
        if not ids.size:
            return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros((3, 0))
        starts, ends = self.indptr[ids], self.indptr[ids + 1]
        lengths = ends - starts
        rare = lengths <= max(COMMON_MIN, self.n_docs * COMMON_SHARE)
        if not rare.any():
            rare[:] = True
        r_ids, r_starts, r_ends, r_len = ids[rare], starts[rare], ends[rare], lengths[rare]
        docs = np.concatenate([self.indices[s:e] for s, e in zip(r_starts, r_ends, strict=True)])
        weights = np.concatenate([self.data[s:e] for s, e in zip(r_starts, r_ends, strict=True)])
        bm25 = np.bincount(docs, weights=weights, minlength=self.n_docs).astype(np.float64, copy=False)
        if docs.size > top and self.n_docs > top:  # many postings can still be fewer documents than ``top``
            picked = np.argpartition(-bm25, top)[:top]
            candidates = np.sort(picked[bm25[picked] > 0]).astype(np.int64, copy=False)
        else:
            candidates = np.unique(docs).astype(np.int64, copy=False)
        if not candidates.size:
            return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros((3, 0))
        position = np.full(self.n_docs, -1, dtype=np.int64)
        position[candidates] = np.arange(candidates.size)
        where = position[docs]
        inside = where >= 0
        slot = where[inside] * 3 + np.repeat(channel[r_ids], r_len)[inside]
        term_idf = np.repeat(idf[r_ids], r_len)[inside]
        counted = np.bincount(slot, weights=term_idf, minlength=3 * candidates.size)
        matched: FloatArray = counted.astype(np.float64, copy=False).reshape(-1, 3).T.copy()
        for tid, s, e in zip(ids[~rare], starts[~rare], ends[~rare], strict=True):
            posting = self.indices[s:e]
            found = np.minimum(np.searchsorted(posting, candidates), posting.size - 1)
            matched[channel[tid]] += idf[tid] * (posting[found] == candidates)
        bm25_c: FloatArray = bm25[candidates]
        return candidates, bm25_c, matched


def _idf(df: FloatArray, n: int) -> FloatArray:
    result: FloatArray = np.log1p((n - df + 0.5) / (df + 0.5))
    return result


# A query up to this long costs less to search (or to find in the memo) than a hop to a thread and back, over an
# index of shop size: callers search it on the event loop (measured: docs/benchmarks.md, section 10).
SHORT_QUERY_CHARS = 64
MEMO_SIZE = 4096  # remembered lexical query results per index (forgotten all at once when full)


class Index(Generic[E]):
    """Search structures over a fixed set of entries. Construct it off the event loop: it runs jieba over
    every text (about 0.1 ms per text)."""

    def __init__(self, entries: Sequence[E], analyzer: Analyzer, weights: Weights) -> None:
        self.entries = tuple(entries)
        self.analyzer = analyzer
        self.weights = weights
        self.vocab: dict[str, int] = {}
        channels: list[int] = []
        var_docs: list[list[int]] = []
        var_entry: list[int] = []
        var_field: list[int] = []
        self.var_text: list[str] = []
        ans_docs: list[list[int]] = []
        gram_counts = NgramCounts()

        def ids(terms: Terms) -> list[int]:
            out = []
            for term in terms.all():
                tid = self.vocab.get(term)
                if tid is None:
                    tid = self.vocab[term] = len(self.vocab)
                    channels.append(CHANNELS.index(term[0]))
                out.append(tid)
            return out

        for e, entry in enumerate(self.entries):
            texts = [(entry.question, 2 if entry.kind == "doc" else 0)] + [(s, 1) for s in entry.similar]
            parts: list[tuple[list[str], float]] = []
            for text, field in texts:
                terms = analyzer.terms(text)
                var_docs.append(ids(terms))
                var_entry.append(e)
                var_field.append(field)
                self.var_text.append(text)
                if weights.ngram > 0:
                    parts.append((grams(terms.words), 1.0))
            answer = self._answer_terms(entry)
            ans_docs.append(ids(answer))
            if weights.ngram > 0:
                parts.append((grams(answer.words), weights.ngram_answer))
            gram_counts.add(parts)
        self.ngrams = NgramSpace(gram_counts)
        self.channel = np.asarray(channels, dtype=np.int64)
        n = max(1, len(self.entries))
        self.var_entry = np.asarray(var_entry, dtype=np.int64)
        self.var_field = np.asarray(var_field, dtype=np.int64)
        df_q = np.zeros(len(self.vocab))
        for e_ids in _per_entry(var_docs, var_entry, len(self.entries)):
            df_q[e_ids] += 1
        df_a = np.zeros(len(self.vocab))
        for a_ids in ans_docs:
            df_a[np.unique(np.asarray(a_ids, dtype=np.int64))] += 1
        self.idf_q = _idf(df_q, n)
        self.idf_a = _idf(df_a, n)
        self.unknown_idf = float(_idf(np.zeros(1), n)[0])
        self.questions = _Postings.build(var_docs, dict(self.vocab), self.idf_q, self.channel)
        self.answers = _Postings.build(ans_docs, dict(self.vocab), self.idf_a, self.channel)
        self.first_variant = np.searchsorted(self.var_entry, np.arange(len(self.entries)))
        self._entry_terms = [
            np.union1d(q_ids, np.asarray(a_ids, dtype=np.int64)).astype(np.int32)
            for q_ids, a_ids in zip(_per_entry(var_docs, var_entry, len(self.entries)), ans_docs, strict=True)
        ]
        self.is_doc = np.asarray([e.kind == "doc" for e in self.entries], dtype=bool)
        self._pinyin = self._pinyin_words(df_q + df_a)
        self._valid_from = np.asarray([e.valid_from.timestamp() if e.valid_from else -np.inf for e in self.entries])
        self._valid_to = np.asarray([e.valid_to.timestamp() if e.valid_to else np.inf for e in self.entries])
        # Lexical results by the query's set of terms: shoppers ask the same few questions over and over. A result
        # is reused only between the validity boundaries (any entry's valid_from/valid_to) around the time it was
        # computed for, so an entry that starts or ends in between is never missed or kept.
        finite = {float(t) for t in (*self._valid_from, *self._valid_to) if np.isfinite(t)}
        self._bounds = sorted(finite)
        self._memo: dict[tuple[frozenset[str], tuple[str, ...], int], tuple[float, float, tuple[Match[E], ...]]] = {}
        self.vectors: npt.NDArray[np.float32] | None = None

    def _answer_terms(self, entry: E) -> Terms:
        terms = self.analyzer.terms(entry.answer)
        return Terms(terms.words, terms.chars, ())

    def _pinyin_words(self, df: FloatArray) -> dict[str, str]:
        """Pinyin initials / full pinyin → the most frequent word of the index that reads so.

        Synonyms count as their canonical word (物流 → 快递, so "wl" finds 快递)."""
        best: dict[str, tuple[float, str]] = {}
        if not self.vocab:
            return {}
        spellings = [(term[2:], term[2:]) for term in self.vocab if term.startswith("w:")]
        spellings += [(t, c) for t, c in self.analyzer.synonym_terms.items() if f"w:{c}" in self.vocab]
        for spelling, word in spellings:
            keys = pinyin_keys(spelling)
            if keys is None:
                continue
            weight = float(df[self.vocab[f"w:{word}"]])
            # The analyzer stems ASCII words (haoping → haop), so the stemmed spelling finds the word too.
            for key in {*keys, *(stem(k) for k in keys)}:
                current = best.get(key)
                if current is None or (weight, word) > current:
                    best[key] = (weight, word)
        return {key: word for key, (_, word) in best.items()}

    def attach_vectors(self, vectors: npt.NDArray[np.float32]) -> None:
        """Unit-length embedding per entry (rows in entry order), for dense retrieval."""
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)

    @property
    def size(self) -> int:
        """Number of entries."""
        return len(self.entries)

    def query_terms(self, query: str) -> Terms:
        """The query's terms, with unknown pinyin abbreviations (yf, tuihuo) read as the word they spell."""
        words = self.analyzer.words(query)
        rewritten = []
        for word in words:
            if word.isascii() and word.isalpha() and len(word) >= 2 and f"w:{word}" not in self.vocab:
                word = self._pinyin.get(word, word)
            rewritten.append(word)
        return self.analyzer.terms_of_words(rewritten)

    def search(
        self, query: str, *, limit: int, now: datetime, vector: npt.NDArray[np.float32] | None = None
    ) -> list[Match[E]]:
        """Entries ranked for ``query`` (best first, at most ``limit``), valid at ``now``."""
        if not self.entries:
            return []
        analysed = self.query_terms(query)
        terms = analysed.all()
        query_grams = grams(analysed.words) if self.weights.ngram > 0 else []
        if vector is not None:
            return self._search(terms, query_grams, limit=limit, now=now, vector=vector)
        key = (frozenset(terms), tuple(analysed.words), limit)
        stamp = now.timestamp()
        hit = self._memo.get(key)
        if hit is not None and hit[0] <= stamp < hit[1]:
            return list(hit[2])
        found = self._search(terms, query_grams, limit=limit, now=now, vector=None)
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()
        i = bisect.bisect_right(self._bounds, stamp)
        low = self._bounds[i - 1] if i else -math.inf
        high = self._bounds[i] if i < len(self._bounds) else math.inf
        self._memo[key] = (low, high, tuple(found))
        return found

    def _search(
        self,
        terms: list[str],
        query_grams: list[str],
        *,
        limit: int,
        now: datetime,
        vector: npt.NDArray[np.float32] | None,
    ) -> list[Match[E]]:
        w = self.weights
        known = sorted({self.vocab[t] for t in terms if t in self.vocab})
        ids = np.asarray(known, dtype=np.int64)
        wanted = np.zeros(3)
        for term in set(terms):
            tid = self.vocab.get(term)
            wanted[CHANNELS.index(term[0])] += self.idf_q[tid] if tid is not None else self.unknown_idf
        similarity = self.ngrams.similarity(query_grams)
        if not ids.size and vector is None and not similarity.any():
            return []
        n = self.size
        cand, bm25, matched = self.questions.score(ids, self.idf_q, self.channel, w.candidates)
        variant = _coverage(matched, wanted, self.questions.totals[:, cand], w)
        variant *= np.where(self.var_field[cand] == 1, w.similar, 1.0)
        ranked = variant + (w.bm25 * bm25 / bm25.max() if bm25.size else 0.0)
        q_entries, first = _best_per_group(self.var_entry[cand], ranked)
        q_score = np.zeros(n)
        q_score[q_entries] = variant[first]
        tie_break = np.zeros(n)  # BM25 orders entries whose scores (nearly) tie
        tie_break[q_entries] = ranked[first] - variant[first]
        best_variant = self.first_variant.copy()
        best_variant[q_entries] = cand[first]
        a_cand, _, a_matched = self.answers.score(ids, self.idf_a, self.channel, w.candidates // 2)
        a_recall = np.zeros(n)
        a_wanted = wanted[0] + wanted[1]
        if a_wanted > 0:
            a_recall[a_cand] = (a_matched[0] + a_matched[1]) / a_wanted
        entries = np.union1d(q_entries, a_cand)
        if w.ngram > 0 and similarity.any():
            k = min(w.ngram_candidates, n - 1)
            near = np.argpartition(-similarity, k)[: k + 1] if n > k + 1 else np.arange(n)
            entries = np.union1d(entries, near[similarity[near] > 0])
        dense = self._dense(vector) if vector is not None else None
        if dense is not None:
            entries = np.union1d(entries, np.argsort(-dense, kind="stable")[:50])
        stamp = now.timestamp()
        entries = entries[(self._valid_from[entries] <= stamp) & (stamp < self._valid_to[entries])]
        share = np.where(self.is_doc[entries], w.doc_passage, w.answer)
        score = np.zeros(n)
        score[entries] = (1 - share) * q_score[entries] + share * a_recall[entries]
        lexical = score.copy()
        score[entries] = (1 - w.ngram) * score[entries] + w.ngram * similarity[entries]
        if not entries.size:
            return []
        order = entries[np.lexsort((-tie_break[entries], -np.round(score[entries], 2)))]
        if dense is not None:
            order = self._fuse(order, entries, dense)
        cover_ids, cover_idf, cover_channel, cover_total = self._cover_terms(terms)
        n_words = sum(term.startswith("w:") for term in terms)
        out = []
        for e in order[:limit]:
            v = int(best_variant[e])
            held = self._entry_terms[e]  # sorted
            at = np.minimum(np.searchsorted(held, cover_ids), max(held.size - 1, 0))
            inside = held[at] == cover_ids if held.size else np.zeros(cover_ids.size, dtype=bool)
            found = np.bincount(cover_channel[inside], weights=cover_idf[inside], minlength=2)
            field = FIELD_NAMES[int(self.var_field[v])] if q_score[e] > 0 else "answer"
            out.append(
                Match(
                    entry=self.entries[e],
                    score=round(float(score[e]), 4),
                    field=field if score[e] > 0 else "dense",
                    text=self.var_text[v],
                    dense=None if dense is None else round(float(dense[e]), 4),
                    cover=(round(float(found[0] / cover_total[0]), 4), round(float(found[1] / cover_total[1]), 4)),
                    words=n_words,
                    ngram=round(float(similarity[e]), 4),
                    lexical=round(float(lexical[e]), 4),
                )
            )
        return out

    def _cover_terms(self, terms: list[str]) -> tuple[IntArray, FloatArray, IntArray, FloatArray]:
        """The query's known word and character terms (ids, idf, channel 0/1) and the total idf per channel,
        unknown terms included (a word no entry has is uncovered everywhere)."""
        ids, idf, channel = [], [], []
        total = np.full(2, 1e-9)
        for term in set(terms):
            c = CHANNELS.index(term[0])
            if c > 1:
                continue
            tid = self.vocab.get(term)
            weight = self.idf_q[tid] if tid is not None else self.unknown_idf
            total[c] += weight
            if tid is not None:
                ids.append(tid)
                idf.append(weight)
                channel.append(c)
        return (
            np.asarray(ids, dtype=np.int32),
            np.asarray(idf, dtype=np.float64),
            np.asarray(channel, dtype=np.int64),
            total,
        )

    def _dense(self, vector: npt.NDArray[np.float32]) -> FloatArray | None:
        if self.vectors is None:
            return None
        q = vector / max(float(np.linalg.norm(vector)), 1e-12)
        result: FloatArray = (self.vectors @ q.astype(np.float32)).astype(np.float64, copy=False)
        return result

    def _fuse(self, lexical: IntArray, candidates: IntArray, dense: FloatArray) -> IntArray:
        """Reciprocal rank fusion of the lexical order and the dense order."""
        k = self.weights.rrf_k
        fused: dict[int, float] = {}
        for rank, e in enumerate(lexical[:50]):
            fused[int(e)] = fused.get(int(e), 0.0) + 1.0 / (k + rank + 1)
        dense_order = candidates[np.argsort(-dense[candidates], kind="stable")]
        for rank, e in enumerate(dense_order[:50]):
            fused[int(e)] = fused.get(int(e), 0.0) + 1.0 / (k + rank + 1)
        return np.asarray(sorted(fused, key=lambda e: -fused[e]), dtype=np.int64)


def _best_per_group(groups: IntArray, values: FloatArray) -> tuple[IntArray, IntArray]:
    """For runs of equal ``groups`` (non-decreasing): each group and the position of its largest value."""
    if not groups.size:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    new = np.r_[True, groups[1:] != groups[:-1]]
    starts = np.flatnonzero(new)
    group_of = np.cumsum(new) - 1
    best = np.maximum.reduceat(values, starts)
    winners = np.flatnonzero(values >= best[group_of])
    _, first = np.unique(group_of[winners], return_index=True)
    return groups[starts], winners[first]


def _coverage(matched: FloatArray, wanted: FloatArray, totals: FloatArray, w: Weights) -> FloatArray:
    """Per document: the weighted blend over channels of query recall and document precision."""
    recall = matched / np.maximum(wanted, 1e-9)[:, None]
    precision = matched / np.maximum(totals, 1e-9)
    per_channel = w.recall * recall + (1 - w.recall) * precision
    weights = np.asarray(w.channels)[:, None] * (wanted > 0)[:, None]
    total = weights.sum()
    if total <= 0:
        return np.zeros(matched.shape[1])
    result: FloatArray = (weights * per_channel).sum(axis=0) / total
    return result


def _per_entry(var_docs: list[list[int]], var_entry: list[int], n: int) -> list[IntArray]:
    """The unique term ids of all variants of each entry."""
    grouped: list[list[int]] = [[] for _ in range(n)]
    for ids, e in zip(var_docs, var_entry, strict=True):
        grouped[e].extend(ids)
    return [np.unique(np.asarray(ids, dtype=np.int64)) for ids in grouped]
