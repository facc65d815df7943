"""The small template language of tool files: ``{param}``, ``{env.NAME}`` and ``{body.path}`` references.

``{env.NAME?}`` is an optional environment reference: empty when unset, and a header made only of unset optional
references is not sent (the demo shop's token works that way).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, unquote

from kefu.errors import UnsafeArgument

_REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*\??)\}")
_MISSING = object()


def refs(template: str) -> list[str]:
    """The references in one template string, in order (``order_id``, ``env.SHOP_URL`` …)."""
    return _REF.findall(template)


def walk_strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON-like value (keys are not templates)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from walk_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from walk_strings(item)


def param_refs(value: Any) -> set[str]:
    """Argument names referenced anywhere in ``value``."""
    return {r for s in walk_strings(value) for r in refs(s) if "." not in r}


def env_refs(value: Any) -> set[str]:
    """Required environment variable names referenced anywhere in ``value`` (not the optional ``{env.NAME?}``)."""
    return {
        r.removeprefix("env.") for s in walk_strings(value) for r in refs(s) if r.startswith("env.") and r[-1] != "?"
    }


def unset_optional(template: str, env: Mapping[str, str]) -> bool:
    """True when the template has optional env references and all of them are unset (the header is left out)."""
    optional = [r.removeprefix("env.")[:-1] for r in refs(template) if r.startswith("env.") and r.endswith("?")]
    return bool(optional) and not any(env.get(name) for name in optional)


def single_ref(template: str) -> str | None:
    """The reference when the whole template is exactly one ``{ref}`` (its value then keeps its JSON type)."""
    match = _REF.fullmatch(template)
    return match.group(1) if match else None


def lookup(data: Any, path: str) -> Any:
    """Follow a dotted path into JSON (``order.items.0.sku``); None when any step is missing."""
    current = data
    for step in path.split(".") if path else []:
        if isinstance(current, Mapping) and step in current:
            current = current[step]
        elif isinstance(current, list) and step.isdigit() and int(step) < len(current):
            current = current[int(step)]
        else:
            return None
    return current


def _resolve(ref: str, args: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    if ref.startswith("env."):
        return env.get(ref.removeprefix("env.").removesuffix("?"), "")
    return args.get(ref, _MISSING)


def _text(value: Any) -> str:
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Where a decoded segment ends for a server or proxy: a ``;parameter``, or a query or fragment it now starts.
_SEGMENT_END = re.compile(r"[;?#]")
# Characters some servers drop around a segment: spaces, control characters (CR, LF, NUL, tab), DEL.
_IGNORABLE = "".join(map(chr, range(0x21))) + "\x7f"


def climbs(value: str) -> bool:
    """True when ``value`` holds a ``.`` or ``..`` path segment, also once percent-decoded (up to three times),
    NFKC-normalised (full-width dots), split at ``\\`` or cut at ``;``, ``?`` or ``#`` (the forms servers and
    proxies in front of them resolve)."""
    seen = {value}
    for _ in range(3):
        value = unquote(value)
        seen.add(value)
    seen |= {unicodedata.normalize("NFKC", text) for text in seen}
    for text in seen:
        for part in re.split(r"[/\\]", text):
            if _SEGMENT_END.split(part, 1)[0].strip(_IGNORABLE) in (".", ".."):
                return True
    return False


def render(template: str, args: Mapping[str, Any], env: Mapping[str, str], *, url: bool = False) -> str:
    """Fill a string template. With ``url``, argument values are percent-encoded (env values are not: a base
    URL comes from the environment), and one that holds a dot segment is an :class:`UnsafeArgument`."""

    def fill(match: re.Match[str]) -> str:
        ref = match.group(1)
        text = _text(_resolve(ref, args, env))
        if not url or ref.startswith("env."):
            return text
        # Encoding alone is not enough: a proxy that decodes before it resolves dot segments (nginx does) would
        # turn ..%2Fadmin back into ../admin and climb the merchant's path.
        if climbs(text):
            raise UnsafeArgument(f"{ref}: '.' and '..' cannot be part of a URL path")
        return quote(text, safe="")

    return _REF.sub(fill, template)


def render_value(template: Any, args: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    """Fill a JSON body template. A string that is exactly ``{param}`` becomes the argument's value with its
    type; object members whose single reference is a missing argument are left out."""
    if isinstance(template, str):
        ref = single_ref(template)
        if ref is not None:
            value = _resolve(ref, args, env)
            return None if value is _MISSING else value
        return render(template, args, env)
    if isinstance(template, Mapping):
        out: dict[str, Any] = {}
        for key, item in template.items():
            ref = single_ref(item) if isinstance(item, str) else None
            if ref is not None and not ref.startswith("env.") and ref not in args:
                continue
            out[str(key)] = render_value(item, args, env)
        return out
    if isinstance(template, list | tuple):
        return [render_value(item, args, env) for item in template]
    return template


def render_error(template: str, body: Any) -> str | None:
    """An error code from a response-mapping template (``not_found``, ``{body.error}``, ``{body.error.code}``).

    None when a referenced value is missing or not a plain string/number, so the caller falls back to
    ``http_<status>``.
    """
    failed = False

    def fill(match: re.Match[str]) -> str:
        nonlocal failed
        ref = match.group(1)
        value = lookup(body, ref.removeprefix("body.")) if ref.startswith("body.") else None
        if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
            failed = True
            return ""
        return str(value)

    code = _REF.sub(fill, template)
    return None if failed or not code else code
