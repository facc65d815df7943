"""FAQ files: CSV (``similar_questions`` separated by ``|``), JSONL (a list) and Markdown (``## question``).

Translations (docs/kb.md): CSV columns ``question_en`` / ``answer_en``; JSONL ``questions: {en: …}`` /
``answers: {en: …}`` (or the flat names); Markdown ``question_en: …`` under the heading and a ``### en`` section
holding the English answer.

Every loader returns the entries it could read and records each skipped row with its file and line in a
:class:`~kefu.content.problems.LoadReport`. Column names may be English or the usual Chinese spreadsheet headers.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from kefu.content.problems import LoadReport
from kefu.kb.entries import Entry, EntryError, make_entry
from kefu.text.normalize import normalize

FIELDS = ("id", "question", "answer", "similar_questions", "category", "valid_from", "valid_to")
_ALIASES = {
    "id": "id",
    "编号": "id",
    "question": "question",
    "问题": "question",
    "标准问": "question",
    "标准问题": "question",
    "answer": "answer",
    "答案": "answer",
    "回答": "answer",
    "similar_questions": "similar_questions",
    "similar": "similar_questions",
    "相似问题": "similar_questions",
    "相似问法": "similar_questions",
    "category": "category",
    "分类": "category",
    "类别": "category",
    "valid_from": "valid_from",
    "生效时间": "valid_from",
    "valid_to": "valid_to",
    "失效时间": "valid_to",
}
_MD_META = {
    "id": "id",
    "similar": "similar_questions",
    "similar_questions": "similar_questions",
    "相似问法": "similar_questions",
    "相似问题": "similar_questions",
    "category": "category",
    "分类": "category",
    "valid_from": "valid_from",
    "生效时间": "valid_from",
    "valid_to": "valid_to",
    "失效时间": "valid_to",
}
_TRANSLATED = re.compile(r"^(question|answer|问题|答案)_([a-z]{2})$")
_MD_LANG_HEADING = re.compile(r"^###\s+([a-z]{2})\s*$")  # "### en": the answer in English follows
_MD_META_LINE = re.compile(r"^\s*([A-Za-z_\u4e00-\u9fff]+)\s*[:：]\s*(.*)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _column(header: str) -> str | None:
    """The field a column holds: a known name or alias, or a translation (``answer_en``, ``答案_en``)."""
    name = header.strip().lower()
    translated = _TRANSLATED.match(name)
    if translated:
        return f"{_ALIASES[translated.group(1)]}_{translated.group(2)}"
    return _ALIASES.get(name)


def read_text(path: Path, report: LoadReport) -> str | None:
    """The file as text: UTF-8 (with or without BOM), else GB18030 (Chinese Excel exports)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        report.skip(path, 1, "file is neither UTF-8 nor GB18030 text")
        return None
    report.warn(path, 1, "file is not UTF-8; read it as GB18030")
    return text


def _entry(row: dict[str, Any], path: Path, line: int, origin: str, report: LoadReport) -> Entry | None:
    try:
        return make_entry(row, origin=origin, source=f"{path}:{line}")
    except EntryError as exc:
        report.skip(path, line, str(exc))
        return None


EXPECTED_CSV = (
    "expected a header row with question and answer columns (optional: similar_questions, category, id, valid_from, "
    "valid_to; Chinese headers 问题, 答案, 相似问题, 分类 work too)"
)


def load_csv(path: Path, report: LoadReport, *, origin: str) -> list[Entry]:
    """FAQ rows of a CSV file with a header row (``question`` and ``answer`` required).

    A file that cannot be read as a whole (empty, no usable header, broken CSV syntax) yields no entries: its rows
    after a syntax error would be wrong, and silently importing part of a file is worse than refusing it.
    """
    text = read_text(path, report)
    if text is None:
        return []
    # strict: an unclosed quote is an error at its row instead of swallowing the rest of the file into one cell
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        report.skip(path, 1, f"empty file: {EXPECTED_CSV}")
        return []
    except csv.Error as exc:
        report.skip(path, 1, f"CSV syntax error in the header row: {exc}")
        return []
    columns = [_column(h) for h in header]
    missing = [f for f in ("question", "answer") if f not in columns]
    if missing:
        found = ", ".join(h.strip() for h in header) or "nothing"
        report.skip(path, 1, f"header has no {' / '.join(missing)} column (found: {found}); {EXPECTED_CSV}")
        return []
    entries = []
    line = reader.line_num + 1
    while True:
        start = line
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            hint = " (a quote opened here is never closed)" if "end of data" in str(exc) else ""
            report.skip(
                path, start, f"CSV syntax error in the row starting at line {start}{hint}: {exc}; file not imported"
            )
            return []
        line = reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(columns) and any(c.strip() for c in cells[len(columns) :]):
            report.skip(path, start, f"{len(cells)} cells but the header has {len(columns)} (unquoted comma?)")
            continue
        row = {col: cell for col, cell in zip(columns, cells, strict=False) if col is not None}
        entry = _entry(row, path, start, origin, report)
        if entry is not None:
            entries.append(entry)
    return entries


