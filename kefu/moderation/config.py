"""``moderation.yaml``: categories, their actions and terms, the hold-back window, an optional external hook.

A missing file is an empty lexicon. Problems are reported with the key's path (``kefu bot check``); a file with
errors is not half-applied: the bot does not load, as with any other invalid bot file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kefu.content.problems import Problems
from kefu.moderation.external import ExternalModeration
from kefu.moderation.lexicon import Category, Moderator

FILE = "moderation.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CategorySpec(_Strict):
    """One category as written in the file."""

    action: Literal["block", "mask", "flag"]
    where: tuple[Literal["input", "output"], ...] = ("input", "output")
    reply: str | None = Field(default=None, min_length=1, max_length=500)


class ExternalSpec(_Strict):
    """An external moderation endpoint (shopper messages only)."""

    url: str = Field(pattern=r"^https?://")
    timeout: float = Field(default=1.0, gt=0, le=10)
    on_error: Literal["allow", "block"] = "allow"
    api_key_env: str | None = None


class ModerationConfig(_Strict):
    """The whole file."""

    window: int | None = Field(default=None, ge=1, le=200)
    default_reply: str | None = Field(default=None, min_length=1, max_length=500)
    categories: dict[str, CategorySpec] = {}
    terms: dict[str, tuple[str, ...]] = {}
    files: dict[str, str] = {}
    external: ExternalSpec | None = None


def load_moderation(bot_dir: Path, problems: Problems) -> tuple[Moderator, ExternalModeration | None]:
    """The bot's moderator (empty when there is no ``moderation.yaml``) and its external hook, if configured."""
    path = bot_dir / FILE
    if not path.exists():
        return Moderator.empty_moderator(), None
    config = _read(path, problems)
    if config is None:
        return Moderator.empty_moderator(), None
    terms: dict[str, list[str]] = {name: [] for name in config.categories}
    for name, words in config.terms.items():
        if name not in config.categories:
            problems.error(path, f"terms.{name}: unknown category (declare it under categories)")
            continue
        for i, word in enumerate(words):
            if not word.strip():
                problems.error(path, f"terms.{name}.{i}: empty term")
            else:
                terms[name].append(word.strip())
    for name, relative in config.files.items():
        if name not in config.categories:
            problems.error(path, f"files.{name}: unknown category (declare it under categories)")
            continue
        terms[name].extend(_read_terms(bot_dir, relative, path, f"files.{name}", problems))
    categories = {
        name: Category(name, spec.action, frozenset(spec.where), spec.reply) for name, spec in config.categories.items()
    }
    moderator = Moderator.build(categories, terms, window=config.window, default_reply=config.default_reply)
    if config.window is not None and config.window < max((len(t) for ws in terms.values() for t in ws), default=0):
        problems.warning(path, f"window: {config.window} is shorter than the longest term; the longest term is used")
    external = None
    if config.external is not None:
        spec = config.external
        external = ExternalModeration(
            spec.url, timeout=spec.timeout, on_error=spec.on_error, api_key_env=spec.api_key_env
        )
    return moderator, external


def _read(path: Path, problems: Problems) -> ModerationConfig | None:
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.error(path, f"not valid YAML: {getattr(exc, 'problem', exc)}", mark.line + 1 if mark else None)
        return None
    if not isinstance(data, dict):
        problems.error(path, "must be a mapping (categories, terms, files, window, external)")
        return None
    try:
        return ModerationConfig.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            problems.error(path, f"{where}: {error['msg']}")
        return None


def _read_terms(bot_dir: Path, relative: str, path: Path, key: str, problems: Problems) -> list[str]:
    file = (bot_dir / relative).resolve()
    if not file.is_relative_to(bot_dir.resolve()):
        problems.error(path, f"{key}: {relative} is outside the bot directory")
        return []
    if not file.is_file():
        problems.error(path, f"{key}: {relative} does not exist")
        return []
    words = []
    for line in file.read_text(encoding="utf-8").splitlines():
        word = line.split("#", 1)[0].strip()
        if word:
            words.append(word)
    return words
