"""KnowledgeBase over SQLite: bot files synced once, version bump + rebuild, replicas catch up, dense RRF."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import numpy as np

from kefu.kb.embeddings import Embedder
from kefu.kb.entries import make_entry
from kefu.kb.service import KbConfig, KnowledgeBase
from kefu.kb.store import KbStore
from kefu.store.sql import create_engine_for


def _kb(database_url: str, bot_dir: Path, *, refresh: float = 5.0, embedder: Embedder | None = None) -> KnowledgeBase:
    config = KbConfig(bot_dir=bot_dir, refresh_seconds=refresh)
    return KnowledgeBase(KbStore(create_engine_for(database_url)), config, embedder=embedder)


async def test_kb_start_syncs_bot_files_once(database_url: str, bot_dir: Path) -> None:
    first = _kb(database_url, bot_dir)
    await first.start()
    version = first.version
    assert first.available and (await first.search("邮费多少")).direct is not None
    second = _kb(database_url, bot_dir)  # another replica starting on the same files
    await second.start()
    assert second.version == version  # nothing re-synced, nothing bumped
    entries, total = await second.store.list()
    assert total == 3 and {e.origin for e in entries} == {"bot"}
    await first.aclose()
    await second.aclose()


async def test_kb_resyncs_when_bot_files_change(database_url: str, bot_dir: Path) -> None:
    kb = _kb(database_url, bot_dir)
    await kb.start()
    before = kb.version
    await kb.aclose()
    faq = bot_dir / "kb" / "faq" / "faq.csv"
    faq.write_text(faq.read_text(encoding="utf-8").replace("满99元包邮。", "满88元包邮。"), encoding="utf-8")
    kb = _kb(database_url, bot_dir)
    await kb.start()
    assert kb.version != before
    hit = (await kb.search("运费怎么算")).direct
    assert hit is not None and hit.text == "满88元包邮。"
    await kb.aclose()


async def test_kb_version_bumps_and_index_reloads_on_every_change(database_url: str, bot_dir: Path) -> None:
    kb = _kb(database_url, bot_dir)
    await kb.start()
    versions = [kb.version]
    entry = make_entry({"id": "gift", "question": "可以礼品包装吗？", "answer": "备注礼品包装即可。"})
    assert await kb.put(entry, create=True) is not None
    versions.append(kb.version)
    assert (await kb.search("礼品包装")).hits[0].id == "gift"
    assert await kb.put(entry, create=True) is None  # the id exists
    changed = make_entry({"id": "gift", "question": "可以礼品包装吗？", "answer": "免费礼盒。"})
    assert await kb.put(changed, create=False) is not None
    versions.append(kb.version)
    assert (await kb.search("可以礼品包装吗")).hits[0].text == "免费礼盒。"
    assert await kb.delete("gift")
    versions.append(kb.version)
    assert all(h.id != "gift" for h in (await kb.search("礼品包装")).hits)
    assert not await kb.delete("gift")
    assert len(set(versions)) == 4  # every change produced a new version
    await kb.aclose()


async def test_kb_other_replica_notices_a_change_and_rebuilds(database_url: str, bot_dir: Path) -> None:
    writer = _kb(database_url, bot_dir)
    reader = _kb(database_url, bot_dir, refresh=0.05)
    await writer.start()
    await reader.start()
    entry = make_entry({"id": "pets", "question": "可以带宠物进店吗？", "answer": "欢迎。"})
    await writer.put(entry, create=True)
    assert (await reader.search("宠物")).hits == ()  # still the old index: the check runs in the background
    for _ in range(100):
        await asyncio.sleep(0.06)
        if (await reader.search("宠物")).hits:
            break
    assert (await reader.search("宠物")).hits[0].id == "pets"
    assert reader.version == writer.version
    await writer.aclose()
    await reader.aclose()


async def test_kb_import_replaces_what_the_same_origin_imported(database_url: str, bot_dir: Path) -> None:
    kb = _kb(database_url, bot_dir)
    await kb.start()
    rows = [make_entry({"question": f"问题{i}？", "answer": f"答案{i}"}) for i in range(3)]
    first = await kb.replace_origin("import:/x.csv", rows)
    assert (first.added, first.updated, first.removed) == (3, 0, 0)
    again = await kb.replace_origin("import:/x.csv", rows)
    assert not again.changed  # same content: no new version
    second = await kb.replace_origin("import:/x.csv", [rows[0], make_entry({"question": "问题1？", "answer": "新"})])
    assert (second.added, second.updated, second.removed) == (0, 1, 1)
    _, total = await kb.store.list()
    assert total == 3 + 2
    await kb.aclose()


async def test_kb_search_puts_the_direct_faq_first(database_url: str, bot_dir: Path) -> None:
    kb = _kb(database_url, bot_dir)
    await kb.start()
    result = await kb.search("怎么开发票")
    assert result.confidence == "high" and result.hits[0].id == "invoice" and result.hits[0].kind == "faq"
    assert result.suggestions[0] == "怎么开发票？"
    assert kb.version.startswith(str(await kb.store.version()))
    await kb.aclose()


def _fake_embeddings() -> httpx.MockTransport:
    """Vectors that know 寄送 ≈ 运费 (no shared characters), to prove dense retrieval is fused in."""
    topics = {"运费": 0, "包邮": 0, "寄送": 0, "退款": 1, "退回": 1, "发票": 2}

    def vector(text: str) -> list[float]:
        v = [0.0, 0.0, 0.0, 0.1]
        for word, axis in topics.items():
            if word in text:
                v[axis] += 1.0
        return v

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        data = [{"index": i, "embedding": vector(t)} for i, t in enumerate(body["input"])]
        return httpx.Response(200, json={"data": data, "model": body["model"]})

    return httpx.MockTransport(handler)


async def test_kb_dense_retrieval_is_fused_and_vectors_are_stored(database_url: str, bot_dir: Path) -> None:
    embedder = Embedder("http://embed.test/v1", "fake-embed", transport=_fake_embeddings())
    kb = _kb(database_url, bot_dir, embedder=embedder)
    await kb.start()
    found = await kb.explain("寄送")  # no term in common with any entry
    assert found.matches and found.matches[0].entry.id == "fee" and found.matches[0].field == "dense"
    assert found.confidence == "low"  # dense alone never answers directly
    snapshot = await kb.store.snapshot()
    assert set(snapshot.vectors) == {"fee", "refund", "invoice"}
    assert np.frombuffer(snapshot.vectors["fee"].data, dtype="<f4")[0] == 2.0  # 运费 + 包邮
    await kb.aclose()


async def test_kb_dense_failure_falls_back_to_lexical(database_url: str, bot_dir: Path) -> None:
    broken = httpx.MockTransport(lambda request: httpx.Response(500, json={"error": "down"}))
    kb = _kb(database_url, bot_dir, embedder=Embedder("http://embed.test/v1", "fake", transport=broken))
    await kb.start()
    result = await kb.search("邮费多少")
    assert result.direct is not None and result.direct.id == "fee"
    await kb.aclose()
