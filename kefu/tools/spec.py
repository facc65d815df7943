"""Tool definitions: ``<bot dir>/tools/*.yaml`` read and checked, with problems reported as ``file:line``.

A file holds one tool (a mapping) or several (a list under ``tools:``). The format is in ``docs/tools.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from kefu.content.problems import Problems
from kefu.content.yamldoc import LineMap, error_line, load_yaml
from kefu.tools.base import Risk
from kefu.tools.template import env_refs, param_refs, refs, walk_strings

Kind: TypeAlias = Literal["http", "python"]
BindSource: TypeAlias = Literal["user.id", "session.id"]

BIND_SOURCES: frozenset[str] = frozenset({"user.id", "session.id"})
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
DEFAULT_TIMEOUT = 5.0
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
# Header/query names that carry credentials: their values must come from the environment.
_SECRET_NAME = re.compile(r"authorization|token|key|secret|password|cookie", re.IGNORECASE)
_COMMON_KEYS = {"name", "description", "kind", "risk", "parameters", "bind", "timeout", "retries"}
_HTTP_KEYS = {"method", "url", "headers", "query", "body", "response"}
_PYTHON_KEYS = {"function"}


@dataclass(frozen=True, slots=True)
class ResponseSpec:
    """How a response becomes a :class:`~kefu.tools.base.ToolResult`: ``data`` is a dotted path into the JSON
    body (None = the whole body); ``errors`` maps an HTTP status to an error code template."""

    data: str | None = None
    errors: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolDef:
    """One checked tool definition."""

    name: str
    risk: Risk
    description: str = ""
    kind: Kind = "http"
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    bind: Mapping[str, BindSource] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    retries: int = 0
    method: str = "GET"
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: Any = None  # None: the default body (POST/PUT/PATCH send the arguments not used in the URL or query)
    response: ResponseSpec = field(default_factory=ResponseSpec)
    function: str | None = None
    source: Path | None = None
    line: int | None = None

    @property
    def env_names(self) -> frozenset[str]:
        """Environment variables the tool needs."""
        return frozenset(env_refs([self.url, dict(self.headers), dict(self.query), self.body]))

    @property
    def url_params(self) -> frozenset[str]:
        """Arguments used in the URL or the query (left out of the default body)."""
        return frozenset(param_refs([self.url, dict(self.query)]))

    @property
    def declared(self) -> frozenset[str]:
        """Argument names the tool accepts: its schema's properties and its bound parameters."""
        return frozenset(self.parameters.get("properties", {})) | frozenset(self.bind)


def tool_files(bot_dir: Path) -> list[Path]:
    """The tool files of a bot, in a stable order."""
    folder = bot_dir / "tools"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))


def load_tool_defs(bot_dir: Path, problems: Problems, env: Mapping[str, str]) -> list[ToolDef]:
    """Read every tool file; bad tools are reported to ``problems`` and left out."""
    tools: list[ToolDef] = []
    seen: dict[str, ToolDef] = {}
    for path in tool_files(bot_dir):
        for tool in _load_file(path, problems):
            if tool.name in seen:
                first = seen[tool.name]
                problems.error(path, f"tool {tool.name!r} is already defined in {first.source}:{first.line}", tool.line)
                continue
            seen[tool.name] = tool
            tools.append(tool)
    unset: dict[str, list[ToolDef]] = {}
    for tool in tools:
        for name in sorted(tool.env_names):
            if not env.get(name):
                unset.setdefault(name, []).append(tool)
    for name, users in unset.items():  # one warning per variable, at the first tool that needs it
        assert users[0].source is not None
        names = ", ".join(t.name for t in users)
        problems.warning(users[0].source, f"{name} is not set: calls to {names} fail until it is", users[0].line)
    return tools


