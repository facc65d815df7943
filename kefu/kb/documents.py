"""Documents (Markdown, plain text, HTML) → passages: split by section, chunked with overlap.

Each passage keeps the path of section titles it sits under ("尺码指南 › 裤装尺码表") as its title, so a
passage read on its own still says what it is about. Chunks end at sentence or line boundaries where
possible; consecutive chunks of a section share ``overlap`` characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from kefu.content.problems import LoadReport
from kefu.kb.entries import Entry, EntryError, default_id, make_entry
from kefu.kb.loaders import read_text

DOC_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SENTENCE = re.compile(r"(?<=[。！？!?；;\n])|(?<=\.\s)")


@dataclass(frozen=True, slots=True)
class Section:
    """A run of text under one heading path, and the line it starts on."""

    titles: tuple[str, ...]
    text: str
    line: int


def markdown_sections(text: str, fallback_title: str) -> list[Section]:
    """Split Markdown at headings; the first ``#`` heading (or ``fallback_title``) names the document."""
    path: list[tuple[int, str]] = []
    sections: list[Section] = []
    body: list[str] = []
    start = 1
    doc_title = fallback_title

    def flush() -> None:
        content = "\n".join(body).strip()
        if content:
            titles = tuple(t for _, t in path) or (doc_title,)
            if titles[0] != doc_title:
                titles = (doc_title, *titles)
            sections.append(Section(titles, content, start))

    for number, line in enumerate(text.splitlines(), start=1):
        heading = _HEADING.match(line)
        if heading is None:
            body.append(line)
            continue
        flush()
        level, title = len(heading.group(1)), heading.group(2).strip()
        if level == 1 and not sections and not path:
            doc_title = title
        path = [(lv, t) for lv, t in path if lv < level] + [(level, title)]
        body, start = [], number
    flush()
    return sections


def chunk(text: str, size: int, overlap: int) -> list[str]:
    """``text`` cut into pieces of about ``size`` characters, neighbours sharing up to ``overlap``."""
    text = text.strip()
    if len(text) <= size:
        return [text] if text else []
    pieces = [p for p in _SENTENCE.split(text) if p]
    sentences: list[str] = []
    for piece in pieces:  # a sentence longer than a chunk is cut hard
        while len(piece) > size:
            sentences.append(piece[:size])
            piece = piece[size - overlap :] if overlap < size else piece[size:]
        sentences.append(piece)
    chunks: list[str] = []
    current: list[str] = []
    fresh = False  # whether ``current`` holds anything beyond the overlap carried over
    for sentence in sentences:
        if fresh and len("".join(current)) + len(sentence) > size:
            chunks.append("".join(current).strip())
            tail: list[str] = []
            for previous in reversed(current):
                if len("".join(tail)) + len(previous) > overlap:
                    break
                tail.insert(0, previous)
            current = tail
        current.append(sentence)
        fresh = True
    if fresh and "".join(current).strip():
        chunks.append("".join(current).strip())
    return chunks


class _HTMLText(HTMLParser):
    """HTML → Markdown-ish text: headings become ``#`` lines, blocks become lines, scripts are dropped."""

    _BLOCKS = frozenset({"p", "div", "li", "br", "tr", "section", "article", "table", "ul", "ol", "dd", "dt"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "nav", "footer"):
            self._skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n" + "#" * int(tag[1]) + " ")
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag == "td" or tag == "th":
            self.parts.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "nav", "footer"):
            self._skip = max(0, self._skip - 1)
        elif re.fullmatch(r"h[1-6]", tag) or tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(re.sub(r"[ \t\r\n]+", " ", data))


def html_to_markdown(html: str) -> str:
    """The readable text of an HTML page, headings kept as Markdown headings."""
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).splitlines()]
    return "\n".join(line for line in lines if line)


def load_document(
    path: Path, report: LoadReport, *, origin: str, size: int = 400, overlap: int = 80, name: str | None = None
) -> list[Entry]:
    """Passages of one document; ``name`` (default: the file name) keys their ids."""
    text = read_text(path, report)
    if text is None:
        return []
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        text = html_to_markdown(text)
    if suffix == ".txt":
        sections = [Section((path.stem,), text, 1)] if text.strip() else []
    else:
        sections = markdown_sections(text, path.stem)
    entries = []
    key = name or path.name
    for section in sections:
        title = " › ".join(section.titles)
        for index, piece in enumerate(chunk(section.text, size, overlap)):
            row = {"id": default_id("doc", key, str(section.line), str(index)), "question": title, "answer": piece}
            try:
                entries.append(make_entry(row, kind="doc", origin=origin, source=f"{path}:{section.line}"))
            except EntryError as exc:
                report.skip(path, section.line, str(exc))
    return entries
