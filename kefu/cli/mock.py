"""``kefu mock-llm``: the fake upstream's command, which lives with the mock (:mod:`kefu.llm.mock.command`)."""

from __future__ import annotations

from kefu.llm.mock.command import mock_llm

__all__ = ["mock_llm"]
