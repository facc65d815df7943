"""The conversation-test file format (docs/conversation-tests.md), parsed with line numbers for reports.

::

    bot: ../mybot                # optional; relative to this file (default: --bot-dir / KEFU_BOT_DIR)
    merchant: demo               # demo: the bundled demo shop API in process; none: only real tools and stubs
    stubs:                       # replace tools by canned results (a list: one per call, the last repeats)
      track_parcel: {ok: false, error: unavailable}
    conversations:
      - name: 查物流
        user: alice              # optional user id (default: a fresh one per conversation)
        turns:
          - user: 我的快递到哪了
            expect: {source: flow, flow: order_status, reply_contains: 订单号}
          - restart: true        # stop and rebuild the server in the middle of the conversation
          - user: "1234"
            expect:
              tool_called: {name: verify_phone, with: {phone_last4: "1234"}}
              slot: {phone_last4: "1234"}
              flow_ended: completed
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from kefu.content.yamldoc import LineMap, load_yaml

EXPECT_KEYS = frozenset(
    {
        "reply_contains",
        "reply_not_contains",
        "source",
        "flow",
        "flow_ended",
        "slot",
        "tool_called",
        "tool_not_called",
        "handoff",
        "handoff_offered",
        "error",
    }
)


SOURCES = frozenset({"flow", "faq", "kb", "llm", "fallback", "human", "smalltalk", "moderation"})
OUTCOMES = frozenset({"completed", "cancelled", "handoff", "failed"})
# Who owns the conversation after the turn (``handoff: queued``): the ``done`` event's ``handoff.state``.
HANDOFF_STATES = frozenset({"queued", "agent", "bot", "closed"})


class SpecError(ValueError):
    """A test file that cannot be run; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One user message (or a restart) and what must be true after the bot answered it."""

    line: int
    user: str | None = None
    restart: bool = False
    expect: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Conversation:
    """A named conversation of one user."""

    name: str
    line: int
    exchanges: tuple[Exchange, ...]
    user: str | None = None


@dataclass(frozen=True, slots=True)
class TestFile:
    """A parsed test file."""

    path: Path
    bot_dir: Path | None
    merchant: Literal["demo", "none"]
    stubs: dict[str, list[dict[str, Any]]]
    conversations: tuple[Conversation, ...]


def _with_lines(value: Any) -> Any:
    """Mappings with text keys and their line under the key ``__line__``."""
    if isinstance(value, LineMap):
        out = {str(k): _with_lines(v) for k, v in value.items()}
        out["__line__"] = value.line
        return out
    if isinstance(value, list):
        return [_with_lines(v) for v in value]
    return value


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _fail(path: Path, line: int | None, message: str) -> SpecError:
    return SpecError(f"{path}:{line}: {message}" if line else f"{path}: {message}")


def _exchange(path: Path, raw: Any, fallback: int) -> Exchange:
    if not isinstance(raw, dict):
        raise _fail(path, fallback, "a turn must be a mapping with 'user' (and 'expect') or 'restart: true'")
    line = raw.get("__line__", fallback)
    unknown = set(raw) - {"user", "restart", "expect", "__line__"}
    if unknown:
        raise _fail(path, line, f"unknown turn key(s) {sorted(unknown)}: use user, expect, restart")
    if raw.get("restart"):
        if "user" in raw or "expect" in raw:
            raise _fail(path, line, "'restart: true' is a turn of its own (put the message in the next turn)")
        return Exchange(line=line, restart=True)
    user = raw.get("user")
    if user is None:
        raise _fail(path, line, "a turn needs 'user: <message>' or 'restart: true'")
    expect = raw.get("expect") or {}
    if not isinstance(expect, dict):
        raise _fail(path, line, "'expect' must be a mapping")
    bad = set(expect) - EXPECT_KEYS - {"__line__"}
    if bad:
        raise _fail(path, line, f"unknown expectation(s) {sorted(bad)}; known: {', '.join(sorted(EXPECT_KEYS))}")
    expect = _strip(expect)
    problem = _check_expect(expect)
    if problem:
        raise _fail(path, line, problem)
    return Exchange(line=line, user=str(user), expect=expect)


def _texts(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values)


def _tool_spec(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return (
        isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and set(value) <= {"name", "with"}
        and isinstance(value.get("with", {}), dict)
    )


def _check_expect(e: dict[str, Any]) -> str | None:
    """What is wrong with the values of an ``expect`` mapping (its keys are already known), or None."""
    for key in ("reply_contains", "reply_not_contains"):
        if key in e and not _texts(e[key]):
            return f"'{key}' must be a string or a list of strings"
    if "source" in e and e["source"] not in SOURCES:
        return f"'source' must be one of {', '.join(sorted(SOURCES))}"
    if "flow" in e and not isinstance(e["flow"], str):
        return "'flow' must be a flow name"
    if "flow_ended" in e and e["flow_ended"] is not True and e["flow_ended"] not in OUTCOMES:
        return f"'flow_ended' must be true or one of {', '.join(sorted(OUTCOMES))}"
    if "slot" in e and (not isinstance(e["slot"], dict) or not e["slot"]):
        return "'slot' must be a mapping of slot names to values"
    if "tool_called" in e:
        calls = e["tool_called"] if isinstance(e["tool_called"], list) else [e["tool_called"]]
        if not calls or not all(_tool_spec(c) for c in calls):
            return "'tool_called' must be a tool name, {name: ..., with: {...}}, or a list of them"
    if "tool_not_called" in e:
        names = e["tool_not_called"] if isinstance(e["tool_not_called"], list) else [e["tool_not_called"]]
        if not names or not all(isinstance(n, str) for n in names):
            return "'tool_not_called' must be a tool name or a list of them"
    if "handoff" in e and not (isinstance(e["handoff"], bool) or e["handoff"] in HANDOFF_STATES):
        return f"'handoff' must be true, false or a state ({', '.join(sorted(HANDOFF_STATES))})"
    if "handoff_offered" in e and not isinstance(e["handoff_offered"], bool):
        return "'handoff_offered' must be true or false"
    if "error" in e and not isinstance(e["error"], str):
        return "'error' must be an error code"
    return None


def parse(path: Path) -> TestFile:
    """Read and check a test file; :class:`SpecError` names the first problem with its line."""
    try:
        data = _with_lines(load_yaml(path.read_text(encoding="utf-8"), allow_recursion=False))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise _fail(path, mark.line + 1 if mark else None, f"not valid YAML: {exc}") from exc
    except OSError as exc:
        raise _fail(path, None, f"cannot read: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("conversations"), list):
        raise _fail(path, None, "expected a mapping with a 'conversations' list")
    bot = data.get("bot")
    merchant = data.get("merchant", "demo")
    if merchant not in ("demo", "none"):
        raise _fail(path, data.get("__line__"), "merchant must be 'demo' or 'none'")
    stubs: dict[str, list[dict[str, Any]]] = {}
    raw_stubs = data.get("stubs") or {}
    if not isinstance(raw_stubs, dict):
        raise _fail(path, data.get("__line__"), "'stubs' must map tool names to results")
    for name, value in _strip(raw_stubs).items():
        results = value if isinstance(value, list) else [value]
        if not results or not all(isinstance(r, dict) for r in results):
            raise _fail(path, raw_stubs.get("__line__"), f"stub {name!r} must be a result mapping or a list of them")
        stubs[str(name)] = results
    unknown = set(data) - {"bot", "merchant", "stubs", "conversations", "__line__"}
    if unknown:
        raise _fail(
            path, data.get("__line__"), f"unknown key(s) {sorted(unknown)}: use bot, merchant, stubs, conversations"
        )
    conversations = []
    for index, raw in enumerate(data["conversations"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("turns"), list) or not raw["turns"]:
            raise _fail(path, getattr(raw, "get", lambda *_: None)("__line__"), "a conversation needs 'turns'")
        line = raw.get("__line__", 0)
        extra = set(raw) - {"name", "user", "turns", "__line__"}
        if extra:
            raise _fail(path, line, f"unknown conversation key(s) {sorted(extra)}: use name, user, turns")
        exchanges = tuple(_exchange(path, t, line) for t in raw["turns"])
        conversations.append(
            Conversation(
                name=str(raw.get("name") or f"conversation {index + 1}"),
                line=line,
                exchanges=exchanges,
                user=str(raw["user"]) if raw.get("user") is not None else None,
            )
        )
    return TestFile(
        path=path,
        bot_dir=(path.parent / bot).resolve() if bot else None,
        merchant=merchant,
        stubs=stubs,
        conversations=tuple(conversations),
    )
