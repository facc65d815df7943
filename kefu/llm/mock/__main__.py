"""``python -m kefu.llm.mock``: the same command as ``kefu mock-llm``."""

import typer

from kefu.llm.mock.command import mock_llm

typer.run(mock_llm)
