"""``ToolRegistry``: the bot's tools behind :class:`kefu.tools.base.ToolCaller`.

Every call goes through the same rules, whatever runs it (HTTP, Python or a test stub): bound parameters are
overwritten from the verified context, arguments are checked against the JSON schema, a write runs only when
confirmed, and the outcome is logged (PII masked) and counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from kefu.content.problems import Problems
from kefu.obs.logging import get_logger
from kefu.obs.metrics import Metrics
from kefu.tools.base import Risk, ToolContext, ToolResult
from kefu.tools.guard import AddressGuard
from kefu.tools.http import run_http
from kefu.tools.python import load_function, run_python
from kefu.tools.spec import ToolDef, load_tool_defs
from kefu.tools.transport import GuardedTransport

# Outcomes that mean "something is broken" rather than an ordinary business answer.
_ALARMING = frozenset({"timeout", "unavailable", "refused", "not_configured"})


class ToolRegistry:
    """The tools of one bot. Create with :meth:`load`; close with :meth:`aclose`."""

    def __init__(
        self,
        tools: Sequence[ToolDef] = (),
        *,
        env: Mapping[str, str] | None = None,
        allow_hosts: Collection[str] = (),
        metrics: Metrics | None = None,
        mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        functions: Mapping[str, Callable[..., Any]] | None = None,
    ) -> None:
        self._tools: dict[str, ToolDef] = {t.name: t for t in tools}
        self._validators = {t.name: Draft202012Validator(dict(t.parameters)) for t in tools}
        self._functions = dict(functions or {})
        self._stubs: dict[str, list[ToolResult]] = {}
        self._env = dict(env or {})
        self._metrics = metrics
        # Every connection goes through the address guard; mounted in-process apps open none.
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(AddressGuard(allow_hosts)),
            mounts=dict(mounts) if mounts else None,
            follow_redirects=False,  # a redirect is the merchant's answer (http_3xx), not a second request
        )
        self._log = get_logger("kefu.tools")
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @classmethod
    def load(
        cls,
        bot_dir: Path,
        problems: Problems,
        *,
        env: Mapping[str, str],
        allow_hosts: Collection[str] = (),
        metrics: Metrics | None = None,
        mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    ) -> ToolRegistry:
        """Load ``<bot_dir>/tools/*.yaml``. Problems go to ``problems``; tools with errors are left out."""
        tools: list[ToolDef] = []
        functions: dict[str, Callable[..., Any]] = {}
        for tool in load_tool_defs(bot_dir, problems, env):
            if tool.kind == "python" and tool.function is not None:
                try:
                    functions[tool.name] = load_function(tool.function)
                except (ImportError, AttributeError, TypeError, ValueError) as exc:
                    assert tool.source is not None
                    problems.error(tool.source, f"tool {tool.name!r}: cannot load {tool.function}: {exc}", tool.line)
                    continue
            tools.append(tool)
        return cls(tools, env=env, allow_hosts=allow_hosts, metrics=metrics, mounts=mounts, functions=functions)

    # --- what there is ---

    def has(self, name: str) -> bool:
        """True when a tool of that name exists."""
        return name in self._tools

    def risk(self, name: str) -> Risk | None:
        """``read`` or ``write``; None for an unknown tool."""
        tool = self._tools.get(name)
        return tool.risk if tool else None

    def specs(self) -> list[ToolDef]:
        """The tool definitions, in load order."""
        return list(self._tools.values())

    def risks(self) -> dict[str, Risk]:
        """Each tool's risk level."""
        return {name: tool.risk for name, tool in self._tools.items()}

    # --- testing ---

    def stub(
        self,
        name: str,
        results: ToolResult | Sequence[ToolResult | Any] | Any,
        *,
        risk: Risk = "read",
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        """Replace a tool's execution by canned results (for conversation tests); binding, validation and
        confirmation still apply. ``results`` is one result or a list used in order (the last one repeats); a
        value that is not a :class:`ToolResult` means ``ToolResult(ok=True, data=value)``. A name the bot does
        not define is added with ``risk`` and ``parameters`` (default: any arguments)."""
        items = list(results) if isinstance(results, list | tuple) else [results]
        if not items:
            raise ValueError("stub needs at least one result")
        self._stubs[name] = [r if isinstance(r, ToolResult) else ToolResult(ok=True, data=r) for r in items]
        if name not in self._tools:
            schema = dict(parameters) if parameters else {"type": "object", "additionalProperties": True}
            self._tools[name] = ToolDef(name=name, risk=risk, kind="python", parameters=schema)
            self._validators[name] = Draft202012Validator(schema)

    # --- calling ---

    async def call(self, name: str, args: dict[str, Any], ctx: ToolContext, *, confirmed: bool = False) -> ToolResult:
        """Run a tool; never raises for a failed call (see :class:`kefu.tools.base.ToolResult` for error codes)."""
        started = time.perf_counter()
        tool = self._tools.get(name)
        if tool is None:
            result = ToolResult(ok=False, error="unknown_tool", message=f"no tool named {name!r}")
            self._record(None, name, args, result, 0, started)
            return result
        bound = self._arguments(tool, args, ctx)
        result, attempts = await self._run(tool, bound, ctx, confirmed)
        return self._record(tool, name, bound, result, attempts, started)

    def _arguments(self, tool: ToolDef, args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        if tool.parameters.get("additionalProperties") is True:
            out = dict(args)
        else:  # undeclared arguments are dropped: a model must not smuggle fields into a request body
            out = {k: v for k, v in args.items() if k in tool.declared}
        for param, source in tool.bind.items():
            out[param] = ctx.user_id if source == "user.id" else ctx.session_id
        return out

    async def _run(
        self, tool: ToolDef, args: dict[str, Any], ctx: ToolContext, confirmed: bool
    ) -> tuple[ToolResult, int]:
        error = best_match(self._validators[tool.name].iter_errors(args))
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path)
            message = f"{where}: {error.message}" if where else error.message
            return ToolResult(ok=False, error="invalid_arguments", message=message), 0
        if tool.risk == "write" and not confirmed:
            return ToolResult(ok=False, error="not_confirmed", message="a write needs the user's confirmation"), 0
        stubbed = self._stubs.get(tool.name)
        if stubbed is not None:
            self.calls.append((tool.name, dict(args)))
            return (stubbed.pop(0) if len(stubbed) > 1 else stubbed[0]), 1
        missing = sorted(n for n in tool.env_names if not self._env.get(n))
        if missing:
            return ToolResult(ok=False, error="not_configured", message="set " + ", ".join(missing)), 0
        self.calls.append((tool.name, dict(args)))
        if tool.kind == "python":
            return await run_python(tool, self._functions[tool.name], args, ctx)
        return await run_http(tool, self._client, args, self._env)

    def _record(
        self,
        tool: ToolDef | None,
        name: str,
        args: Mapping[str, Any],
        result: ToolResult,
        attempts: int,
        started: float,
    ) -> ToolResult:
        elapsed = time.perf_counter() - started
        result = replace(result, elapsed_ms=round(elapsed * 1000, 2))
        outcome = "ok" if result.ok else (result.error or "error")
        label = tool.name if tool else "(unknown)"  # a model-invented name must not become a metric label
        if self._metrics is not None:
            self._metrics.tool_calls.labels(tool=label, outcome=outcome).inc()
            self._metrics.tool_seconds.labels(tool=label).observe(elapsed)
        alarming = outcome in _ALARMING or (result.status or 0) >= 500
        emit = self._log.warning if alarming else self._log.info
        # A refusal's message is kefu's own (host and address); other messages may quote the merchant's response,
        # which can hold personal data, so they are not logged.
        why = {"reason": result.message} if outcome == "refused" else {}
        emit(
            "tool_call",
            tool=name,
            risk=tool.risk if tool else None,
            outcome=outcome,
            status=result.status,
            elapsed_ms=result.elapsed_ms,
            attempts=attempts,
            args=dict(args),
            **why,
        )
        return result

    async def aclose(self) -> None:
        """Close the shared HTTP client."""
        await self._client.aclose()
