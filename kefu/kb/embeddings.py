"""Optional dense retrieval: vectors from an OpenAI-compatible ``/embeddings`` endpoint.

Off unless ``KEFU_EMBEDDINGS_BASE_URL`` and ``KEFU_EMBEDDINGS_MODEL`` are set. Entry vectors are computed once
per content version of an entry and stored with it (``kb_entries.embedding``); a query is embedded per
search with a short timeout, and if that fails the search simply stays lexical.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np
import numpy.typing as npt

from kefu.kb.entries import Entry
from kefu.kb.store import Vector

BATCH = 64
ANSWER_CHARS = 300


class EmbeddingError(Exception):
    """The embeddings endpoint failed or answered nonsense."""


def entry_text(entry: Entry) -> str:
    """What is embedded for an entry: its questions (or title) and the start of its answer (or passage)."""
    return "\n".join((entry.question, *entry.similar, entry.answer[:ANSWER_CHARS]))


def to_bytes(vector: npt.NDArray[np.float32]) -> bytes:
    """A vector as stored (little-endian float32)."""
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes) -> npt.NDArray[np.float32]:
    """A stored vector."""
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


class Embedder:
    """A client for ``POST {base_url}/embeddings`` (OpenAI wire format)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.model = model
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def embed(self, texts: Sequence[str], *, timeout: float | None = None) -> list[npt.NDArray[np.float32]]:
        """One vector per text, in order."""
        out: list[npt.NDArray[np.float32]] = []
        for start in range(0, len(texts), BATCH):
            batch = list(texts[start : start + BATCH])
            try:
                response = await self._client.post(
                    "/embeddings",
                    json={"model": self.model, "input": batch},
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
                response.raise_for_status()
                data = response.json()["data"]
                rows = sorted(data, key=lambda d: d["index"])
                vectors = [np.asarray(r["embedding"], dtype=np.float32) for r in rows]
            except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
                raise EmbeddingError(f"embeddings request failed: {exc}") from exc
            if len(vectors) != len(batch):
                raise EmbeddingError(f"asked for {len(batch)} embeddings, got {len(vectors)}")
            out.extend(vectors)
        return out

    async def vectors_for(self, entries: Sequence[Entry], stored: dict[str, Vector]) -> dict[str, Vector]:
        """Vectors for the entries whose stored vector is missing or stale (other model or content)."""
        missing = [
            e for e in entries if (v := stored.get(e.id)) is None or v.key != e.content_key() or v.model != self.model
        ]
        if not missing:
            return {}
        vectors = await self.embed([entry_text(e) for e in missing])
        return {e.id: Vector(e.content_key(), self.model, to_bytes(v)) for e, v in zip(missing, vectors, strict=True)}
