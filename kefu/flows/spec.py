"""Loading flow files (``<bot>/flows/*.yaml``): shape checks in :mod:`kefu.flows.reader`, cross-reference
checks in :mod:`kefu.flows.checks`; every problem is reported with file and line and the file is skipped, the rest load.

The file format is documented in docs/flows.md (one flow per file).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from kefu.content.problems import Problems
from kefu.content.yamldoc import Doc, YamlError, parse
from kefu.flows.checks import check_flow
from kefu.flows.model import DEFAULT_THRESHOLD, Flow, FlowSet, SlotSpec, Step
from kefu.flows.reader import NAME, TOP_KEYS, Reader
from kefu.text.lexicon import Lexicon, load_lexicon
from kefu.tools.base import Risk

__all__ = ["FlowSet", "load_flow_file", "load_flows", "read_flow"]


def _fingerprint(slots: Mapping[str, SlotSpec], steps: tuple[Step, ...]) -> str:
    """A digest of what a running flow's position depends on (texts excluded: rewording keeps the place)."""
    shape = {
        "slots": [
            [s.name, s.type, s.pattern, s.minimum, s.maximum, s.integer, [o.value for o in s.options]]
            for s in slots.values()
        ],
        "steps": [
            [s.kind, s.label, s.goto, s.slot, s.tool, s.args, s.save_as, s.otherwise, dict(s.values)]
            + [[r.when.var, r.when.op, r.when.value, r.goto] for r in s.rules]
            for s in steps
        ],
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_flow(doc: Doc, problems: Problems, tools: Mapping[str, Risk]) -> Flow | None:
    """One parsed document → a :class:`Flow`, or None (with problems reported) when anything is wrong."""
    reader = Reader(doc, problems)
    data = doc.data
    if not isinstance(data, dict):
        reader.error((), "a flow file is a mapping with name, description, triggers, slots and steps")
        return None
    for extra in sorted(set(data) - TOP_KEYS):
        reader.error((extra,), f"unknown key {extra!r} (expected {', '.join(sorted(TOP_KEYS))})")
    name = data.get("name", doc.path.stem)
    if not isinstance(name, str) or not NAME.match(name):
        reader.error(("name",), "flow name must be lower-case letters, digits and _ (at most 48), starting a-z")
        name = ""
    description = reader.text(("description",), data.get("description"))
    label = reader.text(("label",), data["label"]) if "label" in data else None
    triggers = data.get("triggers") or {}
    if not isinstance(triggers, dict) or set(triggers) - {"examples", "keywords", "exclude"}:
        reader.error(("triggers",), "'triggers' is {examples: [...], keywords: [...], exclude: [...]}")
        triggers = {}
    examples = reader.strings(("triggers", "examples"), triggers.get("examples"))
    keywords = reader.strings(("triggers", "keywords"), triggers.get("keywords"))
    exclude = reader.strings(("triggers", "exclude"), triggers.get("exclude"))
    if not examples and not keywords:
        reader.warning(("triggers",), "no trigger examples or keywords: the flow only starts by name")
    interrupts = data.get("interrupts", False)
    if not isinstance(interrupts, bool):
        reader.error(("interrupts",), "'interrupts' is true or false")
        interrupts = False
    raw_slots = data.get("slots") or {}
    if not isinstance(raw_slots, dict):
        reader.error(("slots",), "'slots' is a mapping of slot name → definition")
        raw_slots = {}
    slots = {n: s for n, s in ((n, reader.slot(str(n), raw)) for n, raw in raw_slots.items()) if s is not None}
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        reader.error(("steps",), "a flow needs a non-empty list of steps")
        raw_steps = []
    steps = tuple(s for s in (reader.step(i, raw) for i, raw in enumerate(raw_steps)) if s is not None)
    if reader.failed or description is None:
        return None
    labels = {s.label: i for i, s in enumerate(steps) if s.label}
    flow = Flow(
        name=name,
        description=description,
        examples=examples,
        keywords=keywords,
        exclude=exclude,
        slots=slots,
        steps=steps,
        labels=labels,
        risks={s.tool: tools[s.tool] for s in steps if s.tool is not None and s.tool in tools},
        fingerprint=_fingerprint(slots, steps),
        file=doc.path,
        line=doc.line(("name",)) if "name" in data else None,
        label=label,
        interrupts=interrupts,
    )
    return flow if check_flow(flow, doc, problems, tools) else None


def load_flow_file(path: Path, problems: Problems, tools: Mapping[str, Risk]) -> Flow | None:
    """Read and check one flow file."""
    try:
        doc = parse(path, path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        problems.error(path, f"cannot read: {exc}")
        return None
    except YamlError as exc:
        problems.error(path, f"invalid YAML: {exc}", exc.line)
        return None
    return read_flow(doc, problems, tools)


def load_flows(
    bot_dir: Path,
    problems: Problems,
    tools: Mapping[str, Risk],
    *,
    lexicon: Lexicon | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> FlowSet:
    """Every flow in ``bot_dir/flows`` that passes its checks. ``tools`` names the tools the bot has and their
    risk; ``lexicon`` defaults to the bot's knowledge-base lexicon (``bot_dir/kb``) so routing reads text the
    way FAQ search does."""
    flows: dict[str, Flow] = {}
    folder = bot_dir / "flows"
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []
    for path in files:
        flow = load_flow_file(path, problems, tools)
        if flow is None:
            continue
        if flow.name in flows:
            first = flows[flow.name].file
            problems.error(path, f"duplicate flow name {flow.name!r} (also defined in {first})", flow.line)
            continue
        flows[flow.name] = flow
    return FlowSet(flows, lexicon if lexicon is not None else load_lexicon(bot_dir / "kb"), threshold)
