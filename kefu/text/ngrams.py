"""A character n-gram TF-IDF space: one vector per entry, cosine similarity to a query.

Word and character-pair coverage (kefu.text.index) needs the query's words, or at least its character pairs, to
appear in an entry. Shoppers write in their own words, with typos and single characters that carry the meaning
(退 / 换 / 坏); 1–3 character grams of the analysed text (stopwords and filler already gone, synonyms already
canonical) weighted by TF-IDF with sublinear tf give a graded similarity that degrades gently instead of
dropping to zero. Each entry's vector adds its questions at full weight and its answer at a lower weight (a
small shop writes its vocabulary in the answer, not in similar questions).

The query is turned into grams here (a dictionary lookup per gram), not by scikit-learn: a single-text
``transform`` costs more than the whole search.
"""

from __future__ import annotations

import math
import zlib
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from kefu.text.normalize import is_cjk

FloatArray = npt.NDArray[np.float64]
SIZES = (1, 2, 3)


def bucket(gram: str) -> int:
    """The column of ``gram``: its CRC-32. No vocabulary of strings: a 10k-entry shop has over half a million
    distinct grams, which would cost more memory than the rest of the index; CRC-32, not hash(), because the
    same text must score the same in every process and replica."""
    return zlib.crc32(gram.encode())


def grams(words: Iterable[str]) -> list[str]:
    """1–3 character grams of analysed words: over each run of Chinese words (jieba may cut a shopper's
    phrase differently from the FAQ's), and within each other word padded with spaces (English typos)."""
    out: list[str] = []
    run: list[str] = []

    def emit(text: str) -> None:
        for size in SIZES:
            out.extend(text[i : i + size] for i in range(len(text) - size + 1))

    def flush() -> None:
        if run:
            emit("".join(run))
            run.clear()

    for word in words:
        if any(is_cjk(c) for c in word):
            run.append(word)
        else:
            flush()
            emit(f" {word} ")
    flush()
    return [g for g in out if g.strip()]


class NgramCounts:
    """Collects the entries' weighted gram counts one entry at a time, so no entry's gram strings outlive it."""

    def __init__(self) -> None:
        self.rows, self.cols, self.vals = array("i"), array("L"), array("f")
        self.n_docs = 0

    def add(self, parts: Iterable[tuple[Sequence[str], float]]) -> None:
        """The next entry: its texts' grams, each text with a weight (questions 1, the answer lower)."""
        counts: dict[int, float] = {}
        for doc_grams, weight in parts:
            for gram, count in Counter(doc_grams).items():
                gid = bucket(gram)
                counts[gid] = counts.get(gid, 0.0) + weight * (1.0 + math.log(count))
        self.rows.extend([self.n_docs] * len(counts))
        self.cols.extend(counts.keys())
        self.vals.extend(counts.values())
        self.n_docs += 1


class NgramSpace:
    """TF-IDF vectors of the entries (rows), built once per index: smoothed idf, sublinear tf, unit length."""

    def __init__(self, counts: NgramCounts) -> None:
        self.n_docs = counts.n_docs
        rows = np.frombuffer(counts.rows, dtype=np.int32)
        cols = np.asarray(counts.cols, dtype=np.uint64)
        n = max(1, self.n_docs)
        # The grams in use (sorted), and per (entry, gram) pair the gram's position among them.
        self.grams, column = np.unique(cols, return_inverse=True)
        df = np.bincount(column, minlength=self.grams.size).astype(np.float64)
        self.idf: FloatArray = np.log((1.0 + n) / (1.0 + df)) + 1.0
        self.unknown_idf = float(np.log(1.0 + n)) + 1.0
        values = np.frombuffer(counts.vals, dtype=np.float32) * self.idf[column].astype(np.float32)
        norms = np.sqrt(np.bincount(rows, weights=values.astype(np.float64) ** 2, minlength=self.n_docs))
        values /= np.maximum(norms, 1e-12).astype(np.float32)[rows]
        # Column-major (a posting list per gram): a query reads only its grams' columns.
        order = np.argsort(column, kind="stable")
        self.data = values[order]
        self.rows = rows[order]
        self.indptr = np.concatenate([[0], np.cumsum(df)]).astype(np.int64)

    def similarity(self, query_grams: Sequence[str]) -> FloatArray:
        """Cosine of the query with every entry (grams no entry has count in the query's length)."""
        buckets: dict[int, float] = {}
        for gram, count in Counter(query_grams).items():
            gid = bucket(gram)
            buckets[gid] = buckets.get(gid, 0.0) + 1.0 + math.log(count)
        if not buckets or not self.n_docs:
            return np.zeros(self.n_docs)
        keys = np.fromiter(buckets.keys(), dtype=np.uint64, count=len(buckets))
        at = np.minimum(np.searchsorted(self.grams, keys), max(self.grams.size - 1, 0))
        seen = self.grams[at] == keys if self.grams.size else np.zeros(keys.size, dtype=bool)
        idf = np.where(seen, self.idf[at] if self.grams.size else 0.0, self.unknown_idf)
        weights = np.fromiter(buckets.values(), dtype=np.float64, count=len(buckets)) * idf
        if not seen.any():
            return np.zeros(self.n_docs)
        starts, ends = self.indptr[at], self.indptr[at + 1]
        # The query's columns, each scaled by its weight, summed per entry (a sparse dot product).
        rows = np.concatenate([self.rows[s:e] for s, e in zip(starts[seen], ends[seen], strict=True)])
        data = np.concatenate([self.data[s:e] for s, e in zip(starts[seen], ends[seen], strict=True)])
        scale = np.repeat(weights[seen] / np.sqrt(np.sum(weights**2)), (ends - starts)[seen])
        result: FloatArray = np.bincount(rows, weights=data * scale, minlength=self.n_docs).astype(np.float64)
        return result
