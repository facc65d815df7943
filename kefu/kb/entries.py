"""A knowledge-base entry (an FAQ pair or a document passage) and the rules every entry must follow.

The same validation runs for CSV, JSONL and Markdown files, documents and the admin API, so an entry that
loads from a file is also one the API accepts.

An FAQ's ``question`` and ``answer`` are in the bot's default language; :class:`Translation` s carry the same entry
in other languages (``answer_en`` …). A shopper gets the version in their language, else the default one alone.
Translations are what the shopper is shown, not what is searched: phrasings in any language that should find the
entry belong in ``similar_questions``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, TypeAlias

from kefu.text.normalize import normalize

Kind: TypeAlias = Literal["faq", "doc"]

MAX_QUESTION = 500
MAX_ANSWER = 20_000
MAX_SIMILAR = 200
MAX_CATEGORY = 64
_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
LANG_CODE = re.compile(r"^[a-z]{2}$")  # zh, en, ja …: the language of a translation (answer_en, questions: {en: …})
MAX_TRANSLATIONS = 8


class EntryError(ValueError):
    """An entry that breaks a rule; the message says which."""


@dataclass(frozen=True, slots=True)
class Translation:
    """An FAQ entry in another language: its question (for suggestions) and answer; either may be missing."""

    lang: str
    question: str | None = None
    answer: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One FAQ entry (question, answer, similar questions) or document passage (title, text)."""

    id: str
    question: str
    answer: str
    similar: tuple[str, ...] = ()
    kind: Kind = "faq"
    category: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    # Where it came from: "bot" (the bot directory), "import:<path>" or "admin".
    origin: str = "admin"
    source: str | None = field(default=None, compare=False)
    translations: tuple[Translation, ...] = ()

    def _translation(self, lang: str | None) -> Translation | None:
        return next((t for t in self.translations if t.lang == lang), None) if lang else None

    def answer_in(self, lang: str | None) -> str:
        """The answer in ``lang`` when the entry has one, else the answer in the default language."""
        found = self._translation(lang)
        return found.answer if found is not None and found.answer else self.answer

    def question_in(self, lang: str | None) -> str:
        """The question in ``lang`` when the entry has one, else the question in the default language."""
        found = self._translation(lang)
        return found.question if found is not None and found.question else self.question

    def valid_at(self, when: datetime) -> bool:
        """True when the entry may be used at ``when``."""
        if self.valid_from is not None and when < self.valid_from:
            return False
        return not (self.valid_to is not None and when >= self.valid_to)

    def content_key(self) -> str:
        """A digest of everything that changes what the entry says (embeddings are keyed on it)."""
        langs = [f"{t.lang}\x1e{t.question or ''}\x1e{t.answer or ''}" for t in self.translations]
        parts = (self.kind, self.question, self.answer, *self.similar, *langs)
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]

    def with_origin(self, origin: str) -> Entry:
        """A copy with another origin."""
        return replace(self, origin=origin)


def default_id(kind: Kind, *parts: str) -> str:
    """A stable id derived from what identifies the entry (the question for an FAQ)."""
    digest = hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:12]
    return f"{kind}-{digest}"