def load_jsonl(path: Path, report: LoadReport, *, origin: str) -> list[Entry]:
    """FAQ objects, one per line (``similar_questions`` is a list)."""
    text = read_text(path, report)
    if text is None:
        return []
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            report.skip(path, number, f"not valid JSON: {exc.msg}")
            continue
        if not isinstance(obj, dict):
            report.skip(path, number, "each line must be a JSON object")
            continue
        row = {_column(str(k)) or str(k): v for k, v in obj.items()}
        entry = _entry(row, path, number, origin, report)
        if entry is not None:
            entries.append(entry)
    return entries


def load_markdown_faq(path: Path, report: LoadReport, *, origin: str) -> list[Entry]:
    """``## question`` headings; metadata lines right under them (``相似问法: a | b``, ``id: …``); the rest is
    the answer. A ``# heading`` sets the category of the questions under it."""
    text = read_text(path, report)
    if text is None:
        return []
    entries: list[Entry] = []
    category: str | None = None
    current: dict[str, Any] | None = None
    body: list[str] = []
    in_meta = False
    translated: dict[str, list[str]] = {}  # "### en" sections: the answer in another language
    into = body

    def finish() -> None:
        if current is None:
            return
        answers = current.setdefault("answers", {})
        for lang, lines in translated.items():
            answers[lang] = "\n".join(lines).strip()
        current["answer"] = "\n".join(body).strip()
        entry = _entry(current, path, current.pop("_line"), origin, report)
        if entry is not None:
            entries.append(entry)

    for number, line in enumerate(text.splitlines(), start=1):
        heading = _HEADING.match(line)
        if heading and len(heading.group(1)) <= 2:
            finish()
            current, body, in_meta, translated = None, [], False, {}
            into = body
            if len(heading.group(1)) == 1:
                category = heading.group(2) or None
            else:
                current = {"question": heading.group(2), "category": category, "_line": number}
                in_meta = True
            continue
        if current is None:
            continue
        lang_heading = _MD_LANG_HEADING.match(line)
        if lang_heading:
            in_meta = False
            into = translated.setdefault(lang_heading.group(1), [])
            continue
        meta = _MD_META_LINE.match(line) if in_meta else None
        key = _column(meta.group(1)) if meta and _TRANSLATED.match(meta.group(1).lower()) else None
        key = key or (_MD_META.get(meta.group(1).lower()) if meta else None)
        if meta and key:
            value = meta.group(2).strip()
            current[key] = [v.strip() for v in value.split("|")] if key == "similar_questions" else value
            continue
        if in_meta and not line.strip() and not body:
            continue
        in_meta = False
        into.append(line)
    finish()
    return entries


def load_faq_file(path: Path, report: LoadReport, *, origin: str) -> list[Entry]:
    """FAQ entries of one file, by extension (``.csv``, ``.jsonl``, ``.md``)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return load_csv(path, report, origin=origin)
    if suffix in (".jsonl", ".ndjson"):
        return load_jsonl(path, report, origin=origin)
    if suffix in (".md", ".markdown"):
        return load_markdown_faq(path, report, origin=origin)
    report.skip(path, 1, f"unsupported FAQ file type {suffix!r} (use .csv, .jsonl or .md)")
    return []


def dedupe(entries: list[Entry], report: LoadReport) -> list[Entry]:
    """Drop later entries that repeat an id or (for FAQs) a question, reporting where the first one was."""
    by_id: dict[str, Entry] = {}
    by_question: dict[str, Entry] = {}
    out = []
    for entry in entries:
        file, _, line = (entry.source or "?:0").rpartition(":")
        first = by_id.get(entry.id)
        key = normalize(entry.question)
        if first is None and entry.kind == "faq":
            first = by_question.get(key)
        if first is not None:
            report.skip(file, int(line or 0), f"duplicate of the entry at {first.source} ({first.id})")
            continue
        by_id[entry.id] = entry
        if entry.kind == "faq":
            by_question[key] = entry
        out.append(entry)
    return out
