"""Load and check a bot directory: system prompt, canned texts, tools, flows and knowledge-base files.

``kefu bot check DIR`` and server start-up run the same :func:`load_bot`, so a bot that passes the check is
one the server accepts, and a bot the server refuses fails the check with the same report.

Layout::

    <bot>/system_prompt.md   persona and rules for the model
    <bot>/texts.yaml         canned texts (``apology``, ``suggest_intro``, ``smalltalk_*``; ``default_lang``), optional
    <bot>/handoff.yaml       people in the loop: hours, queue, notices, canned replies, webhooks (docs/handoff.md)
    <bot>/moderation.yaml    sensitive-word lexicon: categories, actions, terms (docs/moderation.md)
    <bot>/tools/*.yaml       business tools (docs/tools.md)
    <bot>/flows/*.yaml       task flows (docs/flows.md)
    <bot>/kb/…               knowledge base (docs/kb.md)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from kefu.bot.prompts import load_system_prompt
from kefu.bot.texts import KEYS as TEXT_KEYS
from kefu.bot.texts import CannedTexts
from kefu.content.problems import LoadReport, Problems
from kefu.flows.interpreter import FlowInterpreter
from kefu.flows.spec import FlowSet, load_flows
from kefu.flows.texts import LANGS, Lang
from kefu.handoff.config import HandoffConfig, load_handoff_config
from kefu.kb.botdir import load_bot_content
from kefu.moderation import ExternalModeration, Moderator, load_moderation
from kefu.obs.metrics import Metrics
from kefu.tools.registry import ToolRegistry

_DEFAULT_LANG = "default_lang"  # texts.yaml: the language of texts given as plain strings, and the fallback


@dataclass(slots=True)
class Bot:
    """A loaded bot directory."""

    directory: Path
    system_prompt: str
    texts: CannedTexts
    tools: ToolRegistry
    flows: FlowSet
    interpreter: FlowInterpreter
    fingerprint: str
    handoff: HandoffConfig = field(default_factory=HandoffConfig)
    moderator: Moderator = field(default_factory=Moderator.empty_moderator)
    external_moderation: ExternalModeration | None = None

    async def aclose(self) -> None:
        """Close the tools' (and the external moderation hook's) HTTP clients."""
        await self.tools.aclose()
        if self.external_moderation is not None:
            await self.external_moderation.aclose()


def _texts(path: Path, problems: Problems) -> CannedTexts:
    if not path.exists():
        return CannedTexts()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.error(path, f"not valid YAML: {getattr(exc, 'problem', exc)}", mark.line + 1 if mark else None)
        return CannedTexts()
    if not isinstance(data, dict):
        problems.error(path, "must be a mapping of text names to texts")
        return CannedTexts()
    default_lang: Lang = "zh"
    lang_value = data.pop(_DEFAULT_LANG, "zh")
    if lang_value in LANGS:
        default_lang = lang_value
    else:
        problems.error(path, f"{_DEFAULT_LANG} must be one of {', '.join(LANGS)}, got {lang_value!r}")
    values: dict[str, str | dict[Lang, str]] = {}
    for key, value in data.items():
        if key not in TEXT_KEYS:
            problems.error(path, f"unknown text {key!r} (known: {_DEFAULT_LANG}, {', '.join(TEXT_KEYS)})")
        elif isinstance(value, dict):  # {zh: …, en: …}: one text per language, each said alone
            versions = _versions(value)
            if versions is None:
                problems.error(path, f"text {key!r}: languages must be {' / '.join(LANGS)} with non-empty texts")
            else:
                values[key] = versions
        elif not isinstance(value, str) or not value.strip():
            problems.error(path, f"text {key!r} must be a non-empty string or {{zh: …, en: …}}")
        else:
            values[key] = value
    return CannedTexts(default_lang=default_lang, **values)


def _versions(value: dict[object, object]) -> dict[Lang, str] | None:
    out: dict[Lang, str] = {}
    for lang, text in value.items():
        if lang not in LANGS or not isinstance(text, str) or not text.strip():
            return None
        out["zh" if lang == "zh" else "en"] = text
    return out or None


def _kb_problems(report: LoadReport, problems: Problems) -> None:
    for p in report.problems:
        if p.skipped:
            problems.error(Path(p.file), f"row skipped: {p.reason}", p.line or None)
        else:
            problems.warning(Path(p.file), p.reason, p.line or None)


def fingerprint(bot_dir: Path) -> str:
    """A digest of every file of the bot (names and bytes): changes whenever the bot does."""
    digest = hashlib.sha256()
    for path in sorted(p for p in bot_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(bot_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def load_bot(
    bot_dir: Path,
    *,
    env: Mapping[str, str],
    allow_hosts: list[str],
    metrics: Metrics | None = None,
    mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    check_kb: bool = False,
) -> tuple[Bot | None, Problems]:
    """The bot in ``bot_dir`` and everything wrong with it; no bot when there is any error.

    ``check_kb`` also reports knowledge-base rows that would be skipped (the server loads the knowledge base
    on its own and reports those in its log).
    """
    problems = Problems()
    if not bot_dir.is_dir():
        problems.error(bot_dir, "bot directory does not exist (KEFU_BOT_DIR)")
        return None, problems
    texts = _texts(bot_dir / "texts.yaml", problems)
    handoff = load_handoff_config(bot_dir / "handoff.yaml", problems)
    moderator, external_moderation = load_moderation(bot_dir, problems, env=env, metrics=metrics, mounts=mounts)
    tools = ToolRegistry.load(bot_dir, problems, env=env, allow_hosts=allow_hosts, metrics=metrics, mounts=mounts)
    content = load_bot_content(bot_dir)  # read once: its lexicon, its rows' problems and its FAQ questions
    flows = load_flows(bot_dir, problems, tools.risks(), lexicon=content.lexicon)
    if check_kb:
        _kb_problems(content.report, problems)
    # The FAQ's questions are what "no task" looks like for this shop: the intent classifier learns them as such.
    faq = [e for e in content.entries if e.kind == "faq"]
    questions = (q for e in faq for q in (e.question, *e.similar, *(t.question for t in e.translations)) if q)
    interpreter = FlowInterpreter(flows, tools, negatives=tuple(questions))
    if not problems.errors:
        interpreter.warm()  # build the trigger index now, not in the first turn
    bot = Bot(
        directory=bot_dir,
        system_prompt=load_system_prompt(bot_dir),
        texts=texts,
        tools=tools,
        flows=flows,
        interpreter=interpreter,
        fingerprint=fingerprint(bot_dir),
        handoff=handoff,
        moderator=moderator,
        external_moderation=external_moderation,
    )
    return (None if problems.errors else bot), problems