def parse_when(value: Any, *, end: bool) -> datetime | None:
    """An ISO date or datetime; naive values are UTC; a date-only ``end`` includes that whole day."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time(), tzinfo=UTC) + (timedelta(days=1) if end else timedelta())
    else:
        text = str(value).strip()
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                parsed = datetime.combine(day, time(), tzinfo=UTC) + (timedelta(days=1) if end else timedelta())
            else:
                parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise EntryError(f"not an ISO date or datetime: {text!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _text(value: Any, name: str, limit: int, *, required: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise EntryError(f"{name} must be text, got {type(value).__name__}")
    text = value.strip()
    if required and not text:
        raise EntryError(f"{name} is empty")
    if len(text) > limit:
        raise EntryError(f"{name} is longer than {limit} characters ({len(text)})")
    return text


def _similar(value: Any, question: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = value.split("|")
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise EntryError("similar_questions must be a list of texts (CSV: separated by '|')")
    seen = {normalize(question)}
    out = []
    for item in value:
        text = _text(item, "a similar question", MAX_QUESTION, required=False)
        key = normalize(text)
        if text and key not in seen:
            seen.add(key)
            out.append(text)
    if len(out) > MAX_SIMILAR:
        raise EntryError(f"more than {MAX_SIMILAR} similar questions")
    return tuple(out)


def _by_lang(value: Any, name: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise EntryError(f'{name} must be an object of language code to text, like {{"en": "…"}}')
    return {str(k).strip().lower(): v for k, v in value.items()}


def _translations(data: dict[str, Any], kind: Kind) -> tuple[Translation, ...]:
    """``questions: {en: …}`` / ``answers: {en: …}`` and flat ``question_en`` / ``answer_en`` columns."""
    questions = _by_lang(data.get("questions"), "questions")
    answers = _by_lang(data.get("answers"), "answers")
    for key, value in data.items():
        head, _, lang = str(key).rpartition("_")
        if head in ("question", "answer") and LANG_CODE.match(lang) and value not in (None, ""):
            (questions if head == "question" else answers)[lang] = value
    langs = sorted(set(questions) | set(answers))
    if not langs:
        return ()
    if kind != "faq":
        raise EntryError("only FAQ entries have translations")
    if len(langs) > MAX_TRANSLATIONS:
        raise EntryError(f"more than {MAX_TRANSLATIONS} translations")
    out = []
    for lang in langs:
        if not LANG_CODE.match(lang):
            raise EntryError(f"not a two-letter language code: {lang!r} (like en, zh)")
        question = _text(questions.get(lang), f"question_{lang}", MAX_QUESTION, required=False) or None
        answer = _text(answers.get(lang), f"answer_{lang}", MAX_ANSWER, required=False) or None
        if question or answer:
            out.append(Translation(lang, question, answer))
    return tuple(out)


def make_entry(data: dict[str, Any], *, kind: Kind = "faq", origin: str = "admin", source: str | None = None) -> Entry:
    """Validate a row (``question``, ``answer``, ``similar_questions``, ``category``, ``valid_from``,
    ``valid_to``, optional ``id``, translations as ``questions``/``answers`` objects or ``question_<lang>``/
    ``answer_<lang>`` fields) into an :class:`Entry`; raise :class:`EntryError` otherwise."""
    question = _text(data.get("question"), "question", MAX_QUESTION, required=True)
    answer = _text(data.get("answer"), "answer", MAX_ANSWER, required=True)
    translations = _translations(data, kind)
    similar = _similar(data.get("similar_questions"), question)
    category = _text(data.get("category"), "category", MAX_CATEGORY, required=False) or None
    valid_from = parse_when(data.get("valid_from"), end=False)
    valid_to = parse_when(data.get("valid_to"), end=True)
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        raise EntryError("valid_to must be after valid_from")
    raw_id = data.get("id")
    if raw_id is None or str(raw_id).strip() == "":
        entry_id = default_id(kind, normalize(question))
    else:
        entry_id = str(raw_id).strip()
        if not _ID.match(entry_id):
            raise EntryError("id must be 1-64 characters of letters, digits and _.:-")
    return Entry(
        id=entry_id,
        question=question,
        answer=answer,
        similar=similar,
        kind=kind,
        category=category,
        valid_from=valid_from,
        valid_to=valid_to,
        origin=origin,
        source=source,
        translations=translations,
    )


def translations_json(translations: tuple[Translation, ...]) -> dict[str, dict[str, str]]:
    """``{"questions": {lang: …}, "answers": {lang: …}}`` (only the parts present)."""
    out: dict[str, dict[str, str]] = {}
    for t in translations:
        if t.question:
            out.setdefault("questions", {})[t.lang] = t.question
        if t.answer:
            out.setdefault("answers", {})[t.lang] = t.answer
    return out


def translations_from_json(data: dict[str, Any]) -> tuple[Translation, ...]:
    """The inverse of :func:`translations_json` (stored rows, already validated)."""
    questions, answers = data.get("questions") or {}, data.get("answers") or {}
    return tuple(Translation(lang, questions.get(lang), answers.get(lang)) for lang in sorted({*questions, *answers}))


def entry_json(entry: Entry) -> dict[str, Any]:
    """The JSON form of an entry (admin API, ``kefu kb list --json``)."""
    return {
        "id": entry.id,
        "kind": entry.kind,
        "question": entry.question,
        "answer": entry.answer,
        "similar_questions": list(entry.similar),
        "category": entry.category,
        "valid_from": entry.valid_from.isoformat() if entry.valid_from else None,
        "valid_to": entry.valid_to.isoformat() if entry.valid_to else None,
        "origin": entry.origin,
        "questions": translations_json(entry.translations).get("questions", {}),
        "answers": translations_json(entry.translations).get("answers", {}),
    }