def _load_file(path: Path, problems: Problems) -> list[ToolDef]:
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        problems.error(path, f"not valid YAML: {getattr(exc, 'problem', None) or exc}", error_line(exc))
        return []
    except (OSError, UnicodeDecodeError) as exc:
        problems.error(path, f"cannot read: {exc}")
        return []
    if doc is None:
        problems.warning(path, "empty tool file")
        return []
    items: Any = doc.get("tools") if isinstance(doc, LineMap) and "tools" in doc else doc
    if isinstance(items, LineMap):
        items = [items]
    if not isinstance(items, list):
        line = doc.line_of("tools") if isinstance(doc, LineMap) else None
        problems.error(path, "expected a tool (a mapping) or a list of tools under 'tools:'", line)
        return []
    tools = []
    for item in items:
        if not isinstance(item, LineMap):
            problems.error(path, "each tool must be a mapping", doc.line if isinstance(doc, LineMap) else None)
            continue
        tool = _ToolReader(path, item, problems).read()
        if tool is not None:
            tools.append(tool)
    return tools


class _ToolReader:
    """Checks one tool mapping, reporting every problem it finds before giving up."""

    def __init__(self, path: Path, raw: LineMap, problems: Problems) -> None:
        self.path, self.raw, self.problems = path, raw, problems
        self.ok = True

    def error(self, message: str, key: str | None = None, node: Any = None) -> None:
        line = node.line if isinstance(node, LineMap) else self.raw.line_of(key) if key else self.raw.line
        self.problems.error(self.path, message, line)
        self.ok = False

    def read(self) -> ToolDef | None:
        raw = self.raw
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            self.error("'name' is required: letters, digits, '_' or '-' (at most 64)", "name")
            name = "?"
        where = f"tool {name!r}"
        kind = raw.get("kind", "http")
        if kind not in ("http", "python"):
            self.error(f"{where}: 'kind' must be http or python, not {kind!r}", "kind")
            kind = "http"
        for key in sorted(set(map(str, raw)) - _COMMON_KEYS - (_HTTP_KEYS if kind == "http" else _PYTHON_KEYS)):
            self.problems.warning(self.path, f"{where}: unknown key {key!r} is ignored", raw.line_of(key))
        risk = raw.get("risk")
        if risk not in ("read", "write"):
            self.error(f"{where}: 'risk' is required: read or write", "risk")
            risk = "read"
        description = raw.get("description", "")
        if not isinstance(description, str) or not description.strip():
            self.problems.warning(self.path, f"{where}: no 'description' (the model reads it)", raw.line)
            description = ""
        parameters = self._parameters(where)
        bind = self._bind(where)
        timeout = raw.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            self.error(f"{where}: 'timeout' must be a positive number of seconds", "timeout")
            timeout = DEFAULT_TIMEOUT
        retries = raw.get("retries", 1 if risk == "read" else 0)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            self.error(f"{where}: 'retries' must be a whole number >= 0", "retries")
            retries = 0
        elif risk == "write" and retries > 0:
            self.error(f"{where}: a write is never retried automatically; remove 'retries'", "retries")
        common: dict[str, Any] = {
            "name": name,
            "risk": risk,
            "description": description.strip(),
            "kind": kind,
            "parameters": parameters,
            "bind": bind,
            "timeout": float(timeout),
            "retries": retries if risk == "read" else 0,
            "source": self.path,
            "line": raw.line,
        }
        tool = self._python(where, common) if kind == "python" else self._http(where, common)
        return tool if self.ok else None

    def _parameters(self, where: str) -> dict[str, Any]:
        params = self.raw.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict) or params.get("type", "object") != "object":
            self.error(f"{where}: 'parameters' must be a JSON schema of type object", "parameters")
            return {"type": "object", "properties": {}}
        params = _plain(params)
        params.setdefault("type", "object")
        params.setdefault("properties", {})
        try:
            Draft202012Validator.check_schema(params)
        except SchemaError as exc:
            self.error(f"{where}: 'parameters' is not a valid JSON schema: {exc.message}", "parameters")
            return {"type": "object", "properties": {}}
        return dict(params)

    def _bind(self, where: str) -> dict[str, BindSource]:
        bind = self.raw.get("bind", LineMap())
        if not isinstance(bind, LineMap):
            self.error(f"{where}: 'bind' maps a parameter to user.id or session.id", "bind")
            return {}
        out: dict[str, BindSource] = {}
        for param, source in bind.items():
            if source not in BIND_SOURCES:
                line = bind.line_of(str(param))
                self.problems.error(self.path, f"{where}: bind {param}: must be user.id or session.id", line)
                self.ok = False
            else:
                out[str(param)] = source
        return out

    def _python(self, where: str, common: dict[str, Any]) -> ToolDef:
        function = self.raw.get("function")
        if not isinstance(function, str) or not re.fullmatch(r"[\w.]+:[\w.]+", function):
            self.error(f"{where}: 'function' is required for a python tool: 'package.module:function'", "function")
            function = None
        return ToolDef(**common, function=function)

    def _http(self, where: str, common: dict[str, Any]) -> ToolDef:
        raw = self.raw
        method = str(raw.get("method", "GET")).upper()
        if method not in METHODS:
            self.error(f"{where}: 'method' must be one of {', '.join(sorted(METHODS))}", "method")
        url = raw.get("url")
        if not isinstance(url, str) or not url:
            self.error(f"{where}: 'url' is required for an http tool", "url")
            url = ""
        headers = self._templates(where, "headers")
        query = self._templates(where, "query")
        body = _plain(raw["body"]) if "body" in raw else None
        response = self._response(where)
        raw_bind = raw.get("bind")
        bound = set(map(str, raw_bind)) if isinstance(raw_bind, dict) else set()  # a bad bind is reported once
        known = set(common["parameters"].get("properties", {})) | bound
        for key, value in (("url", url), ("headers", headers), ("query", query), ("body", body)):
            for ref in sorted(param_refs(value) - known):
                self.error(f"{where}: {{{ref}}} is not a parameter (declare it under 'parameters' or 'bind')", key)
            for ref in (r for s in walk_strings(value) for r in refs(s)):
                if "." in ref and not ref.startswith("env."):
                    self.error(f"{where}: unknown reference {{{ref}}} (use {{param}} or {{env.NAME}})", key)
        return ToolDef(**common, method=method, url=url, headers=headers, query=query, body=body, response=response)

    def _templates(self, where: str, key: str) -> dict[str, str]:
        value = self.raw.get(key, LineMap())
        if not isinstance(value, LineMap):
            self.error(f"{where}: '{key}' must be a mapping of names to templates", key)
            return {}
        out: dict[str, str] = {}
        for name, template in value.items():
            line = value.line_of(str(name))
            if isinstance(template, bool) or not isinstance(template, str | int | float):
                self.problems.error(self.path, f"{where}: {key} {name}: must be a string", line)
                self.ok = False
                continue
            template = str(template)
            if _SECRET_NAME.search(str(name)) and not any(r.startswith("env.") for r in refs(template)):
                message = f"{where}: {key} {name}: secrets come from the environment; use {{env.NAME}}"
                self.problems.error(self.path, message, line)
                self.ok = False
            out[str(name)] = template
        return out

    def _response(self, where: str) -> ResponseSpec:
        raw = self.raw.get("response", LineMap())
        if not isinstance(raw, LineMap):
            self.error(f"{where}: 'response' must be a mapping (data, errors)", "response")
            return ResponseSpec()
        data = raw.get("data")
        if data is not None and not isinstance(data, str):
            self.error(f"{where}: response.data must be a dotted path", "response")
            data = None
        errors: dict[int, str] = {}
        raw_errors = raw.get("errors", LineMap())
        if not isinstance(raw_errors, LineMap):
            self.error(f"{where}: response.errors maps an HTTP status to an error code", "response")
            raw_errors = LineMap()
        for status, code in raw_errors.items():
            if not str(status).isdigit() or not 400 <= int(status) <= 599 or not isinstance(code, str) or not code:
                line = raw_errors.line_of(str(status))
                self.problems.error(self.path, f"{where}: response.errors {status}: needs a 4xx/5xx status", line)
                self.ok = False
                continue
            errors[int(status)] = code
        return ResponseSpec(data=data, errors=errors)


def _plain(value: Any) -> Any:
    """A :class:`LineMap` tree as plain dicts and lists (for JSON schema and bodies)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
