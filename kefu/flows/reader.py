"""Reading a flow file's YAML into model objects, checking its shape; problems carry the file's lines."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kefu.content.problems import Problems
from kefu.content.yamldoc import Doc, Key
from kefu.flows.model import OPS, SLOT_TYPES, STEP_KINDS, Condition, Option, Rule, SlotSpec, Step
from kefu.flows.texts import Text

NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
TOP_KEYS = frozenset({"name", "description", "label", "triggers", "slots", "steps", "interrupts"})
SLOT_KEYS = frozenset(
    {"type", "prompt", "reprompt", "description", "pattern", "min", "max", "integer", "options"}
    | {"min_length", "max_length", "max_attempts", "aliases"}
)
STEP_KEYS: dict[str, frozenset[str]] = {
    "collect": frozenset(),
    "call": frozenset({"args", "save_as", "confirm"}),
    "branch": frozenset({"else"}),
    "say": frozenset(),
    "set": frozenset(),
    "confirm": frozenset(),
    "reask": frozenset({"text"}),
    "handoff": frozenset(),
    "end": frozenset({"offer_human"}),
}


class Reader:
    """Reads one document into model objects, reporting problems against the document's lines."""

    def __init__(self, doc: Doc, problems: Problems) -> None:
        self.doc = doc
        self.problems = problems
        self.failed = False

    def error(self, key: Key, message: str) -> None:
        self.failed = True
        self.problems.error(self.doc.path, message, self.doc.line(key))

    def warning(self, key: Key, message: str) -> None:
        self.problems.warning(self.doc.path, message, self.doc.line(key))

    def text(self, key: Key, value: Any) -> Text | None:
        if isinstance(value, str) and value.strip():
            return Text(value)
        if isinstance(value, dict):
            unknown = set(value) - {"zh", "en"}
            if unknown:
                self.error(key, f"unknown language(s) {', '.join(sorted(unknown))}: a text has 'zh' and 'en'")
            zh, en = value.get("zh"), value.get("en")
            if not isinstance(zh, str) or not zh.strip():
                self.error(key, "text is missing its Chinese version ('zh')")
                return None
            if en is not None and not isinstance(en, str):
                self.error((*key, "en"), "'en' must be a string")
                return None
            return Text(zh, en or None)
        self.error(key, "expected a text: a string, or {zh: ..., en: ...}")
        return None

    def strings(self, key: Key, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.error(key, "expected a list of strings")
            return ()
        return tuple(value)

    def number(self, key: Key, value: Any, *, whole: bool = False) -> Any:
        ok = isinstance(value, int) if whole else isinstance(value, int | float)
        if value is not None and (isinstance(value, bool) or not ok):
            self.error(key, "expected a whole number" if whole else "expected a number")
            return None
        return value

    # --- slots ---------------------------------------------------------------------------------------------
    def slot(self, name: str, raw: Any) -> SlotSpec | None:
        key: Key = ("slots", name)
        if not NAME.match(name):
            self.error(key, f"slot name {name!r} must be lower-case letters, digits and _")
        if not isinstance(raw, dict):
            self.error(key, "a slot is a mapping with at least 'type' and 'prompt'")
            return None
        for extra in sorted(set(raw) - SLOT_KEYS):
            self.error((*key, extra), f"unknown slot key {extra!r}")
        kind = raw.get("type")
        if kind not in SLOT_TYPES:
            self.error((*key, "type"), f"slot type must be one of {', '.join(SLOT_TYPES)} (got {kind!r})")
            return None
        prompt = self.text((*key, "prompt"), raw.get("prompt"))
        reprompt = self.text((*key, "reprompt"), raw["reprompt"]) if "reprompt" in raw else None
        pattern = raw.get("pattern")
        if pattern is not None:
            if kind != "order_id" or not isinstance(pattern, str):
                self.error((*key, "pattern"), "'pattern' is a regular expression, for order_id slots")
                pattern = None
            else:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    self.error((*key, "pattern"), f"invalid regular expression: {exc}")
        options = self.options(key, raw.get("options")) if kind == "choice" else ()
        if kind != "choice" and "options" in raw:
            self.error((*key, "options"), "'options' is for choice slots")
        attempts = self.number((*key, "max_attempts"), raw.get("max_attempts", 3), whole=True)
        if attempts is not None and attempts < 1:
            self.error((*key, "max_attempts"), "max_attempts must be at least 1")
        if prompt is None:
            return None
        return SlotSpec(
            name=name,
            type=kind,
            prompt=prompt,
            reprompt=reprompt,
            description=str(raw.get("description") or ""),
            pattern=pattern,
            minimum=self.number((*key, "min"), raw.get("min")),
            maximum=self.number((*key, "max"), raw.get("max")),
            integer=bool(raw.get("integer", False)),
            options=options,
            min_length=self.number((*key, "min_length"), raw.get("min_length"), whole=True),
            max_length=self.number((*key, "max_length"), raw.get("max_length"), whole=True),
            max_attempts=attempts or 3,
            aliases=self.strings((*key, "aliases"), raw.get("aliases")),
            line=self.doc.line(key),
        )

    def options(self, key: Key, raw: Any) -> tuple[Option, ...]:
        if not isinstance(raw, list) or not raw:
            self.error((*key, "options"), "a choice slot needs a non-empty list of options")
            return ()
        out = []
        for i, item in enumerate(raw):
            at: Key = (*key, "options", i)
            if isinstance(item, str):
                out.append(Option(item, Text(item)))
                continue
            if not isinstance(item, dict) or not isinstance(item.get("value"), str):
                self.error(at, "an option is a string or {value: ..., label: {zh, en}, synonyms: [...]}")
                continue
            label = self.text((*at, "label"), item["label"]) if "label" in item else Text(item["value"])
            synonyms = self.strings((*at, "synonyms"), item.get("synonyms"))
            if label is not None:
                out.append(Option(item["value"], label, synonyms))
        return tuple(out)

    # --- steps ---------------------------------------------------------------------------------------------
    def step(self, i: int, raw: Any) -> Step | None:
        key: Key = ("steps", i)
        if not isinstance(raw, dict):
            self.error(key, "a step is a mapping like {collect: order_id} or {say: ...}")
            return None
        kinds = [k for k in raw if k in STEP_KINDS and not (k == "confirm" and "call" in raw)]
        if len(kinds) != 1:
            found = ", ".join(sorted(set(raw) - {"label", "goto"})) or "nothing"
            self.error(key, f"a step needs exactly one kind of {', '.join(STEP_KINDS)} (found {found})")
            return None
        kind = kinds[0]
        for extra in sorted(set(raw) - {kind, "label", "goto"} - STEP_KEYS[kind]):
            self.error((*key, extra), f"unknown key {extra!r} in a {kind} step")
        value = raw[kind]
        at: Key = (*key, kind)
        fields: dict[str, Any] = {}
        for name in ("label", "goto"):
            if name in raw and not (isinstance(raw[name], str) and raw[name]):
                self.error((*key, name), f"'{name}' must be a label name")
            elif name in raw:
                fields[name] = raw[name]
        handlers: dict[str, Callable[[Key, Any, dict[str, Any]], dict[str, Any] | None]] = {
            "collect": self._name_step("slot"),
            "reask": self._name_step("slot"),
            "call": self._call,
            "branch": self._branch,
            "say": self._text_step,
            "confirm": self._text_step,
            "end": self._text_step,
            "set": self._set,
            "handoff": self._handoff,
        }
        parsed = handlers[kind](at, value, raw)
        if parsed is None:
            return None
        return Step(kind=kind, line=self.doc.line(key), **fields, **parsed)

    def _name_step(self, field: str) -> Callable[[Key, Any, dict[str, Any]], dict[str, Any] | None]:
        def read(at: Key, value: Any, raw: dict[str, Any]) -> dict[str, Any] | None:
            if not isinstance(value, str):
                self.error(at, "expected a slot name")
                return None
            text = self.text((*at[:-1], "text"), raw["text"]) if "text" in raw else None
            return {field: value, "text": text}

        return read

    def _text_step(self, at: Key, value: Any, raw: dict[str, Any]) -> dict[str, Any] | None:
        text = self.text(at, value)
        if text is None:
            return None
        if "offer_human" not in raw:
            return {"text": text}
        if not isinstance(raw["offer_human"], bool):
            self.error((*at[:-1], "offer_human"), "'offer_human' is true or false")
        return {"text": text, "offer_human": raw["offer_human"] is True}

    def _call(self, at: Key, value: Any, raw: dict[str, Any]) -> dict[str, Any] | None:
        if not isinstance(value, str):
            self.error(at, "expected a tool name")
            return None
        args = raw.get("args", {})
        if not isinstance(args, dict):
            self.error((*at[:-1], "args"), "'args' is a mapping of argument name → value or template")
            args = {}
        save_as = raw.get("save_as")
        if save_as is not None and not (isinstance(save_as, str) and NAME.match(save_as)):
            self.error((*at[:-1], "save_as"), "'save_as' must be lower-case letters, digits and _")
            save_as = None
        confirm = self.text((*at[:-1], "confirm"), raw["confirm"]) if "confirm" in raw else None
        return {"tool": value, "args": args, "save_as": save_as, "text": confirm}

    def _branch(self, at: Key, value: Any, raw: dict[str, Any]) -> dict[str, Any] | None:
        if not isinstance(value, list) or not value:
            self.error(at, "a branch is a list of {when: <condition>, goto: <label>}")
            return None
        rules = []
        for i, arm in enumerate(value):
            arm_at: Key = (*at, i)
            if not isinstance(arm, dict) or set(arm) != {"when", "goto"} or not isinstance(arm["goto"], str):
                self.error(arm_at, "a branch arm is {when: <condition>, goto: <label>}")
                continue
            condition = self.condition((*arm_at, "when"), arm["when"])
            if condition is not None:
                rules.append(Rule(condition, arm["goto"]))
        otherwise = raw.get("else")
        if otherwise is not None and not isinstance(otherwise, str):
            self.error((*at[:-1], "else"), "'else' must be a label name")
            otherwise = None
        return {"rules": tuple(rules), "otherwise": otherwise}

    def condition(self, at: Key, raw: Any) -> Condition | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("var"), str):
            self.error(at, "a condition is {var: <path>, equals|not_equals|in|exists: <value>}")
            return None
        ops = [k for k in raw if k != "var"]
        if len(ops) != 1 or ops[0] not in OPS:
            self.error(at, f"a condition needs exactly one of {', '.join(OPS)} next to 'var'")
            return None
        op, value = ops[0], raw[ops[0]]
        if op == "in" and not isinstance(value, list):
            self.error((*at, "in"), "'in' takes a list of values")
            return None
        if op == "exists" and not isinstance(value, bool):
            self.error((*at, "exists"), "'exists' takes true or false")
            return None
        return Condition(raw["var"], op, value)

    def _set(self, at: Key, value: Any, raw: dict[str, Any]) -> dict[str, Any] | None:
        if not isinstance(value, dict) or not value:
            self.error(at, "'set' is a mapping of slot name → value or template")
            return None
        return {"values": value}

    def _handoff(self, at: Key, value: Any, raw: dict[str, Any]) -> dict[str, Any] | None:
        if isinstance(value, str):
            return {"reason": value, "text": None}
        if not isinstance(value, dict) or not isinstance(value.get("reason"), str):
            self.error(at, "'handoff' is {reason: <why>, text: <what the bot says>}")
            return None
        for extra in sorted(set(value) - {"reason", "text"}):
            self.error((*at, extra), f"unknown key {extra!r} in handoff")
        text = self.text((*at, "text"), value["text"]) if "text" in value else None
        return {"reason": value["reason"], "text": text}
