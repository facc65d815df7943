"""Where a bot keeps its knowledge base, and reading all of it::

<bot dir>/kb/faq/*.csv|*.jsonl|*.md     FAQ entries
<bot dir>/kb/docs/*.md|*.txt|*.html     documents (chunked into passages)
<bot dir>/kb/dictionary.txt             business dictionary (jieba user-dictionary format)
<bot dir>/kb/synonyms.txt               synonym table
<bot dir>/kb/stopwords.txt              extra stopwords
<bot dir>/kb/eval.jsonl                 labelled queries for ``kefu kb eval`` (not loaded as content)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kefu.content.problems import LoadReport
from kefu.kb.documents import DOC_SUFFIXES, load_document
from kefu.kb.entries import Entry
from kefu.kb.loaders import dedupe, load_faq_file
from kefu.text.lexicon import Lexicon, load_lexicon

FAQ_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".md", ".markdown")
_RESERVED = frozenset({"dictionary.txt", "synonyms.txt", "stopwords.txt", "readme.md"})


@dataclass(frozen=True, slots=True)
class Chunking:
    """How documents are cut into passages."""

    size: int = 400
    overlap: int = 80


@dataclass(slots=True)
class BotContent:
    """Everything the bot directory says about the knowledge base."""

    entries: list[Entry]
    lexicon: Lexicon
    report: LoadReport
    fingerprint: str = ""
    files: list[Path] = field(default_factory=list)


def kb_dir(bot_dir: Path) -> Path:
    """The knowledge-base folder of a bot."""
    return bot_dir / "kb"


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def _reserved(path: Path) -> bool:
    name = path.name.lower()
    return name in _RESERVED or name.startswith("eval")


def content_files(bot_dir: Path) -> list[Path]:
    """The FAQ and document files of a bot, in a stable order."""
    root = kb_dir(bot_dir)
    return _files(root / "faq", FAQ_SUFFIXES) + _files(root / "docs", DOC_SUFFIXES)


def fingerprint(bot_dir: Path, chunking: Chunking) -> str:
    """A digest of the content files (names and bytes) and the chunking, to tell when they changed."""
    digest = hashlib.sha256(f"{chunking.size}:{chunking.overlap}".encode())
    root = kb_dir(bot_dir)
    for path in content_files(bot_dir):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def guess_kind(path: Path) -> Literal["faq", "doc"]:
    """FAQ for CSV/JSONL and for Markdown under a folder (or named) ``faq``; otherwise a document."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".jsonl", ".ndjson"):
        return "faq"
    if suffix in (".md", ".markdown") and any("faq" in part.lower() for part in path.parts[-3:]):
        return "faq"
    return "doc"


def load_file(
    path: Path,
    report: LoadReport,
    *,
    origin: str,
    kind: Literal["faq", "doc", "auto"] = "auto",
    chunking: Chunking = Chunking(),
    name: str | None = None,
) -> list[Entry]:
    """Entries of one FAQ file or document."""
    resolved = guess_kind(path) if kind == "auto" else kind
    if resolved == "faq":
        return load_faq_file(path, report, origin=origin)
    if path.suffix.lower() not in DOC_SUFFIXES:
        report.skip(path, 1, f"unsupported document type {path.suffix!r} (use .md, .txt or .html)")
        return []
    return load_document(path, report, origin=origin, size=chunking.size, overlap=chunking.overlap, name=name)


def expand(path: Path) -> list[Path]:
    """A file, or the content files under a folder (skipping the lexicon and eval files)."""
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix.lower() in FAQ_SUFFIXES + DOC_SUFFIXES and not _reserved(p)
    )


def load_bot_content(bot_dir: Path, chunking: Chunking = Chunking()) -> BotContent:
    """Entries and lexicon of a bot directory (a bot without ``kb/`` has an empty knowledge base)."""
    report = LoadReport()
    root = kb_dir(bot_dir)
    lexicon = load_lexicon(root, report)
    entries: list[Entry] = []
    for path in content_files(bot_dir):
        kind: Literal["faq", "doc"] = "faq" if root / "faq" in path.parents else "doc"
        name = str(path.relative_to(root))
        entries.extend(load_file(path, report, origin="bot", kind=kind, chunking=chunking, name=name))
    entries = dedupe(entries, report)
    report.loaded = len(entries)
    return BotContent(entries, lexicon, report, fingerprint(bot_dir, chunking), content_files(bot_dir))
