"""YAML with line numbers: the one reader of bot files (tools, flows, conversation tests), so every problem is
reported as ``file:line``.

:func:`load_yaml` reads a document as ``yaml.safe_load`` does, except that mappings come back as :class:`LineMap`
and sequences as :class:`LineList`, which remember where they and each of their keys / items start (1-based).
Errors are ``yaml.YAMLError`` (:func:`error_line` finds their line).

:func:`parse` is the stricter reading flow files get: keys are plain words (text), a key given twice is an
error, merge keys (``<<``) are not expanded, and the result is a :class:`Doc` of plain values plus the line of
every path of keys and indexes. Errors are :class:`YamlError`.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Key: TypeAlias = tuple[str | int, ...]

_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class YamlError(Exception):
    """A file that is not valid YAML (or uses a construct :func:`parse` does not allow)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


class LineMap(dict[Any, Any]):
    """A YAML mapping that remembers where it (``line``) and each of its keys (``key_lines``) start (1-based).

    ``key_lines`` is keyed by the key as written (``404``, ``yes``); the first of repeated keys counts."""

    def __init__(self) -> None:
        super().__init__()
        self.line = 0
        self.key_lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        """The line of ``key``, or of the mapping when the key is absent."""
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A YAML sequence that remembers where it (``line``) and each of its items (``item_lines``) start (1-based)."""

    def __init__(self) -> None:
        super().__init__()
        self.line = 0
        self.item_lines: list[int] = []


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _Builder:
    """Turns a composed YAML node tree into :class:`LineMap` / :class:`LineList` / scalars.

    Loose (``strict=False``): ``yaml.safe_load`` semantics — merge keys, the last of repeated keys wins, keys of
    any hashable type, tagged collections built by PyYAML, anchors shared (a collection that contains itself is
    an error unless ``allow_recursion``). Strict: see :func:`parse`."""

    def __init__(self, *, strict: bool, allow_recursion: bool = True) -> None:
        self.strict = strict
        self.allow_recursion = allow_recursion
        self.constructor = SafeConstructor()
        self.built: dict[int, Any] = {}
        self.building: set[int] = set()

    def build(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            return self.constructor.construct_object(node, deep=True)
        if not self.strict:
            if id(node) in self.built:  # an alias: the same object, as PyYAML does
                if id(node) in self.building and not self.allow_recursion:
                    raise ConstructorError(None, None, "found unconstructable recursive node", node.start_mark)
                return self.built[id(node)]
            if node.tag not in (_MAP, _SEQ):  # !!set, !!omap, …: whatever PyYAML makes of them
                return self.constructor.construct_object(node, deep=True)
        if isinstance(node, SequenceNode):
            items = LineList()
            items.line = _line(node)
            self.built[id(node)] = items
            self.building.add(id(node))
            for item in node.value:
                items.item_lines.append(_line(item))
                items.append(self.build(item))
            self.building.discard(id(node))
            return items
        if isinstance(node, MappingNode):
            self.building.add(id(node))
            mapping = self._mapping(node)
            self.building.discard(id(node))
            return mapping
        raise YamlError("unsupported YAML node", _line(node))

    def _mapping(self, node: MappingNode) -> LineMap:
        out = LineMap()
        out.line = _line(node)
        self.built[id(node)] = out
        if not self.strict:
            self.constructor.flatten_mapping(node)
        for key_node, value_node in node.value:
            if self.strict:
                if not isinstance(key_node, ScalarNode):
                    raise YamlError("mapping keys must be plain words", _line(key_node))
                key: Any = str(self.constructor.construct_object(key_node))
                if key in out:
                    raise YamlError(f"duplicate key {key!r}", _line(key_node))
                out.key_lines[key] = _line(key_node)
            else:
                key = self.constructor.construct_object(key_node, deep=True)
                if not isinstance(key, Hashable):
                    raise ConstructorError(
                        "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark
                    )
                if isinstance(key_node, ScalarNode):
                    out.key_lines.setdefault(str(key_node.value), _line(key_node))
            out[key] = self.build(value_node)
        return out


def load_yaml(text: str, *, allow_recursion: bool = True) -> Any:
    """Parse one YAML document; mappings come back as :class:`LineMap`, sequences as :class:`LineList`.
    Raises ``yaml.YAMLError`` (also for a collection that contains itself, unless ``allow_recursion``)."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    return None if node is None else _Builder(strict=False, allow_recursion=allow_recursion).build(node)


def error_line(exc: yaml.YAMLError) -> int | None:
    """The 1-based line a YAML syntax error points at, when it says."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else None


@dataclass(slots=True)
class Doc:
    """A parsed YAML document: ``data`` and ``lines`` (path of keys/indexes → 1-based line)."""

    path: Path
    data: Any
    lines: dict[Key, int] = field(default_factory=dict)

    def line(self, key: Key) -> int | None:
        """The line of ``key``, or of its nearest ancestor that has one."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)


def _plain(value: Any, key: Key, line: int, lines: dict[Key, int]) -> Any:
    """``value`` as plain dicts and lists, recording the line of ``key`` and of everything below it."""
    lines[key] = line
    if isinstance(value, LineMap):
        return {name: _plain(child, (*key, name), value.key_lines[name], lines) for name, child in value.items()}
    if isinstance(value, LineList):
        return [_plain(child, (*key, i), value.item_lines[i], lines) for i, child in enumerate(value)]
    return value


def parse(path: Path, text: str) -> Doc:
    """Parse one YAML document strictly, recording lines; raises :class:`YamlError`.

    The line of a mapping value is the line of its key; of a list item, where the item starts."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(str(exc.problem or exc), mark.line + 1 if mark else None) from exc
    except yaml.YAMLError as exc:
        raise YamlError(str(exc), None) from exc
    lines: dict[Key, int] = {}
    if node is None:
        return Doc(path, None, lines)
    try:
        tree = _Builder(strict=True).build(node)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise YamlError(str(exc.problem or exc), mark.line + 1 if mark else None) from exc
    return Doc(path, _plain(tree, (), _line(node), lines), lines)
