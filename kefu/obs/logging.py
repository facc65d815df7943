"""Structured logging (structlog) with personal data masked before anything is written.

Phone numbers and resident ID numbers must never reach a log line, whatever field they hide in.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from contextvars import Token
from typing import Any

import structlog

from kefu.pii import LOG_LABELS
from kefu.pii import mask_pii as _mask


def mask_pii(text: str) -> str:
    """Replace phone numbers, ID and card numbers and e-mail addresses with ``[PHONE]``-style labels (the
    detectors of :mod:`kefu.pii`: full-width digits, spaced, dashed and dotted forms included)."""
    return _mask(text, LOG_LABELS, strict=False)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_pii(value)
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    return value


def _mask_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        event_dict[key] = _mask_value(value)
    return event_dict


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written (test runners and CLIs swap it, then close theirs)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "info", *, json: bool = False) -> None:
    """Set up structlog and the standard library's logging to write masked lines to stderr."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    """A structlog logger bound to ``name``."""
    return structlog.get_logger(name)


REQUEST_ID = "request_id"


def bind_request_id(request_id: str) -> Mapping[str, Token[Any]]:
    """Put ``request_id`` on every log line written in this context from now on, including those of tasks created
    in it (a task copies the context when it is created, so a turn started by a request keeps its id after the
    request ends). Pass the result to :func:`unbind_request_id` when the request is over."""
    return structlog.contextvars.bind_contextvars(**{REQUEST_ID: request_id})


def unbind_request_id(tokens: Mapping[str, Token[Any]]) -> None:
    """Undo :func:`bind_request_id`, so the id cannot leak into whatever runs next in this context."""
    structlog.contextvars.reset_contextvars(**tokens)


def current_request_id() -> str | None:
    """The request id bound in this context, if any."""
    value = structlog.contextvars.get_contextvars().get(REQUEST_ID)
    return value if isinstance(value, str) else None
