"""``moderation.yaml``: categories, their actions and terms, the hold-back window, an optional external hook.

A missing file is an empty lexicon. Problems are reported with the key's path and line (``kefu bot check``);
a file with errors is not half-applied: the bot does not load, as with any other invalid bot file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from kefu.content.problems import Problems
from kefu.content.yamldoc import Doc, YamlError, parse
from kefu.moderation.external import ExternalModeration
from kefu.moderation.fold import fold
from kefu.moderation.lexicon import Category, Moderator
from kefu.obs.metrics import Metrics

FILE = "moderation.yaml"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,48}$")  # fits the stored mark "<action>:<category>" (64 characters)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class CategorySpec(_Strict):
    """One category as written in the file."""

    action: Literal["block", "mask", "flag"]
    where: tuple[Literal["input", "output"], ...] = ("input", "output")
    reply: str | None = Field(default=None, min_length=1, max_length=500)

    @field_validator("where", mode="before")
    @classmethod
    def _one(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("where")
    @classmethod
    def _somewhere(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name input, output or both")
        return value


class ExternalSpec(_Strict):
    """An external moderation endpoint (shopper messages only)."""

    url: str = Field(pattern=r"^https?://")
    timeout: float = Field(default=1.0, gt=0, le=10)
    on_error: Literal["allow", "block"] = "allow"
    api_key_env: str | None = None


class ModerationConfig(_Strict):
    """The whole file."""

    window: StrictInt | None = Field(default=None, ge=1, le=200)
    default_reply: str | None = Field(default=None, min_length=1, max_length=500)
    categories: dict[str, CategorySpec] = {}
    terms: dict[str, tuple[str, ...]] = {}
    files: dict[str, tuple[str, ...]] = {}  # a path, or a list of paths, per category
    external: ExternalSpec | None = None

    @field_validator("files", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value


def load_moderation(
    bot_dir: Path,
    problems: Problems,
    *,
    env: Mapping[str, str] | None = None,
    metrics: Metrics | None = None,
    mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> tuple[Moderator, ExternalModeration | None]:
    """The bot's moderator (empty when there is no ``moderation.yaml``) and its external hook, if configured.

    ``env`` is where ``external.api_key_env`` is looked up (default: the process environment)."""
    path = bot_dir / FILE
    if not path.exists():
        return Moderator.empty_moderator(), None
    errors = len(problems.errors)
    doc = _read(path, problems)
    if doc is None:
        return Moderator.empty_moderator(), None
    config, declared = _validate(doc, problems)
    if config is None:
        return Moderator.empty_moderator(), None
    terms = _terms(bot_dir, doc, config, declared, problems)
    longest = max((len(fold(t)) for words in terms.values() for t in words), default=0)
    if config.window is not None and config.window < longest:
        problems.error(
            path,
            f"window: {config.window} is shorter than the longest term ({longest} characters); leave it out to use "
            "the longest term",
            doc.line(("window",)),
        )
    if len(problems.errors) > errors:
        return Moderator.empty_moderator(), None
    categories = {
        name: Category(name, spec.action, frozenset(spec.where), spec.reply) for name, spec in config.categories.items()
    }
    moderator = Moderator.build(categories, terms, window=config.window, default_reply=config.default_reply)
    return moderator, _external(path, doc, config, moderator, env, metrics, mounts, problems)


def _read(path: Path, problems: Problems) -> Doc | None:
    try:
        doc = parse(path, path.read_text(encoding="utf-8"))
    except YamlError as exc:
        problems.error(path, f"not valid YAML: {exc}", exc.line)
        return None
    if doc.data is None:
        doc.data = {}
    if not isinstance(doc.data, dict):
        problems.error(path, "must be a mapping (categories, terms, files, window, external)", doc.line(()))
        return None
    return doc


def _validate(doc: Doc, problems: Problems) -> tuple[ModerationConfig | None, set[str]]:
    """The file's settings (None when they are unusable) and the names of all declared categories.

    Each category is validated on its own, so one with a bad action still counts as declared and the terms of
    every category are checked in the same run; only the valid ones are in the config."""
    data = dict(doc.data)
    raw = data.get("categories")
    declared: set[str] = set()
    if isinstance(raw, dict):
        valid: dict[str, CategorySpec] = {}
        for name, spec in raw.items():
            declared.add(name)
            key = ("categories", name)
            if not _NAME.match(name):
                problems.error(
                    doc.path,
                    f"categories.{name}: a category name is 1-48 letters, digits, '_', '.' or '-'",
                    doc.line(key),
                )
            try:
                valid[name] = CategorySpec.model_validate(spec)
            except ValidationError as exc:
                _report(doc, exc, key, problems)
                continue
            if valid[name].reply and valid[name].action != "block":
                problems.warning(
                    doc.path, f"categories.{name}.reply: only block uses a reply", doc.line((*key, "reply"))
                )
        data["categories"] = valid
    try:
        return ModerationConfig.model_validate(data), declared
    except ValidationError as exc:
        _report(doc, exc, (), problems)
        return None, declared


def _report(doc: Doc, exc: ValidationError, prefix: tuple[str, ...], problems: Problems) -> None:
    for error in exc.errors():
        loc = (*prefix, *error["loc"])
        given = f" (not {error['input']!r})" if error["type"] == "literal_error" else ""
        problems.error(doc.path, f"{'.'.join(map(str, loc))}: {error['msg']}{given}", doc.line(loc))


def _terms(
    bot_dir: Path, doc: Doc, config: ModerationConfig, declared: set[str], problems: Problems
) -> dict[str, list[str]]:
    """Every category's terms (inline, then from its files), with the problems of each term reported."""
    path = doc.path
    seen: dict[tuple[str, str], str] = {}  # (category, skeleton) → where it was first listed

    def add(name: str, word: str, where: str, file: Path, line: int | None) -> None:
        folded = fold(word)
        label = f"{where}: " if where else ""
        if not folded:
            shown = f" {word!r}" if word.strip() else ""
            problems.error(file, f"{label}empty term{shown} (no letter or digit to match)", line)
            return
        if (name, folded) in seen:
            problems.warning(file, f"{label}{word!r} is already a term of {name} ({seen[name, folded]})", line)
            return
        seen[name, folded] = where or f"{file.name}:{line}"
        if len(folded) == 1 and not folded.isascii():
            problems.warning(file, f"{label}the one-character term {word!r} hits inside ordinary words", line)
        terms[name].append(word)

    terms: dict[str, list[str]] = {name: [] for name in declared}
    for name, words in config.terms.items():
        if name not in declared:
            problems.error(
                path, f"terms.{name}: unknown category (declare it under categories)", doc.line(("terms", name))
            )
            continue
        for i, word in enumerate(words):
            add(name, word, f"terms.{name}.{i}", path, doc.line(("terms", name, i)))
    for name, files in config.files.items():
        key = ("files", name)
        if name not in declared:
            problems.error(path, f"files.{name}: unknown category (declare it under categories)", doc.line(key))
            continue
        for relative in files:
            file = (bot_dir / relative).resolve()
            if not file.is_relative_to(bot_dir.resolve()):
                problems.error(path, f"files.{name}: {relative} is outside the bot directory", doc.line(key))
            elif not file.is_file():
                problems.error(path, f"files.{name}: {relative} does not exist", doc.line(key))
            else:
                for number, word in _term_lines(file):
                    add(name, word, "", bot_dir / relative, number)
    for name, listed in terms.items():
        if not listed and name in config.categories:
            problems.warning(path, f"categories.{name}: no terms", doc.line(("categories", name)))
    return terms


def _term_lines(file: Path) -> list[tuple[int, str]]:
    """One term per line; ``#`` starts a comment (a term's own '#' would be ignored anyway)."""
    out = []
    for number, raw in enumerate(file.read_text(encoding="utf-8-sig").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            out.append((number, line))
    return out


def _external(
    path: Path,
    doc: Doc,
    config: ModerationConfig,
    moderator: Moderator,
    env: Mapping[str, str] | None,
    metrics: Metrics | None,
    mounts: Mapping[str, httpx.AsyncBaseTransport] | None,
    problems: Problems,
) -> ExternalModeration | None:
    spec = config.external
    if spec is None:
        return None
    environment = os.environ if env is None else env
    key = environment.get(spec.api_key_env) if spec.api_key_env else None
    if spec.api_key_env and not key:
        problems.warning(
            path,
            f"external.api_key_env: {spec.api_key_env} is not set; requests go without a key",
            doc.line(("external", "api_key_env")),
        )
    return ExternalModeration(
        spec.url,
        timeout=spec.timeout,
        on_error=spec.on_error,
        api_key=key,
        default_reply=moderator.default_reply,
        metrics=metrics,
        mounts=mounts,
    )
