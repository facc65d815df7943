"""YAML with line numbers: plain Python values plus the line of every mapping value and list item."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Key: TypeAlias = tuple[str | int, ...]


class YamlError(Exception):
    """A file that is not valid YAML (or uses a construct flows do not allow)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


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


def _build(node: Node, key: Key, lines: dict[Key, int], constructor: SafeConstructor) -> Any:
    lines[key] = node.start_mark.line + 1
    if isinstance(node, ScalarNode):
        return constructor.construct_object(node, deep=True)
    if isinstance(node, SequenceNode):
        return [_build(item, (*key, i), lines, constructor) for i, item in enumerate(node.value)]
    if isinstance(node, MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise YamlError("mapping keys must be plain words", key_node.start_mark.line + 1)
            name = str(constructor.construct_object(key_node))
            if name in out:
                raise YamlError(f"duplicate key {name!r}", key_node.start_mark.line + 1)
            out[name] = _build(value_node, (*key, name), lines, constructor)
            lines[(*key, name)] = key_node.start_mark.line + 1
        return out
    raise YamlError("unsupported YAML node", node.start_mark.line + 1)


def parse(path: Path, text: str) -> Doc:
    """Parse one YAML document, recording lines; raises :class:`YamlError`."""
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
        data = _build(node, (), lines, SafeConstructor())
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise YamlError(str(exc.problem or exc), mark.line + 1 if mark else None) from exc
    return Doc(path, data, lines)
